"""Checking and coercing an event's field values into their stored forms.

The logger's hot path inlines the cheap accept-checks and calls these only for
anything off the fast path (and to raise the error that names the argument).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any, TypeVar

import orjson

from axon_audit.exceptions import AuditTypeError, AuditValueError
from axon_audit.model.enums import OPERATIONS, STATUSES, EventStatus, OperationType

E = TypeVar("E", bound=Enum)

__all__ = [
    "check_text",
    "coerce_duration",
    "coerce_entry_ids",
    "coerce_operation",
    "coerce_status",
    "encode_metadata",
]


def _coerce_enum(value: Any, enum: type[E], names: Iterable[str], argument: str) -> E:
    """A member of `enum` from itself or its (case-insensitive) name; the error names `argument`."""
    if isinstance(value, enum):
        return value
    if isinstance(value, str):
        found = enum.__members__.get(value.strip().upper())
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
        if isinstance(value, str):
            value = str.__str__(value)
        else:
            raise AuditTypeError(f"{argument} must be a str or None, got {type(value).__name__}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise AuditValueError(f"{argument} is not valid Unicode text (lone surrogate)") from None
    return value


def coerce_entry_ids(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise AuditTypeError(f"entry_ids must be a list of str, got {type(value).__name__}")
    ids = tuple(value)
    for i, item in enumerate(ids):
        if type(item) is not str or not item.isascii():
            if not isinstance(item, str):
                raise AuditTypeError(f"entry_ids[{i}] must be a str, got {type(item).__name__}")
            ids = (*ids[:i], check_text(item, f"entry_ids[{i}]"), *ids[i + 1 :])
    return ids


_DUMPS = orjson.dumps
_DUMPS_OPTS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _find_non_finite(obj: Any, path: str) -> str | None:
    if isinstance(obj, float) and not math.isfinite(obj):
        return path
    if isinstance(obj, dict):
        for k, v in obj.items():
            hit = _find_non_finite(v, f"{path}[{k!r}]")
            if hit:
                return hit
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            hit = _find_non_finite(v, f"{path}[{i}]")
            if hit:
                return hit
    return None


def encode_metadata(value: Any) -> str | None:
    """Metadata as compact JSON text (None for empty): the stored form.

    Accepted: dicts with str keys whose values are str, int (64-bit), finite
    float, bool, None, lists/tuples and dicts of these. Tuples become lists.
    Anything else (sets, bytes, datetimes, NaN, …) is refused, naming it.
    """
    if value is None:
        return None
    if type(value) is not dict:
        if not isinstance(value, Mapping):
            raise AuditTypeError(f"metadata must be a dict, got {type(value).__name__}")
        value = dict(value)
    if not value:
        return None
    try:
        # .decode() copies into a str and frees orjson's over-allocated buffer at once:
        # keeping the bytes alive costs ~10 us per event in malloc (measured).
        text = _DUMPS(value, option=_DUMPS_OPTS).decode()
    except (orjson.JSONEncodeError, TypeError) as exc:
        raise AuditValueError(f"metadata cannot be represented as JSON: {exc}") from None
    if "null" in text or "NaN" in text:  # orjson writes NaN/inf as null: find and refuse them
        where = _find_non_finite(value, "metadata")
        if where:
            raise AuditValueError(f"{where} is not a finite number (NaN and infinity are refused)")
    return text


_INF = math.inf


def coerce_duration(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AuditTypeError(f"duration_ms must be a number or None, got {type(value).__name__}")
    value = float(value)
    if not 0.0 <= value < _INF:
        raise AuditValueError(f"duration_ms must be finite and >= 0, got {value!r}")
    return value
