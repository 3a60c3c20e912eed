"""The source protocol of the compliance tools: anything with `scan(**filters) -> LazyFrame`.

A logger, an archive, or a list of them. `scan_sources` unions their scans into
one LazyFrame with one set of column types (sources differ in how they encode
low-cardinality strings): operation and status as Enums, user_id Categorical
(fast grouping), the rest plain.
"""

from __future__ import annotations

import inspect
from datetime import datetime
from typing import Any

import polars as pl

from ._errors import AuditTypeError
from ._models import from_us, to_us
from ._schema import FRAME_SCHEMA

__all__ = ["period_filter", "scan_sources", "sources_of", "time_bounds"]

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
        >>> from axon_audit._sources import scan_sources
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
