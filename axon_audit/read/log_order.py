"""An export folder's events in the export log's order (its manifests), not in listing or file-time order.

The integrity manifest lists every Parquet part with ``leaves: [first, end)``,
the log positions of its events (`axon_audit.integrity.log`); the parts in that
order, each in its row order, are the folder's events in the order they were
exported, across rotations and UTC days. A local folder (and a folder of
shared ``manifest.json``) has one log; on object storage each writer keeps its
own (``manifests/<writer>-<segment>.json``): its parts are in its own log
order, ``manifest.json`` first, then the writers' manifests by name (a writer's
id sorts by its start).

Parts a retention entry deleted are left out; events an erasure removed from
their file have no row (`LogPart.positions` skips their positions).

`LogFollower` is what `axon-audit tail` follows (a commit's parts show up
together, when its manifest lands, so cross-file order is exact on S3 too), and
`log_parts` is where a durable sink (`axon_audit.integrations.sinks.durable`)
re-delivers from.

Example:
    >>> import tempfile
    >>> from axon_audit import AuditLogger
    >>> from axon_audit.io.location import resolve
    >>> from axon_audit.read.log_order import log_parts, read_log_part
    >>> folder = tempfile.mkdtemp()
    >>> with AuditLogger(max_events=4, auto_export_path=folder) as audit:
    ...     ids = [audit.log("store", user_id=f"u{i}").event_id for i in range(10)]
    >>> root = resolve(folder)
    >>> [(p.first, p.end) for p in log_parts(root)]
    [(0, 4), (4, 8), (8, 10)]
    >>> df, positions = read_log_part(root, log_parts(root)[1])
    >>> df["event_id"].to_list() == ids[4:8], positions.tolist()
    (True, [4, 5, 6, 7])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson
import polars as pl

from axon_audit.exceptions import IntegrityError
from axon_audit.integrity.global_log import maintenance_records
from axon_audit.integrity.replay import overrides_of, read_part
from axon_audit.io.layout import ExportLayout
from axon_audit.io.location import Location

__all__ = ["LogFollower", "LogPart", "log_parts", "log_size", "read_log_part"]


@dataclass(frozen=True)
class LogPart:
    """One Parquet part of an export log: its file (relative to the root), the manifest
    that lists it, and its log range ``[first, end)``."""

    manifest: str
    file: str
    first: int
    end: int
    deleted: frozenset[int] = frozenset()  # positions in the range whose events left the file
    commit: int = 0  # the export commit (in its manifest) that wrote it: its parts hold its events in time order

    @property
    def positions(self) -> np.ndarray:
        """The log positions of the part's rows, in row order."""
        present = np.arange(self.first, self.end, dtype=np.int64)
        if self.deleted:
            present = present[~np.isin(present, np.fromiter(self.deleted, np.int64))]
        return present


def log_parts(root: Location) -> list[LogPart]:
    """The Parquet parts of the folder at `root`, in export log order (see the module); a folder
    without a manifest has none (nothing says their order)."""
    layout = ExportLayout(root)
    out: list[LogPart] = []
    extra = maintenance_records(root)  # a lake's erasures and retentions, per manifest
    for mname in layout.manifest_names():
        data = (root / mname).read_if_exists()
        if data is None:  # replaced by its next segment meanwhile: read again next time
            continue
        entries = orjson.loads(data).get("entries", [])
        ov = overrides_of([*entries, *extra.get(mname, [])])
        parts = []
        commit = 0
        for e in entries:
            name = e.get("file")
            if e.get("kind") == "tree":  # a commit ends with its tree head
                commit += 1
            if e.get("kind") != "parquet" or not isinstance(name, str) or name in ov.covers or name in ov.removed:
                continue
            first, end = (int(x) for x in e["leaves"])
            gone = frozenset(p for p in ov.deleted if first <= p < end)
            parts.append(LogPart(mname, name, first, end, gone, commit))
        out += sorted(parts, key=lambda p: p.first)
    return out


def log_size(parts: list[LogPart], manifest: str = ExportLayout.MANIFEST_NAME) -> int:
    """The end of `manifest`'s log: the next log position (0 when it lists no part).

    Example:
        >>> log_size([LogPart("manifest.json", "a.parquet", 0, 4), LogPart("manifest.json", "b.parquet", 4, 9)])
        9
    """
    return max((p.end for p in parts if p.manifest == manifest), default=0)


def read_log_part(root: Location, part: LogPart) -> tuple[pl.DataFrame, np.ndarray]:
    """The events of `part` (in row order, the hot frame's columns) and their log positions."""
    df = read_part((root / part.file).read_bytes())
    positions = part.positions
    if len(positions) != df.height:
        raise IntegrityError(f"{part.file} holds {df.height} events, its log range [{part.first}, {part.end}) "
                             f"holds {len(positions)}: run verify")
    return df, positions


class LogFollower:
    """The events of a folder's parts that land after it is made, part by part in export log order.

    A folder without a manifest (nothing there says the order) falls back to its
    listing: new parts sorted by name, each part's events by time (not with
    ``listing=False``: then only committed parts count, none before a manifest is
    there). A part read from the listing is not read again once a manifest lists it.

    Example:
        >>> import tempfile
        >>> from axon_audit import AuditLogger
        >>> from axon_audit.io.location import resolve
        >>> folder = tempfile.mkdtemp()
        >>> follower = LogFollower(resolve(folder))
        >>> with AuditLogger(max_events=2, auto_export_path=folder) as audit:
        ...     for i in range(3):
        ...         _ = audit.log("store", user_id=f"u{i}")
        >>> [df["user_id"].cast(str).to_list() for df in follower.fresh()], follower.fresh()
        ([['u0', 'u1'], ['u2']], [])
    """

    def __init__(self, root: Location, listing: bool = True) -> None:
        self.root = root
        self._layout = ExportLayout(root)
        self._listing = listing
        self.seen = set(self._names())  # the part files read (or there when it was made)

    def _names(self) -> list[str]:
        if self._layout.manifest_names():
            return [p.file for p in log_parts(self.root)]
        return [f.name for f in self._layout.parts()] if self._listing else []

    def fresh(self) -> list[pl.DataFrame]:
        """The events of each part not seen before, in log order (the hot frame's columns)."""
        out = []
        if self._layout.manifest_names():
            for part in log_parts(self.root):
                if part.file not in self.seen:
                    self.seen.add(part.file)
                    out.append(read_log_part(self.root, part)[0])
            return out
        if not self._listing:
            return out
        for f in sorted(self._layout.parts(), key=lambda f: f.name):
            if f.name not in self.seen:  # named as a manifest names it: one written later lists it so
                self.seen.add(f.name)
                out.append(read_part(f.path.read_bytes()).sort("timestamp", "event_id"))
        return out
