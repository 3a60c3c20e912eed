"""A Delta lake as a read-only source: `DeltaFolder`, one table version per snapshot.

A snapshot pins one version of the table (the newest, or the one `as_of`
names: a version number or a time), lists the Parquet files of that version
from its Delta log (with their ``date`` partition, so day filters skip files),
and scans them with `polars.scan_delta` at that version. SQL reads the same
files of the same version. See `io.delta` for the table's layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from axon_audit.exceptions import AuditTypeError, AuditValueError
from axon_audit.io.delta import commit_info, delta_options, deltalake, is_delta, table_uri
from axon_audit.io.location import Location, StorageOptions, resolve
from axon_audit.model.schema import COLUMNS, FRAME_SCHEMA
from axon_audit.query.filters import Filters
from axon_audit.read.snapshot import Snapshot

__all__ = ["DeltaFolder", "DeltaParts", "check_as_of"]

_CAST = dict(FRAME_SCHEMA)


def check_as_of(as_of: Any) -> int | datetime | None:
    """`as_of` checked: None, a version number >= 0, or a timezone-aware datetime.

    Example:
        >>> from axon_audit.read.delta_source import check_as_of
        >>> check_as_of(3)
        3
        >>> check_as_of(-1)
        Traceback (most recent call last):
        ...
        axon_audit.exceptions.AuditValueError: as_of must be a Delta version >= 0 or a datetime, got -1
    """
    if as_of is None:
        return None
    if isinstance(as_of, bool) or not isinstance(as_of, (int, datetime)):
        raise AuditTypeError(f"as_of must be a Delta version (int) or a datetime, got {type(as_of).__name__}")
    if isinstance(as_of, int) and as_of < 0:
        raise AuditValueError(f"as_of must be a Delta version >= 0 or a datetime, got {as_of}")
    if isinstance(as_of, datetime) and as_of.tzinfo is None:
        raise AuditValueError(f"as_of must be a timezone-aware datetime (a Delta commit time is UTC), got {as_of!r}")
    return as_of


class DeltaParts(list[Any]):
    """The files of one table version (a list of `_DeltaPart`) and that `version`."""

    version: int = -1


@dataclass(frozen=True)
class _DeltaPart:
    path: Path | Location
    day: date | None


class DeltaFolder:
    """The Delta table at `path` (a folder or ``s3://`` prefix), read at `as_of`.

    Example:
        >>> import tempfile, pathlib
        >>> from axon_audit.model.schema import normalize_batch
        >>> from axon_audit.read.delta_source import DeltaFolder
        >>> from axon_audit.write.delta_target import DeltaTarget
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> _ = DeltaTarget(root).append(normalize_batch([{"operation": "STORE"}]))
        >>> _ = DeltaTarget(root).append(normalize_batch([{"operation": "RECALL"}]))
        >>> DeltaFolder(root).parts().version, DeltaFolder(root, as_of=0).parts().version
        (1, 0)
    """

    source = "parquet"
    on_error = "raise"

    def __init__(self, path: str | Path | Location, as_of: Any = None,
                 storage_options: StorageOptions | None = None, naive_time: str = "local") -> None:
        if isinstance(path, Location) or (isinstance(path, str) and "://" in path):
            loc = resolve(path, storage_options=storage_options)
            self.path: Path | Location = loc.local_path() if loc.is_local else loc
        else:
            self.path = Path(path)
        self.as_of = check_as_of(as_of)
        self.naive_time = naive_time
        self.uri = table_uri(self.path)
        self.options = delta_options(self.path, storage_options)

    def exists(self) -> bool:
        """Whether the table has been created (its first commit made)."""
        return is_delta(self.path)

    def _table(self) -> Any:
        """The `deltalake.DeltaTable` at the version this folder reads."""
        dl = deltalake()
        if not self.exists():
            if self.as_of is not None:
                raise AuditValueError(f"as_of: {self.uri!r} is not a Delta table (no _delta_log), so has no versions")
            return None
        dt = dl.DeltaTable(self.uri, storage_options=self.options)
        if self.as_of is None:
            return dt
        latest = int(dt.version())
        if isinstance(self.as_of, int) and self.as_of > latest:
            raise AuditValueError(f"as_of: version {self.as_of} does not exist yet in {self.uri!r}; "
                                  f"expected 0..{latest}")
        try:
            dt.load_as_version(self.as_of.astimezone(timezone.utc) if isinstance(self.as_of, datetime)
                               else self.as_of)
        except dl.exceptions.DeltaError as exc:
            raise AuditValueError(f"as_of: {self.as_of!r} names no version of {self.uri!r} "
                                  f"(before its first commit, or its log was cleaned up): {exc}") from exc
        if isinstance(self.as_of, datetime):  # delta-rs answers version 0 for a time before it
            first = (commit_info(self.path, int(dt.version())) or {}).get("timestamp")
            if first is not None and first > self.as_of.timestamp() * 1000:
                raise AuditValueError(f"as_of: {self.as_of.isoformat()} is before the first commit of {self.uri!r}")
        return dt

    def parts(self) -> DeltaParts:
        """The files of the version read now (unchecked), with their days."""
        out = DeltaParts()
        dt = self._table()
        if dt is None:
            return out
        out.version = int(dt.version())
        actions = pa.table(dt.get_add_actions(flatten=True)).to_pydict()  # an arro3 table: through pyarrow
        days = actions.get("partition.date") or [None] * len(actions["path"])
        for rel, day in sorted(zip(actions["path"], days, strict=True), key=lambda x: (x[1] or "", x[0])):
            out.append(_DeltaPart(self.path / rel, date.fromisoformat(day) if day else None))
        return out

    def parquet_files(self, f: Filters | None = None, parts: list[Any] | None = None) -> list[Any]:
        """The files of `parts` (default: the version read now) a query with filters
        `f` reads: files of ``date`` partitions outside its days are left out."""
        lo, hi = f.dates() if f is not None else (None, None)
        return [p.path for p in (self.parts() if parts is None else parts)
                if not (p.day is not None and ((lo and p.day < lo) or (hi and p.day > hi)))]

    def check_readable(self, files: list[Any]) -> bool:
        return False  # a Delta table's files are checked by its readers (delta-rs), not file by file here

    def scan(self, f: Filters, parts: list[Any] | None) -> pl.LazyFrame:
        """The events of the version of `parts` (`polars.scan_delta`), days pruned by ``date``."""
        version = parts.version if isinstance(parts, DeltaParts) else self.parts().version
        lf = pl.scan_delta(self.uri, version=version, storage_options=self.options)
        lo, hi = f.dates()
        if lo is not None:
            lf = lf.filter(pl.col("date") >= lo.isoformat())
        if hi is not None:
            lf = lf.filter(pl.col("date") <= hi.isoformat())
        return lf.select(COLUMNS).cast(_CAST)  # type: ignore[arg-type]

    def snapshot(self) -> Snapshot:
        parts = self.parts()
        return Snapshot(folder=self if parts else None, parts=parts, events_are_archived=True)
