"""Checking and coercing an event's field values into their stored forms: the
rules at the door, the same for `log`/`log_event`, `AuditEvent` and `log_batch`.

A value either round-trips exactly (reads back equal through the API, the JSON
export and the Parquet export) or is refused with an `AuditTypeError` /
`AuditValueError` naming the argument (in a batch, the row); nothing is stored
from a refused call. The rules:

* text fields (`user_id`, `session_id`, `error_message`, `event_id`, each of
  `entry_ids`): a `str` (any code point, control characters and newlines
  included) or None. A `str` subclass is stored as its plain text; an `Enum`
  member is refused (its value is not the member), as are bytes and lone
  surrogates (not Unicode text).
* `entry_ids`: a list, tuple or other ordered iterable of such texts; a single
  str, bytes, a dict (its keys) or a set (no order) is refused, as is None
  inside it.
* `duration_ms`: a float or an integer (numpy's too: the scalars of a frame's
  columns), finite and >= 0, stored as a float64; -0.0 stays -0.0. Refused:
  bool, str, Decimal, Fraction, an integer a float64 cannot hold exactly
  (``2**53 + 1``, ``10**400``).
* `metadata`: a dict with str keys (a str subclass, a StrEnum member among
  them, is written as its text: keys are names) or a Mapping, of JSON values: str, bool,
  int within 64 bits (-2**63 to 2**64-1, what orjson writes), finite float,
  None, list/tuple (a tuple reads back as a list) and dicts of these, at most
  255 levels deep. Refused, naming the place (``metadata['k'][0]``): NaN and
  infinity, Enum members, UUIDs, ``orjson.Fragment`` (raw text), Decimal,
  bytes, sets, datetimes, dataclasses, float subclasses (numpy scalars), and any
  other type. `{}` is stored as no metadata. Metadata given as JSON text (a
  batch's `metadata` column) obeys the same rules (`metadata_from_json`):
  exactly one JSON object, no duplicate keys, no number outside those ranges,
  and it is stored as the compact text `log` would store for the parsed value
  (one line, key order kept).
* timestamps (`AuditEvent`, `log_batch`): 0001-01-01T00:00:00Z to
  9999-12-31T23:59:59.999999Z (`axon_audit.model.timestamps`), stored to the
  microsecond; a finer non-zero fraction is refused.

The logger's hot path inlines the cheap accept-checks and calls these only for
anything off the fast path (and to raise the error that names the argument).
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Iterable, Mapping, Set
from enum import Enum
from numbers import Integral, Rational, Real
from typing import Any, TypeVar

import orjson

from axon_audit.exceptions import AuditTypeError, AuditValueError
from axon_audit.model.enums import OPERATIONS, STATUSES, EventStatus, OperationType

E = TypeVar("E", bound=Enum)

__all__ = [
    "check_text",
    "checked_metadata",
    "coerce_duration",
    "coerce_entry_ids",
    "coerce_operation",
    "coerce_status",
    "encode_metadata",
    "metadata_from_json",
    "metadata_problem",
]


def _coerce_enum(value: Any, enum: type[E], names: Iterable[str], argument: str) -> E:
    """A member of `enum` from itself or its (case-insensitive) name; the error names `argument`."""
    if isinstance(value, enum):
        return value
    if isinstance(value, str) and not isinstance(value, Enum):
        found = enum.__members__.get(str.__str__(value).strip().upper())
        if found is not None:
            return found
        raise AuditValueError(f"{argument} must be one of {', '.join(names)}, got {value!r}")
    raise AuditTypeError(f"{argument} must be an {enum.__name__} or str, got {type(value).__name__}")


def coerce_operation(value: Any) -> OperationType:
    return _coerce_enum(value, OperationType, OPERATIONS, "operation")


def coerce_status(value: Any) -> EventStatus:
    return _coerce_enum(value, EventStatus, STATUSES, "status")


def check_text(value: Any, argument: str) -> str | None:
    """A str that Arrow and JSON can hold (no lone surrogates), or None."""
    if value is None:
        return None
    if type(value) is not str:
        if isinstance(value, str) and not isinstance(value, Enum):
            value = str.__str__(value)
        else:
            raise AuditTypeError(f"{argument} must be a str or None, got {type(value).__name__}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise AuditValueError(f"{argument} is not valid Unicode text (lone surrogate)") from None
    return value


def coerce_entry_ids(value: Any, argument: str = "entry_ids") -> tuple[str, ...]:
    if value is None:
        return ()
    if (isinstance(value, (str, bytes, bytearray, memoryview, Mapping, Set))
            or not isinstance(value, Iterable)):
        raise AuditTypeError(f"{argument} must be a list of str, got {type(value).__name__}")
    ids = list(value)
    for i, item in enumerate(ids):
        if type(item) is not str or not item.isascii():
            if not isinstance(item, str) or isinstance(item, Enum):
                raise AuditTypeError(f"{argument}[{i}] must be a str, got {type(item).__name__}")
            ids[i] = check_text(item, f"{argument}[{i}]")
    return tuple(ids)


_DUMPS = orjson.dumps
_DUMPS_OPTS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_MAX_DEPTH = 255  # orjson's limit; the walk below stops there too
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what orjson writes


def _leaf_problem(obj: Any) -> str | None:
    """Why a non-container value is not storable (None if it is): the uncommon types."""
    t = type(obj)
    if t is str:
        return None if obj.isascii() else _surrogate_problem(obj)
    if t is bool or obj is None:
        return None
    if t is float:
        return None if obj - obj == 0.0 else "is not a finite number (NaN and infinity are refused)"
    if t is int:
        return None if _INT_MIN <= obj <= _INT_MAX else f"is an integer beyond 64 bits ({_INT_MIN} to {_INT_MAX})"
    if isinstance(obj, Enum):
        return f"is an Enum member ({t.__name__}.{obj.name}); store its .value"
    if isinstance(obj, str):  # a str subclass: written as its text
        return _surrogate_problem(obj)
    if isinstance(obj, int) and not isinstance(obj, bool):  # an int subclass: written as its value
        return None if _INT_MIN <= obj <= _INT_MAX else "is an integer beyond 64 bits"
    return (f"has type {t.__module__}.{t.__qualname__}, which metadata cannot hold "
            "(JSON values only: str, int, float, bool, None, list, dict)")


def _surrogate_problem(value: str) -> str | None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode text (lone surrogate)"
    return None


def _walk(obj: Any, depth: int, encoded: bool) -> tuple[list[Any], str] | None:
    """(the keys down to the problem, innermost first; the problem) or None.

    `encoded`: orjson has written `obj` already, so its keys are str without
    surrogates and it is at most 255 levels deep (no cycle); only the values
    orjson rewrites are left to find. Plain scalar children are tested inline and
    the path is built only for a problem found: this runs for every `log()` whose
    metadata nests (measured: a third faster than building each child's path).
    """
    if isinstance(obj, dict):
        if not encoded:
            for k in obj:
                if not isinstance(k, str):
                    return [], f"has a key of type {type(k).__name__} ({k!r}); keys must be str"
                if not k.isascii() and _surrogate_problem(k):
                    return [], "has a key that is not valid Unicode text (lone surrogate)"
        items: Iterable[tuple[Any, Any]] = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        problem = _leaf_problem(obj)
        return ([], problem) if problem else None
    if not encoded and depth >= _MAX_DEPTH:
        return [], f"is nested deeper than {_MAX_DEPTH} levels"
    for k, v in items:
        t = type(v)
        if t is str:
            if v.isascii():
                continue
        elif t is bool or v is None:
            continue
        elif t is int:
            if _INT_MIN <= v <= _INT_MAX:
                continue
        elif t is float:
            if v - v == 0.0:
                continue
        hit = _walk(v, depth + 1, encoded)
        if hit:
            hit[0].append(k)
            return hit
    return None


def metadata_problem(obj: Any, path: str = "metadata", encoded: bool = False) -> str | None:
    """Why `obj` is not storable metadata (naming the place), or None.

    orjson writes some types as something else (an Enum as its value, a UUID as
    text, a `Fragment` as raw text, NaN as null): this walk refuses them; it also
    names the place of anything orjson refuses.

    Example:
        >>> from axon_audit.model.coerce import metadata_problem
        >>> metadata_problem({"a": [1, {"b": float("inf")}]})
        "metadata['a'][1]['b'] is not a finite number (NaN and infinity are refused)"
    """
    hit = _walk(obj, 0, encoded)
    if hit is None:
        return None
    keys, problem = hit
    shown = "".join(f"[{k!r}]" for k in reversed(keys[-10:])) + ("[…]" if len(keys) > 10 else "")
    return f"{path}{shown} {problem}"


def checked_metadata(value: dict[str, Any], text: str) -> str:
    """`text` (orjson's JSON of the dict `value`) if `value` is storable metadata,
    else the error naming the place: `log()`'s path for nested metadata."""
    where = metadata_problem(value, encoded=True)
    if where:
        raise AuditValueError(where)
    return text


def encode_metadata(value: Any, argument: str = "metadata") -> str | None:
    """Metadata as compact JSON text (None for empty): the stored form. The
    module docstring lists what is accepted; anything else is refused, naming it.

    Example:
        >>> from axon_audit.model.coerce import encode_metadata
        >>> encode_metadata({"source": "api", "n": [1, 2.5, None]})
        '{"source":"api","n":[1,2.5,null]}'
        >>> encode_metadata({"n": float("nan")})
        Traceback (most recent call last):
        ...
        axon_audit.exceptions.AuditValueError: metadata['n'] is not a finite number (NaN and infinity are refused)
    """
    if value is None:
        return None
    if type(value) is not dict:
        if not isinstance(value, Mapping):
            raise AuditTypeError(f"{argument} must be a dict, got {type(value).__name__}")
        value = dict(value)
    if not value:
        return None
    try:
        # .decode() copies into a str and frees orjson's over-allocated buffer at once:
        # keeping the bytes alive costs ~10 us per event in malloc (measured).
        text = _DUMPS(value, option=_DUMPS_OPTS).decode()
    except (orjson.JSONEncodeError, TypeError) as exc:
        where = metadata_problem(value, argument)
        raise AuditValueError(where or f"{argument} cannot be represented as JSON: {exc}") from None
    where = metadata_problem(value, argument, encoded=True)  # orjson accepted it: only what it rewrites remains
    if where:
        raise AuditValueError(where)
    return text


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise AuditValueError(f"has the key {dup!r} twice (a reader would see one of the values)")
    return out


def _no_constant(name: str) -> Any:
    raise AuditValueError(f"holds {name}, not a finite number")


def metadata_from_json(text: str, argument: str = "metadata") -> str | None:
    """The stored form of metadata given as JSON text: the compact text `log()`
    stores for the parsed object (None for `{}`), under the same rules.

    Example:
        >>> from axon_audit.model.coerce import metadata_from_json
        >>> metadata_from_json('{ "a": 1,\\n  "b": [true] }')
        '{"a":1,"b":[true]}'
        >>> metadata_from_json('{"a": 1, "a": 2}')
        Traceback (most recent call last):
        ...
        axon_audit.exceptions.AuditValueError: metadata has the key 'a' twice (a reader would see one of the values)
    """
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = None
    if type(value) is dict:
        # The common case, text written by orjson (an export, log()): the parsed value
        # writes back to the same text, so it had no duplicate key (one would be lost),
        # no integer beyond 64 bits (orjson reads those as floats) and no stray whitespace.
        try:
            again = _DUMPS(value).decode()
        except orjson.JSONEncodeError:
            again = None
        if again == text:
            return text if value else None
    # Anything else is read again by the strict, slower parser, which sees every key.
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
    except AuditValueError as exc:
        raise AuditValueError(f"{argument} {exc}") from None
    except (ValueError, RecursionError):
        raise AuditValueError(f"{argument} must be JSON object text, got {text[:60]!r}") from None
    if type(value) is not dict:
        raise AuditValueError(f"{argument} must be a JSON object, got {text[:60]!r}")
    return encode_metadata(value, argument)


_INF = math.inf


def coerce_duration(value: Any) -> float | None:
    """A float64 from a float, an integer (``numpy.int64`` too: a frame's int column
    holds those) that a float64 holds exactly, or another binary float (numpy's)."""
    if value is None:
        return None
    if isinstance(value, bool) or not (isinstance(value, (float, Integral))
                                       or (isinstance(value, Real) and not isinstance(value, Rational))):
        raise AuditTypeError(f"duration_ms must be a number or None, got {type(value).__name__}")
    if isinstance(value, Integral):
        value = operator.index(value)
        try:
            as_float = float(value)
        except OverflowError:
            as_float = _INF
        if as_float != value:  # beyond a float64, or not exactly one: it would not read back
            raise AuditValueError(f"duration_ms must be a number a float64 holds exactly, got an int of "
                                  f"{value.bit_length()} bits")
        value = as_float
    value = float(value)
    if not 0.0 <= value < _INF:
        raise AuditValueError(f"duration_ms must be finite and >= 0, got {value!r}")
    return value
