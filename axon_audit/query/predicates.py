"""The filter predicates: one node kind per way of testing a column, and the field table.

A `Filters` is a conjunction of predicates. Each `Filters` field other than
`limit` maps, through `FIELDS`, to exactly one predicate kind; a backend
compiler (`compiler.Compiler` and its subclasses) turns each kind into its own
language. Values in a predicate are plain Python values (enum members already
reduced to their text), so a compiler never has to know about the event model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "FIELDS",
    "KINDS",
    "AtLeast",
    "AtMost",
    "Contains",
    "FilterField",
    "JsonPathEquals",
    "ListHasAny",
    "OneOf",
    "Predicate",
    "TimeAtLeast",
    "TimeAtMost",
]


@dataclass(frozen=True)
class Predicate:
    """One test on one column. `kind` names the compiler method that handles it
    (`visit_<kind>`).

    Example:
        >>> OneOf("user_id", ("u1",)).kind
        'one_of'
    """

    kind: ClassVar[str] = "predicate"


@dataclass(frozen=True)
class OneOf(Predicate):
    """`column` equals one of `values` (no values: matches nothing).

    Example:
        >>> OneOf("status", ("FAILURE", "PARTIAL"))
        OneOf(column='status', values=('FAILURE', 'PARTIAL'))
    """

    kind: ClassVar[str] = "one_of"
    column: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class TimeAtLeast(Predicate):
    """The timestamp `column` is at or after `us` (UTC microseconds since the epoch).

    Example:
        >>> TimeAtLeast("timestamp", 0).kind
        'time_at_least'
    """

    kind: ClassVar[str] = "time_at_least"
    column: str
    us: int


@dataclass(frozen=True)
class TimeAtMost(Predicate):
    """The timestamp `column` is at or before `us` (UTC microseconds since the epoch).

    Example:
        >>> TimeAtMost("timestamp", 0).kind
        'time_at_most'
    """

    kind: ClassVar[str] = "time_at_most"
    column: str
    us: int


@dataclass(frozen=True)
class AtLeast(Predicate):
    """The numeric `column` is >= `bound` (null never matches).

    Example:
        >>> AtLeast("duration_ms", 5.0).bound
        5.0
    """

    kind: ClassVar[str] = "at_least"
    column: str
    bound: float


@dataclass(frozen=True)
class AtMost(Predicate):
    """The numeric `column` is <= `bound` (null never matches).

    Example:
        >>> AtMost("duration_ms", 5.0).bound
        5.0
    """

    kind: ClassVar[str] = "at_most"
    column: str
    bound: float


@dataclass(frozen=True)
class Contains(Predicate):
    """The text `column` holds `text` literally, case-sensitively (null never matches).

    Example:
        >>> Contains("error_message", "timeout").text
        'timeout'
    """

    kind: ClassVar[str] = "contains"
    column: str
    text: str


@dataclass(frozen=True)
class JsonPathEquals(Predicate):
    """The JSON object text in `column` has top-level `key` whose scalar, as text,
    is `text` (`true`/`false` for booleans). `key` is an identifier (checked by
    `Filters.build`), which is what lets compilers spell the path `$.key`.

    Example:
        >>> JsonPathEquals("metadata", "source", "api").path
        '$.source'
    """

    kind: ClassVar[str] = "json_path_equals"
    column: str
    key: str
    text: str

    @property
    def path(self) -> str:
        """The JSONPath of `key`."""
        return f"$.{self.key}"


@dataclass(frozen=True)
class ListHasAny(Predicate):
    """The list `column` shares at least one element with `values`.

    Example:
        >>> ListHasAny("entry_ids", ("e1", "e2")).values
        ('e1', 'e2')
    """

    kind: ClassVar[str] = "list_has_any"
    column: str
    values: tuple[str, ...]


#: Every predicate kind; each compiler must visit or explicitly leave out each.
KINDS: tuple[str, ...] = tuple(
    k.kind for k in (OneOf, TimeAtLeast, TimeAtMost, AtLeast, AtMost, Contains, JsonPathEquals, ListHasAny)
)


def _texts(values: Iterable[Any]) -> tuple[str, ...]:
    # Operation and status filters hold str enums; backends want their text.
    return tuple(getattr(v, "value", v) for v in values)


@dataclass(frozen=True)
class FilterField:
    """How one `Filters` field (`name`, given to queries as `keyword`) becomes
    predicates of one `kind`.

    Example:
        >>> field = next(f for f in FIELDS if f.name == "user_ids")
        >>> field.keyword, list(field.predicates(("u1", "u2")))
        ('user_id', [OneOf(column='user_id', values=('u1', 'u2'))])
    """

    name: str
    keyword: str
    kind: type[Predicate]
    make: Callable[[Any], Iterable[Predicate]]

    def predicates(self, value: Any) -> Iterator[Predicate]:
        """The predicates for the field's (set) value, each checked to be of `kind`."""
        for p in self.make(value):
            if type(p) is not self.kind:
                raise TypeError(f"filter {self.name!r} made a {type(p).__name__}, declared {self.kind.__name__}")
            yield p


def _one_of(column: str) -> Callable[[Any], Iterable[Predicate]]:
    return lambda values: (OneOf(column, _texts(values)),)


#: The filters in compile order: the selective equality tests first, then
#: ranges, then the per-row text and JSON work.
FIELDS: tuple[FilterField, ...] = (
    FilterField("event_ids", "event_id", OneOf, _one_of("event_id")),
    FilterField("user_ids", "user_id", OneOf, _one_of("user_id")),
    FilterField("session_ids", "session_id", OneOf, _one_of("session_id")),
    FilterField("operations", "operation", OneOf, _one_of("operation")),
    FilterField("statuses", "status", OneOf, _one_of("status")),
    FilterField("start_us", "start_time", TimeAtLeast, lambda us: (TimeAtLeast("timestamp", us),)),
    FilterField("end_us", "end_time", TimeAtMost, lambda us: (TimeAtMost("timestamp", us),)),
    FilterField("min_duration_ms", "min_duration_ms", AtLeast, lambda ms: (AtLeast("duration_ms", ms),)),
    FilterField("max_duration_ms", "max_duration_ms", AtMost, lambda ms: (AtMost("duration_ms", ms),)),
    FilterField("error_contains", "error_contains", Contains, lambda text: (Contains("error_message", text),)),
    FilterField("metadata", "metadata", JsonPathEquals,
                lambda pairs: tuple(JsonPathEquals("metadata", k, t) for k, t in pairs)),
    FilterField("entry_ids", "entry_ids", ListHasAny, lambda ids: (ListHasAny("entry_ids", tuple(ids)),)),
)
