"""`AuditEvent`: one audit event, a thin immutable view over one row tuple.

An `AuditEvent` is a view over the *row tuple* the logger appends to its buffer
(layout in `axon_audit.model.row`). Creating one costs a single object
allocation; the event id, the `datetime` and the metadata dict are made only
when read.

The enums, ids, UTC time helpers and value coercions it uses live in their own
modules (`enums`, `ids`, `timestamps`, `coerce`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import orjson

from axon_audit.exceptions import AuditTypeError, AuditValueError
from axon_audit.model.coerce import (
    check_text,
    coerce_duration,
    coerce_entry_ids,
    coerce_operation,
    coerce_status,
    encode_metadata,
)
from axon_audit.model.enums import EventStatus, OperationType
from axon_audit.model.ids import IDS, make_event_id
from axon_audit.model.row import (
    R_DURATION,
    R_ENTRIES,
    R_ERROR,
    R_META,
    R_NODE,
    R_OP,
    R_SEQ,
    R_SESSION,
    R_STATUS,
    R_TS,
    R_USER,
    Row,
)
from axon_audit.model.timestamps import format_us, from_us, now_us, parse_timestamp

__all__ = ["AuditEvent"]

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

    __slots__ = ("_dt", "_id", "_row")
    _row: Row
    _id: str | None  # None until first read for a logged event: made from ts/seq/node
    _dt: datetime  # set on first read of `timestamp`

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
        *,
        naive_time: str | None = None,
    ) -> None:
        # A naive timestamp reads by `naive_time` ("local"/"utc"; default $AXON_AUDIT_NAIVE_TIME or local).
        ts = now_us() if timestamp is None else parse_timestamp(timestamp, naive_time=naive_time)
        row: Row = (
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
    def _from_row(cls, row: Row, event_id: str | None) -> AuditEvent:
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
    def from_dict(cls, data: Mapping[str, Any]) -> AuditEvent:
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

    def _key(self) -> tuple[Any, ...]:
        row = self._row
        return (self.event_id, row[R_TS], row[R_OP], row[R_USER], row[R_SESSION], tuple(row[R_ENTRIES]),
                self.metadata, row[R_STATUS], row[R_ERROR], row[R_DURATION])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AuditEvent):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self.event_id)

    def __reduce__(self) -> tuple[Any, ...]:
        return (AuditEvent.from_dict, (self.to_dict(),))

    def __repr__(self) -> str:
        row = self._row
        return (f"AuditEvent(event_id={self.event_id!r}, timestamp={format_us(row[R_TS])!r}, "
                f"operation={row[R_OP].value}, user_id={row[R_USER]!r}, status={row[R_STATUS].value})")
