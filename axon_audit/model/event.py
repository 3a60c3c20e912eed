"""The event model: operation and status enums, `AuditEvent`, ids, UTC time helpers.

An `AuditEvent` is a thin, immutable view over one *row tuple*: the same tuple the
logger appends to its buffer. Creating one costs a single object allocation;
the event id, the `datetime` and the metadata dict are made only when read.
"""

from __future__ import annotations

import math
import os
import secrets
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any, Iterable, Mapping

import orjson

from axon_audit.exceptions import AuditTypeError, AuditValueError

__all__ = ["OperationType", "EventStatus", "AuditEvent"]

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


class _CaseInsensitiveStrEnum(str, Enum):
    @classmethod
    def _missing_(cls, value: object) -> Any:
        if isinstance(value, str):
            return cls.__members__.get(value.strip().upper())
        return None

    def __str__(self) -> str:  # "STORE", not "OperationType.STORE"
        return self.value


class OperationType(_CaseInsensitiveStrEnum):
    """What was done. Values are the upper-case names; lookup ignores case.

    Example:
        >>> from axon_audit import OperationType
        >>> OperationType("store") is OperationType.STORE
        True
        >>> OperationType.RECALL.value
        'RECALL'
    """

    STORE = "STORE"
    RECALL = "RECALL"
    FORGET = "FORGET"
    COMPACT = "COMPACT"
    EXPORT = "EXPORT"
    IMPORT = "IMPORT"
    BULK_STORE = "BULK_STORE"
    REINDEX = "REINDEX"


class EventStatus(_CaseInsensitiveStrEnum):
    """How it went. Values are the upper-case names; lookup ignores case.

    Example:
        >>> from axon_audit import EventStatus
        >>> EventStatus("failure") is EventStatus.FAILURE
        True
    """

    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    PARTIAL = "PARTIAL"


OPERATIONS: tuple[str, ...] = tuple(m.value for m in OperationType)
STATUSES: tuple[str, ...] = tuple(m.value for m in EventStatus)

# --------------------------------------------------------------------------- time


def now_us() -> int:
    """Microseconds since the Unix epoch, UTC."""
    import time

    return time.time_ns() // 1000


def to_us(value: datetime, argument: str = "timestamp") -> int:
    """Exact microseconds since the epoch. A naive datetime is local time, as
    `datetime.timestamp()` reads it; an aware one is taken as given."""
    if not isinstance(value, datetime):
        raise AuditTypeError(f"{argument} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.astimezone(UTC)  # interprets the naive value as local time
    return (value - EPOCH) // _ONE_US


def from_us(us: int) -> datetime:
    """The aware UTC datetime for microseconds since the epoch."""
    return EPOCH + timedelta(microseconds=us)


def format_us(us: int) -> str:
    """`2025-01-15T10:30:45.123456Z`, the export format's timestamp."""
    return from_us(us).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(value: Any, argument: str = "timestamp") -> int:
    """Microseconds from a datetime or an ISO 8601 string (`…Z` or with offset)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise AuditValueError(f"{argument} must be an ISO 8601 timestamp, got {value!r}") from None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)  # export files are UTC
    return to_us(value, argument)


# --------------------------------------------------------------------------- ids

_ID_MOD = 100_000_000


class _IdSource:
    """Process-unique id parts: a random node (renewed after fork) and a counter.

    An event id is ``evt_`` + 16-digit UTC microseconds + 6 hex node + 8-digit
    sequence: it sorts by time, and is unique across processes and restarts.
    """

    def __init__(self) -> None:
        self.renew()

    def renew(self) -> None:
        import itertools

        self.node = secrets.token_hex(3)
        self.counter = itertools.count()


IDS = _IdSource()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=IDS.renew)


# Times before 1970 (negative µs) are written "-" + 15 digits of (µs + 10**15): "-"
# sorts before every digit and the digits grow with the time, so ids still sort
# by time back to 1938-04-24 (10**15 µs before 1970); earlier times are refused.
ID_MIN_US = -(10**15)
ID_MAX_US = 10**16 - 1  # 2286-11-20


def id_time_text(ts_us: int) -> str:
    """The 16 characters of an event id that give its time, sortable as text.

    Example:
        >>> from axon_audit.model.event import id_time_text
        >>> id_time_text(1_736_937_045_123_456), id_time_text(-1)
        ('1736937045123456', '-999999999999999')
        >>> sorted([id_time_text(5), id_time_text(-5), id_time_text(-6)]) == [id_time_text(t) for t in (-6, -5, 5)]
        True
    """
    if not ID_MIN_US <= ts_us <= ID_MAX_US:
        raise AuditValueError(f"timestamp: {ts_us} µs since 1970 is outside the range event ids can sort "
                              "(1938-04-24 to 2286-11-20 UTC); pass an event_id or fix the time")
    return f"{ts_us:016d}" if ts_us >= 0 else f"-{ts_us - ID_MIN_US:015d}"


def make_event_id(ts_us: int, seq: int, node: str) -> str:
    if 0 <= ts_us <= ID_MAX_US:  # the common case, kept to one format call
        return f"evt_{ts_us:016d}{node}{seq % _ID_MOD:08d}"
    return f"evt_{id_time_text(ts_us)}{node}{seq % _ID_MOD:08d}"


# --------------------------------------------------------------------------- validation
# The logger's hot path inlines the cheap accept-checks and calls these only for
# anything off the fast path (and to raise the error that names the argument).


def coerce_operation(value: Any) -> OperationType:
    if isinstance(value, OperationType):
        return value
    if isinstance(value, str):
        found = OperationType.__members__.get(value.strip().upper())
        if found is not None:
            return found
        raise AuditValueError(f"operation must be one of {', '.join(OPERATIONS)}, got {value!r}")
    raise AuditTypeError(f"operation must be an OperationType or str, got {type(value).__name__}")


def coerce_status(value: Any) -> EventStatus:
    if isinstance(value, EventStatus):
        return value
    if isinstance(value, str):
        found = EventStatus.__members__.get(value.strip().upper())
        if found is not None:
            return found
        raise AuditValueError(f"status must be one of {', '.join(STATUSES)}, got {value!r}")
    raise AuditTypeError(f"status must be an EventStatus or str, got {type(value).__name__}")


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
            ids = ids[:i] + (check_text(item, f"entry_ids[{i}]"),) + ids[i + 1 :]  # type: ignore[operator]
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


# --------------------------------------------------------------------------- the event

# Row layout, shared by the logger's buffer, the event and the schema module.
# (ts_us, seq, node, operation, user_id, session_id, entry_ids, metadata_json, status,
#  error_message, duration_ms). seq/node make the id of a logged event (seq is -1
# where the event carries an explicit id instead).
R_TS, R_SEQ, R_NODE, R_OP, R_USER, R_SESSION, R_ENTRIES, R_META, R_STATUS, R_ERROR, R_DURATION = range(11)

_new = object.__new__


class AuditEvent:
    """One audit event: who did what to which entries, when, and how it went.

    Immutable. `timestamp` is an aware UTC datetime; `metadata` is JSON data.

    Example:
        >>> from axon_audit import AuditEvent, OperationType
        >>> event = AuditEvent(operation=OperationType.STORE, user_id="user_123",
        ...                    entry_ids=["entry_1"], metadata={"importance": 0.8})
        >>> event.event_id.startswith("evt_"), event.status.value
        (True, 'SUCCESS')
        >>> AuditEvent.from_dict(event.to_dict()) == event
        True
    """

    __slots__ = ("_row", "_id", "_dt")

    def __init__(
        self,
        operation: OperationType | str,
        user_id: str | None = None,
        session_id: str | None = None,
        entry_ids: Iterable[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        status: EventStatus | str = EventStatus.SUCCESS,
        error_message: str | None = None,
        duration_ms: float | None = None,
        event_id: str | None = None,
        timestamp: datetime | str | None = None,
    ) -> None:
        ts = now_us() if timestamp is None else parse_timestamp(timestamp)
        row = (
            ts,
            -1,
            "",
            coerce_operation(operation),
            check_text(user_id, "user_id"),
            check_text(session_id, "session_id"),
            coerce_entry_ids(entry_ids),
            encode_metadata(metadata),
            coerce_status(status),
            check_text(error_message, "error_message"),
            coerce_duration(duration_ms),
        )
        if event_id is None:
            event_id = make_event_id(ts, next(IDS.counter), IDS.node)
        elif check_text(event_id, "event_id") == "":
            raise AuditValueError("event_id must not be empty")
        self._row = row
        self._id = event_id

    @classmethod
    def _from_row(cls, row: tuple, event_id: str | None) -> "AuditEvent":
        ev = _new(cls)
        ev._row = row
        ev._id = event_id
        return ev

    # -- fields
    @property
    def event_id(self) -> str:
        """`evt_…`: sorts by time, unique across processes."""
        eid = self._id
        if eid is None:
            row = self._row
            eid = self._id = make_event_id(row[R_TS], row[R_SEQ], row[R_NODE])
        return eid

    @property
    def timestamp(self) -> datetime:
        """When the event was logged (aware, UTC)."""
        try:
            return self._dt
        except AttributeError:
            self._dt = from_us(self._row[R_TS])
            return self._dt

    @property
    def timestamp_us(self) -> int:
        """`timestamp` as microseconds since the epoch."""
        return self._row[R_TS]

    @property
    def operation(self) -> OperationType:
        return self._row[R_OP]

    @property
    def user_id(self) -> str | None:
        return self._row[R_USER]

    @property
    def session_id(self) -> str | None:
        return self._row[R_SESSION]

    @property
    def entry_ids(self) -> list[str]:
        """A fresh list each time: the event itself cannot change."""
        return list(self._row[R_ENTRIES])

    @property
    def metadata(self) -> dict[str, Any]:
        """A fresh copy each time, decoded from the stored JSON."""
        text = self._row[R_META]
        return orjson.loads(text) if text else {}

    @property
    def status(self) -> EventStatus:
        return self._row[R_STATUS]

    @property
    def error_message(self) -> str | None:
        return self._row[R_ERROR]

    @property
    def duration_ms(self) -> float | None:
        return self._row[R_DURATION]

    # -- conversion
    def to_dict(self) -> dict[str, Any]:
        """The export format's event object, keys in its order.

        Example:
            >>> from axon_audit import AuditEvent
            >>> list(AuditEvent(operation="recall").to_dict())[:3]
            ['event_id', 'timestamp', 'operation']
        """
        row = self._row
        return {
            "event_id": self.event_id,
            "timestamp": format_us(row[R_TS]),
            "operation": row[R_OP].value,
            "user_id": row[R_USER],
            "session_id": row[R_SESSION],
            "entry_ids": list(row[R_ENTRIES]),
            "metadata": self.metadata,
            "status": row[R_STATUS].value,
            "error_message": row[R_ERROR],
            "duration_ms": row[R_DURATION],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "AuditEvent":
        """The reverse of `to_dict` (extra keys are ignored).

        Example:
            >>> from axon_audit import AuditEvent
            >>> e = AuditEvent.from_dict({"event_id": "evt_1", "timestamp": "2025-01-15T10:30:45.123456Z",
            ...                           "operation": "STORE"})
            >>> e.timestamp.isoformat()
            '2025-01-15T10:30:45.123456+00:00'
        """
        if not isinstance(data, Mapping):
            raise AuditTypeError(f"data must be a mapping, got {type(data).__name__}")
        if "operation" not in data:
            raise AuditValueError("data has no 'operation'")
        return cls(
            operation=data["operation"],
            user_id=data.get("user_id"),
            session_id=data.get("session_id"),
            entry_ids=data.get("entry_ids"),
            metadata=data.get("metadata"),
            status=data.get("status") or EventStatus.SUCCESS,
            error_message=data.get("error_message"),
            duration_ms=data.get("duration_ms"),
            event_id=data.get("event_id"),
            timestamp=data.get("timestamp"),
        )

    def _key(self) -> tuple:
        row = self._row
        return (self.event_id, row[R_TS], row[R_OP], row[R_USER], row[R_SESSION], tuple(row[R_ENTRIES]),
                self.metadata, row[R_STATUS], row[R_ERROR], row[R_DURATION])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AuditEvent):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self.event_id)

    def __reduce__(self) -> tuple:
        return (AuditEvent.from_dict, (self.to_dict(),))

    def __repr__(self) -> str:
        row = self._row
        return (f"AuditEvent(event_id={self.event_id!r}, timestamp={format_us(row[R_TS])!r}, "
                f"operation={row[R_OP].value}, user_id={row[R_USER]!r}, status={row[R_STATUS].value})")
