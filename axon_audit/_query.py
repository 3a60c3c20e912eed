"""The filter model: the seed's query arguments, validated once, compiled to polars.

`Filters.build(...)` checks and normalizes every argument (naming the one that is
wrong); `Filters.expr()` is the vectorized predicate; `Filters.overlaps()` lets the
store skip whole chunks (and later whole partitions) by time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

import polars as pl

from ._errors import AuditTypeError, AuditValueError
from ._models import EventStatus, OperationType, coerce_operation, coerce_status, to_us

__all__ = ["Filters"]


def _strings(value: Any, argument: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Iterable) and not isinstance(value, (bytes, dict)):
        items = tuple(value)
        for i, v in enumerate(items):
            if not isinstance(v, str):
                raise AuditTypeError(f"{argument}[{i}] must be a str, got {type(v).__name__}")
        return items
    raise AuditTypeError(f"{argument} must be a str or a list of str, got {type(value).__name__}")


def _several(value: Any, coerce: Any) -> tuple | None:
    if value is None:
        return None
    if isinstance(value, (str, OperationType, EventStatus)) or not isinstance(value, Iterable):
        return (coerce(value),)
    return tuple(coerce(v) for v in value)


def _time(value: Any, argument: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise AuditTypeError(f"{argument} must be a datetime or None, got {type(value).__name__}")
    return to_us(value, argument)


@dataclass(frozen=True)
class Filters:
    """Validated query filters. Times are UTC microseconds, both bounds inclusive.

    `start_time` after `end_time` is not an error: it matches nothing (`is_empty`).

    Example:
        >>> from axon_audit._query import Filters
        >>> Filters.build(user_id="user_123", operation="store").operations
        (<OperationType.STORE: 'STORE'>,)
    """

    user_ids: tuple[str, ...] | None = None
    session_ids: tuple[str, ...] | None = None
    operations: tuple[OperationType, ...] | None = None
    statuses: tuple[EventStatus, ...] | None = None
    start_us: int | None = None
    end_us: int | None = None
    entry_ids: tuple[str, ...] | None = None
    limit: int | None = None

    @classmethod
    def build(
        cls,
        user_id: str | Iterable[str] | None = None,
        session_id: str | Iterable[str] | None = None,
        operation: OperationType | str | Iterable[OperationType | str] | None = None,
        status: EventStatus | str | Iterable[EventStatus | str] | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        entry_ids: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> "Filters":
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int):
                raise AuditTypeError(f"limit must be an int or None, got {type(limit).__name__}")
            if limit < 0:
                raise AuditValueError(f"limit must be >= 0, got {limit}")
        if isinstance(entry_ids, str):
            entry_ids = [entry_ids]
        return cls(
            user_ids=_strings(user_id, "user_id"),
            session_ids=_strings(session_id, "session_id"),
            operations=_several(operation, coerce_operation),
            statuses=_several(status, coerce_status),
            start_us=_time(start_time, "start_time"),
            end_us=_time(end_time, "end_time"),
            entry_ids=_strings(entry_ids, "entry_ids"),
            limit=limit,
        )

    @property
    def is_empty(self) -> bool:
        """True when no event can match (inverted time range, limit 0, empty lists)."""
        if self.start_us is not None and self.end_us is not None and self.start_us > self.end_us:
            return True
        if self.limit == 0:
            return True
        return any(v is not None and len(v) == 0 for v in
                   (self.user_ids, self.session_ids, self.operations, self.statuses, self.entry_ids))

    def overlaps(self, min_us: int, max_us: int) -> bool:
        """Can a chunk whose timestamps span [min_us, max_us] hold a match?"""
        if self.start_us is not None and max_us < self.start_us:
            return False
        if self.end_us is not None and min_us > self.end_us:
            return False
        return True

    def expr(self) -> pl.Expr | None:
        """The polars predicate, or None when nothing is filtered."""
        parts: list[pl.Expr] = []

        def one_of(col: str, values: tuple) -> pl.Expr:
            values = tuple(getattr(v, "value", v) for v in values)
            if len(values) == 1:
                return pl.col(col) == values[0]
            return pl.col(col).cast(pl.String).is_in(list(values))

        if self.user_ids is not None:
            parts.append(one_of("user_id", self.user_ids))
        if self.session_ids is not None:
            parts.append(one_of("session_id", self.session_ids))
        if self.operations is not None:
            parts.append(one_of("operation", self.operations))
        if self.statuses is not None:
            parts.append(one_of("status", self.statuses))
        if self.start_us is not None:
            parts.append(pl.col("timestamp").dt.epoch("us") >= self.start_us)
        if self.end_us is not None:
            parts.append(pl.col("timestamp").dt.epoch("us") <= self.end_us)
        if self.entry_ids is not None:
            parts.append(pl.col("entry_ids").list.eval(pl.element().is_in(list(self.entry_ids))).list.any())
        if not parts:
            return None
        out = parts[0]
        for p in parts[1:]:
            out = out & p
        return out
