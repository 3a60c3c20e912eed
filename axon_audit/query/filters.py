"""The filter model: query arguments validated once, compiled to polars and to SQL.

`Filters.build(...)` checks and normalizes every argument (naming the one that is
wrong). `predicates()` states the set filters once, as predicate nodes
(`predicates.FIELDS`); the backend compilers turn those into a polars expression
(`expr()`), a parameterized DuckDB `WHERE` clause (`sql()`: values are always
bound parameters, never pasted into SQL text) and a pyarrow scan filter
(`arrow_compiler`). `overlaps()` / `dates()` let readers skip
whole chunks by time and whole `date=` partitions by day.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from datetime import date, datetime, timezone
from functools import cached_property
from typing import Any, Literal

import polars as pl

from axon_audit.exceptions import AuditTypeError, AuditValueError
from axon_audit.model.coerce import coerce_operation, coerce_status
from axon_audit.model.enums import EventStatus, OperationType
from axon_audit.model.timestamps import from_us, to_us
from axon_audit.query.polars_compiler import PolarsCompiler
from axon_audit.query.predicates import FIELDS, Predicate
from axon_audit.query.sql_compiler import SqlCompiler
from axon_audit.store.index import hashes_of

__all__ = ["FILTER_NAMES", "Filters"]

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ID_TIME = re.compile(r"evt_(\d{16})")

#: Every keyword a query accepts (the seed's plus the extra ones).
FILTER_NAMES = (
    "user_id", "session_id", "operation", "status", "start_time", "end_time", "entry_ids", "limit",
    "event_id", "metadata", "error_contains", "min_duration_ms", "max_duration_ms",
)


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
        return tuple(dict.fromkeys(items))
    raise AuditTypeError(f"{argument} must be a str or a list of str, got {type(value).__name__}")


def _several(value: Any, coerce: Any) -> tuple | None:
    if value is None:
        return None
    if isinstance(value, (str, OperationType, EventStatus)) or not isinstance(value, Iterable):
        return (coerce(value),)
    return tuple(dict.fromkeys(coerce(v) for v in value))


def _time(value: Any, argument: str, naive_time: Any, bound: Literal["start", "end"]) -> int | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise AuditTypeError(f"{argument} must be a datetime or None, got {type(value).__name__}")
    return to_us(value, argument, naive_time, bound=bound)


def _duration(value: Any, argument: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AuditTypeError(f"{argument} must be a number or None, got {type(value).__name__}")
    if value != value:
        raise AuditValueError(f"{argument} must not be NaN")
    return float(value)


def _metadata(value: Any) -> tuple[tuple[str, str], ...] | None:
    """`{key: value}` pairs; values compared as the JSON scalar's text."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise AuditTypeError(f"metadata must be a dict of key -> str/int/bool, got {type(value).__name__}")
    pairs = []
    for k, v in value.items():
        if not isinstance(k, str) or not _KEY.match(k):
            raise AuditValueError(f"metadata keys must be identifiers ([A-Za-z_][A-Za-z0-9_]*), got {k!r}")
        if isinstance(v, bool):
            text = "true" if v else "false"
        elif isinstance(v, (str, int)):
            text = str(v)
        else:
            raise AuditTypeError(f"metadata[{k!r}] must be a str, int or bool, got {type(v).__name__}")
        pairs.append((k, text))
    return tuple(pairs)


def _utc_date(us: int) -> date:
    return from_us(us).astimezone(timezone.utc).date()


@dataclass(frozen=True)
class Filters:
    """Validated query filters. Times are UTC microseconds, both bounds inclusive.

    Every filter given must hold (AND); a filter given several values matches any
    of them (OR). `start_time` after `end_time` is not an error: it matches nothing
    (`is_empty`).

    Example:
        >>> from axon_audit.query.filters import Filters
        >>> f = Filters.build(user_id="user_123", operation=["store", "recall"])
        >>> f.operations
        (<OperationType.STORE: 'STORE'>, <OperationType.RECALL: 'RECALL'>)
        >>> f.sql()
        ('"user_id" = ? AND "operation" IN (?, ?)', ['user_123', 'STORE', 'RECALL'])
    """

    user_ids: tuple[str, ...] | None = None
    session_ids: tuple[str, ...] | None = None
    operations: tuple[OperationType, ...] | None = None
    statuses: tuple[EventStatus, ...] | None = None
    start_us: int | None = None
    end_us: int | None = None
    entry_ids: tuple[str, ...] | None = None
    limit: int | None = None
    event_ids: tuple[str, ...] | None = None
    metadata: tuple[tuple[str, str], ...] | None = None
    error_contains: str | None = None
    min_duration_ms: float | None = None
    max_duration_ms: float | None = None

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
        *,
        event_id: str | Iterable[str] | None = None,
        metadata: Mapping[str, str | int | bool] | None = None,
        error_contains: str | None = None,
        min_duration_ms: float | None = None,
        max_duration_ms: float | None = None,
        naive_time: str | None = None,
    ) -> Filters:
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int):
                raise AuditTypeError(f"limit must be an int or None, got {type(limit).__name__}")
            if limit < 0:
                raise AuditValueError(f"limit must be >= 0, got {limit}")
        if isinstance(entry_ids, str):
            entry_ids = [entry_ids]
        if error_contains is not None and not isinstance(error_contains, str):
            raise AuditTypeError(f"error_contains must be a str or None, got {type(error_contains).__name__}")
        return cls(
            user_ids=_strings(user_id, "user_id"),
            session_ids=_strings(session_id, "session_id"),
            operations=_several(operation, coerce_operation),
            statuses=_several(status, coerce_status),
            start_us=_time(start_time, "start_time", naive_time, "start"),
            end_us=_time(end_time, "end_time", naive_time, "end"),
            entry_ids=_strings(entry_ids, "entry_ids"),
            limit=limit,
            event_ids=_strings(event_id, "event_id"),
            metadata=_metadata(metadata),
            error_contains=error_contains,
            min_duration_ms=_duration(min_duration_ms, "min_duration_ms"),
            max_duration_ms=_duration(max_duration_ms, "max_duration_ms"),
        )

    @classmethod
    def of(cls, filters: Mapping[str, Any], *, allow_limit: bool = True, naive_time: str | None = None) -> Filters:
        """`build` from keyword arguments, naming an unknown one; naive time bounds
        follow `naive_time` (the reader's rule, `axon_audit.model.timestamps`)."""
        unknown = [k for k in filters if k not in FILTER_NAMES or (k == "limit" and not allow_limit)]
        if unknown:
            names = [n for n in FILTER_NAMES if allow_limit or n != "limit"]
            raise AuditTypeError(f"unknown filter {unknown[0]!r}; expected one of {', '.join(names)}")
        return cls.build(**filters, naive_time=naive_time)

    @property
    def is_empty(self) -> bool:
        """True when no event can match (inverted time range, limit 0, empty lists)."""
        if self.start_us is not None and self.end_us is not None and self.start_us > self.end_us:
            return True
        if (self.min_duration_ms is not None and self.max_duration_ms is not None
                and self.min_duration_ms > self.max_duration_ms):
            return True
        if self.limit == 0:
            return True
        return any(v is not None and len(v) == 0 for v in
                   (self.user_ids, self.session_ids, self.operations, self.statuses, self.entry_ids,
                    self.event_ids))

    @cached_property
    def id_times(self) -> tuple[int, int] | None:
        """The span of the times embedded in `event_ids` when every id has the
        logger's form (`evt_` + 16-digit microseconds + ...), else None."""
        if not self.event_ids:
            return None
        times = [_ID_TIME.match(e) for e in self.event_ids]
        if not all(times):
            return None
        us = [int(m.group(1)) for m in times]  # type: ignore[union-attr]
        return min(us), max(us)

    def overlaps(self, min_us: int, max_us: int, ids_timed: bool = False) -> bool:
        """Can a chunk whose timestamps span [min_us, max_us] hold a match?
        `ids_timed`: every id in the chunk embeds its own timestamp, so the
        times in the wanted ids prune too (ids given by a caller's batch need not)."""
        lo, hi = self.start_us, self.end_us
        if lo is not None and max_us < lo:
            return False
        if hi is not None and min_us > hi:
            return False
        if ids_timed and self.id_times is not None:
            a, b = self.id_times
            if max_us < a or min_us > b:
                return False
        return True

    def dates(self) -> tuple[date | None, date | None]:
        """The UTC days a match can fall on (for `date=` partition pruning)."""
        lo, hi = self.start_us, self.end_us
        return (None if lo is None else _utc_date(lo), None if hi is None else _utc_date(hi))

    @cached_property
    def event_id_hashes(self) -> Any:
        """`event_ids` hashed for the chunk indexes (once per query)."""
        return hashes_of(self.event_ids or ())

    @cached_property
    def entry_id_hashes(self) -> Any:
        """`entry_ids` hashed for the chunk indexes (once per query)."""
        return hashes_of(self.entry_ids or ())

    @property
    def needs_index(self) -> bool:
        """Is a lookup index the fast path (entry or event ids given)?"""
        return bool(self.entry_ids) or bool(self.event_ids)

    # ------------------------------------------------------------------ compilers

    def predicates(self) -> Iterator[Predicate]:
        """The predicates of the filters that are set, in `predicates.FIELDS` order
        (`limit` is not a predicate: it cuts the result, it does not test rows).

        Example:
            >>> list(Filters.build(status="failure", error_contains="503").predicates())
            [OneOf(column='status', values=('FAILURE',)), Contains(column='error_message', text='503')]
        """
        for field in FIELDS:
            value = getattr(self, field.name)
            if value is not None:
                yield from field.predicates(value)

    def expr(self) -> pl.Expr | None:
        """The polars predicate, or None when nothing is filtered.

        Example:
            >>> import polars as pl
            >>> df = pl.DataFrame({"user_id": ["u1", "u2"]})
            >>> df.filter(Filters.build(user_id="u2").expr())["user_id"].to_list()
            ['u2']
            >>> Filters.build().expr() is None
            True
        """
        return _POLARS.compile(self)

    def sql(self) -> tuple[str, list[Any]]:
        """The DuckDB predicate (`TRUE` when nothing is filtered, `FALSE` when
        nothing can match) and its parameters.

        Only fixed column names and `?` placeholders go into the text; every
        value given by the caller is a parameter.

        Example:
            >>> Filters.build().sql(), Filters.build(user_id=[]).sql()
            (('TRUE', []), ('FALSE', []))
            >>> Filters.build(metadata={"source": "api"}).sql()
            ('json_extract_string("metadata", ?) = ?', ['$.source', 'api'])
        """
        return _SQL.compile(self)


def _check_fields() -> None:
    # Adding a Filters field or a query keyword without its predicate would make
    # every backend silently ignore it: refuse to import instead.
    fields = {f.name for f in dataclass_fields(Filters)} - {"limit"}
    table = {f.name for f in FIELDS}
    keywords = {f.keyword for f in FIELDS}
    if fields != table or set(FILTER_NAMES) - {"limit"} != keywords:
        raise RuntimeError(
            f"predicates.FIELDS is out of step with Filters: fields without a predicate {sorted(fields - table)}, "
            f"keywords without one {sorted(set(FILTER_NAMES) - {'limit'} - keywords)}, "
            f"stale entries {sorted((table - fields) | (keywords - set(FILTER_NAMES)))}"
        )


_check_fields()
_POLARS = PolarsCompiler()
_SQL = SqlCompiler()
