"""Sources of events for the CLI, the demo and the compliance tools.

`open_source(path)` is the one place the CLI and the demo get a reader for an
export folder (`open_archive`); `newest` reads it newest first with the same
tie rule as `query_events` (`tail` follows new files on the export log:
`axon_audit.read.log_order`).

The compliance tools take anything with `scan(**filters) -> LazyFrame` (a
logger, an archive, or a list of them): `scan_sources` unions their scans into
one LazyFrame with one set of column types (sources differ in how they encode
low-cardinality strings): operation and status as Enums, user_id Categorical
(fast grouping), the rest plain.
"""

from __future__ import annotations

import inspect
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from axon_audit.exceptions import ArchiveError, AuditTypeError
from axon_audit.io.location import StorageOptions
from axon_audit.model.schema import FRAME_SCHEMA
from axon_audit.model.timestamps import from_us, to_us
from axon_audit.query.filters import Filters
from axon_audit.read.archive import AuditArchive, open_archive
from axon_audit.read.snapshot import newest_first

__all__ = ["newest", "open_source", "period_filter", "scan_sources", "sources_of", "time_bounds"]


def newest(source: Any, *, limit: int | None = None, **filters: Any) -> pl.DataFrame:
    """The events of `source` matching `filters` as a frame, newest first, at most `limit`.

    Example:
        >>> import tempfile
        >>> from axon_audit import AuditLogger
        >>> from axon_audit.read.sources import newest, open_source
        >>> folder = tempfile.mkdtemp()
        >>> with AuditLogger(auto_export_path=folder) as audit:
        ...     for op in ("store", "recall", "forget"):
        ...         _ = audit.log(op)
        >>> newest(open_source(folder), limit=2)["operation"].to_list()
        ['FORGET', 'RECALL']
    """
    Filters.build(limit=limit)  # checks it
    # The one "newest first" rule of every read (ties: the later logged first), as query_events.
    lf = newest_first(source.scan(**filters), limit)
    try:
        return lf.collect()
    except (pl.exceptions.ComputeError, OSError) as exc:
        raise ArchiveError(f"cannot read the events under {getattr(source, 'path', source)}: {exc}") from None


def open_source(path: str | Path, *, storage_options: StorageOptions | None = None) -> AuditArchive:
    """A read-only reader for the export folder (or export file) at `path`, a local
    path or an `s3://` URI (`storage_options` configure S3; a local path ignores them).

    Example:
        >>> from axon_audit.read.sources import open_source
        >>> open_source("/no/such/folder")
        Traceback (most recent call last):
        ...
        axon_audit.exceptions.AuditValueError: path '/no/such/folder' does not exist
    """
    return open_archive(path, storage_options=storage_options)


_NORMAL = dict(FRAME_SCHEMA)  # the hot frame's types: Enums, user_id Categorical


def sources_of(source: Any, argument: str = "source") -> list[Any]:
    """One source or an iterable of them, each checked to have `scan`."""
    items = list(source) if isinstance(source, (list, tuple)) else [source]
    if not items:
        raise AuditTypeError(f"{argument} must be a logger, an archive or a list of them, got an empty list")
    for i, s in enumerate(items):
        if not callable(getattr(s, "scan", None)):
            where = argument if len(items) == 1 else f"{argument}[{i}]"
            raise AuditTypeError(
                f"{where} must have scan(**filters) -> polars.LazyFrame (an AuditLogger or an archive), "
                f"got {type(s).__name__}"
            )
    return items


def scan_sources(source: Any, **filters: Any) -> pl.LazyFrame:
    """The union of every source's `scan(**filters)`, columns as plain strings.

    Example:
        >>> from axon_audit import AuditLogger
        >>> from axon_audit.read.sources import scan_sources
        >>> a, b = AuditLogger(), AuditLogger()
        >>> _ = a.log("store", user_id="u1"); _ = b.log("recall", user_id="u1")
        >>> scan_sources([a, b], user_id="u1").collect().height
        2
    """
    frames = []
    items = sources_of(source)
    for s in items:
        lf = s.scan(**filters, **_archived(s))
        names = lf.collect_schema().names()
        frames.append(lf.select(pl.col(c).cast(_NORMAL[c]) if c in names else pl.lit(None, _NORMAL[c]).alias(c)
                                for c in _NORMAL))
    if len(frames) == 1:
        return frames[0]
    # A logger and an archive of its own folder hold the same events: count each once.
    return pl.concat(frames, how="vertical").unique(subset="event_id", keep="first", maintain_order=True)


def _archived(source: Any) -> dict[str, Any]:
    """`include_archived=True` for sources whose scan can also read their exports (a
    logger with an export folder): reports cover everything, not only what is in memory."""
    try:
        params = inspect.signature(source.scan).parameters
    except (TypeError, ValueError):
        return {}
    return {"include_archived": True} if "include_archived" in params else {}


def time_bounds(start: datetime | None, end: datetime | None) -> tuple[int | None, int | None]:
    """UTC microseconds of a half-open period [start, end); naive datetimes follow
    the naive-time rule (`axon_audit.model.timestamps`). A bound skipped by a DST
    change is the instant of the change: for an open end too, as wall clocks order."""
    s = None if start is None else to_us(start, "start", bound="start")
    e = None if end is None else to_us(end, "end", bound="start")
    return s, e


def period_filter(start_us: int | None, end_us: int | None) -> dict[str, Any]:
    """`scan` filters for [start, end): the scan's bounds are inclusive, the extra
    `end` exclusion is applied by the caller."""
    out: dict[str, Any] = {}
    if start_us is not None:
        out["start_time"] = from_us(start_us)
    if end_us is not None:
        out["end_time"] = from_us(end_us)
    return out
