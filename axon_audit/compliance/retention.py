"""Retention: delete whole date partitions and JSON exports older than a limit,
recorded in the folder's integrity manifest where there is one.

Only whole units go: a `date=YYYY-MM-DD` partition whose day ended before the
cutoff, and an `audit_*.json` export whose name (its export time) and newest
event are both before the cutoff (names as `io.layout.ExportLayout` makes
them). A dry run lists what would go.

In a sealed folder the ``retention`` entry lists the files deleted
(``removed``) and, for each deleted Parquet part of the export log, its
``covers``: the perfect aligned subtrees over its log range ``[first, end)``,
``[[height, hash hex], ...]`` in order, so `verify` still replays the tree
(`integrity.replay`). A part's cover is computed from its events (the original
leaves of erased ones put back) only after its SHA-256 matched the manifest, so
a tampered part is never vouched for.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow.parquet as pq

from axon_audit.display.html import card, lines
from axon_audit.exceptions import ArchiveError, AuditTypeError, AuditValueError
from axon_audit.integrity import manifest as _integrity
from axon_audit.integrity.log import signing_key_of
from axon_audit.integrity.merkle import root as merkle_root
from axon_audit.integrity.replay import file_leaves, overrides_of, read_part
from axon_audit.io.layout import ExportLayout
from axon_audit.io.location import local_folder
from axon_audit.model.timestamps import parse_timestamp, to_us

__all__ = ["RetentionResult", "apply_retention"]


@dataclass
class RetentionResult:
    """What `apply_retention` removed (or, in a dry run, would remove).

    Example:
        >>> import tempfile
        >>> from axon_audit import apply_retention
        >>> r = apply_retention(tempfile.mkdtemp(), keep_days=30, dry_run=True)
        >>> r.partitions, r.json_files, r.events
        ([], [], 0)
    """

    cutoff: datetime
    dry_run: bool
    partitions: list[Path] = field(default_factory=list)
    json_files: list[Path] = field(default_factory=list)
    events: int = 0  # events in the removed partitions (from the Parquet footers)
    bytes: int = 0
    manifest: str = "no integrity manifest found"

    def _repr_html_(self) -> str:
        items = {"cutoff": self.cutoff, "dry run": self.dry_run, "partitions": len(self.partitions),
                 "JSON files": len(self.json_files), "events": self.events, "bytes": self.bytes,
                 "manifest": self.manifest}
        listing = lines([*self.partitions, *self.json_files], empty="nothing")
        return card("Retention" + (" (dry run)" if self.dry_run else ""), items, {"files": listing})


def _newest_event_us(path: Path) -> int | None:
    try:
        events = orjson.loads(path.read_bytes())["events"]
        return max((parse_timestamp(e["timestamp"]) for e in events), default=None)
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, AuditValueError) as exc:
        raise ArchiveError(f"{path}: not an export document ({exc}); retention leaves the folder untouched") from None


def apply_retention(
    path: str | Path, keep_days: int | float, *, now: datetime | None = None, dry_run: bool = False,
    hmac_key: str | bytes | None = None, signing_key: Any = None,
) -> RetentionResult:
    """Delete partitions and JSON exports under `path` whose events are all older than
    `keep_days` days before `now` (default: the current time). Nothing is removed
    with ``dry_run=True``; the result lists what would be. In a folder sealed by
    an integrity manifest, a ``retention`` entry listing the deleted files and
    the log cover of each deleted part is appended first (signed with
    `hmac_key`, and its re-stated tree head with `signing_key` where the
    folder's heads are signed), so `verify` passes and lists it; a deleted part that differs
    from its manifest SHA-256 is refused (AuditValueError, nothing removed).

    Example:
        >>> import tempfile
        >>> from datetime import datetime, timezone
        >>> from axon_audit import AuditLogger, apply_retention
        >>> folder = tempfile.mkdtemp()
        >>> with AuditLogger(auto_export_path=folder) as audit:
        ...     audit.log_batch([{"operation": "store", "timestamp": datetime(2026, 1, d, tzinfo=timezone.utc)}
        ...                      for d in (1, 2, 3)])
        3
        >>> r = apply_retention(folder, 30, now=datetime(2026, 2, 2, 12, tzinfo=timezone.utc), dry_run=True)
        >>> [p.name for p in r.partitions], r.events
        (['date=2026-01-01', 'date=2026-01-02'], 2)
    """
    if not isinstance(path, (str, Path)):
        raise AuditTypeError(f"path must be a str or Path, got {type(path).__name__}")
    root = local_folder(path, argument="path", task="apply_retention")
    if not root.is_dir():
        raise AuditValueError(f"path: export folder {root} does not exist")
    if isinstance(keep_days, bool) or not isinstance(keep_days, (int, float)) or not keep_days >= 0:
        raise AuditValueError(f"keep_days must be a number of days >= 0, got {keep_days!r}")
    now = now or datetime.now(timezone.utc)
    if not isinstance(now, datetime):
        raise AuditTypeError(f"now must be a datetime, got {type(now).__name__}")
    cutoff_us = to_us(now, "now") - int(keep_days * 86_400_000_000)
    cutoff = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=cutoff_us)
    result = RetentionResult(cutoff, bool(dry_run))

    layout = ExportLayout(root)
    day_us = 86_400_000_000
    epoch = date(1970, 1, 1)
    for part, day in layout.partitions():
        if ((day - epoch).days + 1) * day_us <= cutoff_us:  # the whole day ended before the cutoff
            # The folder goes whole, so everything in it counts (not only the listed parts).
            files = [f for f in part.rglob("*") if f.is_file()]
            result.partitions.append(part)
            result.bytes += sum(f.stat().st_size for f in files)
            result.events += sum(pq.read_metadata(f).num_rows for f in files if f.suffix == layout.PARQUET_SUFFIX)
    for doc in layout.json_documents():
        exported = layout.rotation_time(doc.name)
        if exported is None:  # not a rotation's document: its name gives no export time
            continue
        if to_us(exported) < cutoff_us:
            newest = _newest_event_us(doc.path)
            if newest is None or newest < cutoff_us:  # an export may hold events stamped after its name
                result.json_files.append(doc.path)
                result.bytes += doc.path.stat().st_size
    if dry_run or not (result.partitions or result.json_files):
        return result
    if not layout.manifest_path.exists():
        _delete(result)
        return result
    key = _integrity._key_bytes(hmac_key)
    with _integrity.folder_lock(root):
        manifest = _integrity.load_manifest(root)
        if "hmac" in manifest and key is None:
            raise AuditValueError(f"hmac_key: {root} has a signed manifest; retention must re-sign it, give the key")
        signer = signing_key_of(signing_key)
        if _integrity.signs_its_heads(manifest) and signer is None:
            raise AuditValueError(f"signing_key: {root} signs its tree heads; retention must be signed, give the key")
        gone = [layout.name_of(p) for p in result.json_files]
        gone += [layout.name_of(f) for part in result.partitions for f in sorted(part.rglob("*")) if f.is_file()]
        listed = {e.get("file") for e in manifest.get("entries", [])}
        # The entries of deleted files stay (history, and the log runs through them); this entry says they went.
        entry = {"kind": "retention", "file": None, "cutoff": cutoff.isoformat(), "keep_days": keep_days,
                 "removed": [g for g in gone if g in listed], "events": result.events,
                 "covers": _covers(root, manifest.get("entries", []), set(gone))}
        _integrity.append_record(root, manifest, entry, key, signer)
        _delete(result)
    result.manifest = "recorded in the integrity manifest"
    return result


def _covers(root: Path, entries: list[dict], gone: set[str]) -> dict[str, list[list]]:
    """The log cover of each listed Parquet part of `gone` (see the module docstring).
    Raises AuditValueError for a part that differs from its manifest SHA-256."""
    ov = overrides_of(entries)
    covers: dict[str, list[list]] = {}
    for e in entries:
        name = e.get("file")
        if e.get("kind") != "parquet" or "leaves" not in e or name not in gone or name in ov.removed:
            continue  # an old chained part needs none (its chain is checked per file)
        data = (root / name).read_bytes()
        if hashlib.sha256(data).hexdigest() != ov.replaced.get(name, e).get("sha256"):
            raise AuditValueError(f"{root}: {name} differs from the manifest's SHA-256 (modified or replaced); "
                                  "retention would vouch for the altered file's events, so nothing was removed "
                                  "(run verify)")
        try:
            leaves = file_leaves(read_part(data), e, ov)
        except Exception as exc:  # noqa: BLE001 - its listed content, yet not this log's part
            raise AuditValueError(f"{root}: {name} cannot be read as this log's part ({exc}); "
                                  "nothing was removed") from None
        covers[name] = _cover(leaves, int(e["leaves"][0]))
    return covers


def _cover(leaves: np.ndarray, first: int) -> list[list]:
    """The perfect aligned subtrees over log positions ``[first, first + len(leaves))``,
    ``[height, root hex]`` in order: at each position p the largest h with
    ``p % 2**h == 0`` that still fits.

    Example:
        >>> from axon_audit.compliance.retention import _cover
        >>> from axon_audit.integrity.merkle import leaf_hash
        >>> import numpy as np
        >>> leaves = np.frombuffer(b"".join(leaf_hash(bytes([i])) for i in range(7)), np.uint8).reshape(-1, 32)
        >>> [h for h, _ in _cover(leaves, 3)]
        [0, 2, 1]
    """
    out: list[list] = []
    p, end = first, first + len(leaves)
    while p < end:
        h = min((p & -p).bit_length() - 1 if p else 63, (end - p).bit_length() - 1)
        out.append([h, merkle_root(leaves[p - first : p - first + (1 << h)]).hex()])
        p += 1 << h
    return out


def _delete(result: RetentionResult) -> None:
    for js in result.json_files:
        js.unlink()
    for part in result.partitions:
        shutil.rmtree(part)
