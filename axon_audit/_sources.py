"""The source protocol of the compliance tools: anything with `scan(**filters) -> LazyFrame`.

A logger, an archive, or a list of them. `scan_sources` unions their scans into
one LazyFrame with plain string columns (sources differ in how they encode
low-cardinality strings: Enum, Categorical, dictionary-encoded Parquet).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

import polars as pl

from ._errors import AuditTypeError
from ._models import from_us, to_us

__all__ = ["period_filter", "scan_sources", "sources_of", "time_bounds"]

_NORMAL = {
    "event_id": pl.String,
    "timestamp": pl.Datetime("us", "UTC"),
    "operation": pl.String,
    "user_id": pl.String,
    "session_id": pl.String,
    "entry_ids": pl.List(pl.String),
    "metadata": pl.String,
    "status": pl.String,
    "error_message": pl.String,
    "duration_ms": pl.Float64,
}


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
        >>> from axon_audit._sources import scan_sources
        >>> a, b = AuditLogger(), AuditLogger()
        >>> _ = a.log("store", user_id="u1"); _ = b.log("recall", user_id="u1")
        >>> scan_sources([a, b], user_id="u1").collect().height
        2
    """
    frames = []
    for s in sources_of(source):
        lf = s.scan(**filters)
        names = lf.collect_schema().names()
        frames.append(lf.select(pl.col(c).cast(_NORMAL[c]) if c in names else pl.lit(None, _NORMAL[c]).alias(c)
                                for c in _NORMAL))
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical")


def time_bounds(start: datetime | None, end: datetime | None) -> tuple[int | None, int | None]:
    """UTC microseconds of a half-open period [start, end); naive datetimes are local time."""
    s = None if start is None else to_us(start, "start")
    e = None if end is None else to_us(end, "end")
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
