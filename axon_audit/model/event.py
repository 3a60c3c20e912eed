"""`AuditEvent`: one audit event, a thin immutable view over one row tuple.

An `AuditEvent` is a view over the *row tuple* the logger appends to its buffer
(layout in `axon_audit.model.row`). Creating one costs a single object
allocation; the event id, the `datetime` and the metadata dict are made only
when read. The events of a query answer start with no row at all: they share
the answer's columns (`axon_audit.model.frame_rows`), and take their id and row
from them on first read.

The enums, ids, UTC time helpers and value coercions it uses live in their own
modules (`enums`, `ids`, `timestamps`, `coerce`). It also has pydantic's shapes
(`model_dump`, `model_dump_json`, `model_validate`, `model_validate_json`) for
code written against Axon's pydantic `AuditEvent`, without importing pydantic.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import Enum
from itertools import repeat
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

import orjson

from axon_audit.display.cards import event_card
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
# Rows hold the enums' values (model.row says why); the members are looked up on read.
_OP_OF: dict[str, OperationType] = {m.value: m for m in OperationType}
_STATUS_OF: dict[str, EventStatus] = {m.value: m for m in EventStatus}
_FIELDS = ("event_id", "timestamp", "operation", "user_id", "session_id", "entry_ids", "metadata", "status",
           "error_message", "duration_ms")
# The fields' defaults, as a pydantic model declares them (`exclude_defaults`).
_DEFAULTS: dict[str, Any] = {"user_id": None, "session_id": None, "entry_ids": [], "metadata": {},
                             "status": EventStatus.SUCCESS, "error_message": None, "duration_ms": None}


class _Columns(Protocol):
    """Where the events of one answer find their ids and rows (`frame_rows.FrameRows`)."""

    @property
    def built(self) -> bool: ...

    def give_ids(self) -> None: ...

    def give_rows(self) -> None: ...


def _field_names(names: Iterable[str], argument: str) -> set[str]:
    if isinstance(names, str) or not isinstance(names, Iterable):
        raise AuditTypeError(f"{argument} must be a set of field names, got {type(names).__name__}")
    chosen = set(names)
    unknown = sorted(map(str, chosen - set(_FIELDS)))
    if unknown:
        raise AuditValueError(f"{argument} names unknown fields {unknown}; fields: {', '.join(_FIELDS)}")
    return chosen


def _text_of(value: Any) -> Any:
    # Another model's UUID id and enum members (Axon's) as their text; ours pass as they are.
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Enum) and not isinstance(value, (OperationType, EventStatus)):
        return value.value
    return value


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

    __slots__ = ("_dt", "_id", "_row", "_store")
    _row: Row  # unset until first read for an answer's event (`_of_columns`)
    _id: str | None  # None until first read for a logged event: made from ts/seq/node
    _dt: datetime  # set on first read of `timestamp`
    _store: _Columns | None  # an answer's event: its columns until its _row and _id are set, then None

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
            coerce_operation(operation).value,
            check_text(user_id, "user_id"),
            check_text(session_id, "session_id"),
            coerce_entry_ids(entry_ids),
            encode_metadata(metadata),
            coerce_status(status).value,
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

    @classmethod
    def _of_columns(cls, store: _Columns, n: int) -> list[AuditEvent]:
        """`n` events over `store` (its rows 0..n-1), nothing read yet."""
        out = list(map(_new, repeat(cls, n)))
        # One object per event is the answer itself: only the allocation and one slot here.
        for ev in out:
            ev._store = store
        return out

    if not TYPE_CHECKING:  # hidden from type checkers: any attribute would type as Any
        def __getattr__(self, name: str) -> Any:
            # Python calls this only for an unset slot or an unknown name: the first read
            # of an answer's event has its store hand every event of the answer its id
            # (the id alone is asked for) or its row and id.
            if name == "_row" or name == "_id":
                store = self._store
                if store is not None:  # None: handed out meanwhile (another thread read the answer)
                    if name == "_id" and not store.built:
                        store.give_ids()
                    else:
                        store.give_rows()
                return object.__getattribute__(self, name)
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}", name=name, obj=self)

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
        return _OP_OF[self._row[R_OP]]

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
        return _STATUS_OF[self._row[R_STATUS]]

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
            "operation": row[R_OP],
            "user_id": row[R_USER],
            "session_id": row[R_SESSION],
            "entry_ids": list(row[R_ENTRIES]),
            "metadata": self.metadata,
            "status": row[R_STATUS],
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

    # -- pydantic-shaped conversion (FastAPI code calls these; pydantic is not imported)
    def model_dump(
        self,
        *,
        mode: str = "python",
        include: Iterable[str] | None = None,
        exclude: Iterable[str] | None = None,
        exclude_none: bool = False,
        exclude_defaults: bool = False,
        by_alias: bool = False,
    ) -> dict[str, Any]:
        """The fields as a dict, as pydantic's `BaseModel.model_dump`: mode "python"
        gives the aware `datetime` and the enum members, "json" JSON values (the
        export format's timestamp text, the enum values). `include`/`exclude` pick
        fields; `exclude_none` drops None values, `exclude_defaults` values equal
        to the field's default. `by_alias` is accepted (no field has an alias).

        Example:
            >>> from axon_audit import AuditEvent
            >>> e = AuditEvent(operation="store", user_id="u1", event_id="evt_1",
            ...                timestamp="2025-01-15T10:30:45.123456Z")
            >>> e.model_dump(mode="json", exclude_none=True, exclude={"metadata", "entry_ids"})
            {'event_id': 'evt_1', 'timestamp': '2025-01-15T10:30:45.123456Z', 'operation': 'STORE', \
'user_id': 'u1', 'status': 'SUCCESS'}
            >>> e.model_dump()["operation"]
            <OperationType.STORE: 'STORE'>
        """
        if mode not in ("python", "json"):
            raise AuditValueError(f"mode must be 'python' or 'json', got {mode!r}")
        if not isinstance(by_alias, bool):
            raise AuditTypeError(f"by_alias must be a bool, got {type(by_alias).__name__}")
        data = self.to_dict()
        if mode == "python":
            data.update(timestamp=self.timestamp, operation=self.operation, status=self.status)
        keep = set(data) if include is None else _field_names(include, "include")
        keep -= set() if exclude is None else _field_names(exclude, "exclude")
        return {k: v for k, v in data.items()
                if k in keep and not (exclude_none and v is None)
                and not (exclude_defaults and k in _DEFAULTS and v == _DEFAULTS[k])}

    def model_dump_json(self, *, indent: int | None = None, **options: Any) -> str:
        """`model_dump(mode="json", **options)` as JSON text: compact, as pydantic
        writes it, or indented by `indent` spaces."""
        data = self.model_dump(mode="json", **options)
        if indent is None:
            return orjson.dumps(data).decode()
        if isinstance(indent, bool) or not isinstance(indent, int) or indent < 0:
            raise AuditValueError(f"indent must be an int >= 0 or None, got {indent!r}")
        return json.dumps(data, indent=indent, ensure_ascii=False)

    @classmethod
    def model_validate(cls, obj: Any, *, from_attributes: bool | None = None) -> AuditEvent:
        """An event from a dict (`from_dict`'s rules) or an `AuditEvent` (itself:
        events are immutable); with `from_attributes`, from any object carrying the
        fields as attributes (an Axon pydantic event: its UUID id and enums are
        taken as their text). Naive times follow `AuditEvent`'s rule; Axon's
        utcnow() times are UTC: read those files with `io.legacy.load_axon_export`.

        Example:
            >>> from axon_audit import AuditEvent
            >>> e = AuditEvent(operation="forget", entry_ids=["entry_1"])
            >>> AuditEvent.model_validate(e.model_dump()) == e, AuditEvent.model_validate(e) is e
            (True, True)
        """
        if isinstance(obj, AuditEvent):
            return obj
        if not isinstance(obj, Mapping):
            if not from_attributes:
                raise AuditTypeError(f"model_validate takes a dict or an AuditEvent (from_attributes=True: "
                                     f"any object with the fields), got {type(obj).__name__}")
            obj = {f: getattr(obj, f) for f in _FIELDS if hasattr(obj, f)}
        return cls.from_dict({k: _text_of(v) for k, v in obj.items()})

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray) -> AuditEvent:
        """`model_validate` of one JSON object's text (`model_dump_json`'s reverse).

        Example:
            >>> from axon_audit import AuditEvent
            >>> e = AuditEvent(operation="recall", metadata={"k": 5}, duration_ms=1.5)
            >>> AuditEvent.model_validate_json(e.model_dump_json()) == e
            True
        """
        if not isinstance(json_data, (str, bytes, bytearray)):
            raise AuditTypeError(f"json_data must be str or bytes, got {type(json_data).__name__}")
        try:
            data = orjson.loads(json_data)
        except orjson.JSONDecodeError as exc:
            raise AuditValueError(f"json_data is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise AuditValueError(f"json_data must hold one JSON object, got {type(data).__name__}")
        return cls.model_validate(data)

    def model_copy(self, *, update: Mapping[str, Any] | None = None) -> AuditEvent:
        """A new event with the fields of `update` replaced (pydantic's `model_copy`)."""
        return self if not update else AuditEvent.from_dict({**self.model_dump(), **update})

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
                f"operation={row[R_OP]}, user_id={row[R_USER]!r}, status={row[R_STATUS]})")

    def _repr_html_(self) -> str:
        return event_card(self)
