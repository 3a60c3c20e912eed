"""The event model: enums, AuditEvent, ids, the export object."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axon_audit import AuditEvent, AuditLogger, AuditTypeError, AuditValueError, EventStatus, OperationType
from axon_audit.model.ids import make_event_id
from axon_audit.model.schema import _id_expr
from axon_audit.model.timestamps import format_us, parse_timestamp, to_us

EXPORT_KEYS = ["event_id", "timestamp", "operation", "user_id", "session_id", "entry_ids", "metadata",
               "status", "error_message", "duration_ms"]


def test_operation_values_are_the_upper_case_names():
    assert [m.value for m in OperationType] == [
        "STORE", "RECALL", "FORGET", "COMPACT", "EXPORT", "IMPORT", "BULK_STORE", "REINDEX"]
    assert [m.value for m in EventStatus] == ["SUCCESS", "FAILURE", "PARTIAL"]


@pytest.mark.parametrize("text", ["store", "Store", "STORE", " store "])
def test_lookup_by_value_ignores_case(text):
    assert OperationType(text) is OperationType.STORE
    assert EventStatus(text.replace("store", "failure").replace("Store", "Failure").replace("STORE", "FAILURE")) \
        is EventStatus.FAILURE


def test_unknown_value_is_refused():
    with pytest.raises(ValueError):
        OperationType("teleport")


def test_event_fills_id_and_time():
    before = datetime.now(timezone.utc)
    e = AuditEvent(operation=OperationType.STORE)
    after = datetime.now(timezone.utc)
    assert e.event_id.startswith("evt_")
    assert before - timedelta(microseconds=1) <= e.timestamp <= after
    assert e.timestamp.tzinfo is not None and e.timestamp.utcoffset() == timedelta(0)
    assert e.entry_ids == [] and e.metadata == {} and e.status is EventStatus.SUCCESS
    assert e.user_id is None and e.error_message is None and e.duration_ms is None


def test_event_is_immutable_and_hands_out_copies():
    e = AuditEvent(operation="store", entry_ids=["a"], metadata={"k": [1]})
    with pytest.raises(AttributeError):
        e.user_id = "x"  # type: ignore[misc]
    e.entry_ids.append("b")
    e.metadata["k"].append(2)
    assert e.entry_ids == ["a"] and e.metadata == {"k": [1]}


def test_to_dict_is_the_export_object():
    e = AuditEvent(operation=OperationType.STORE, user_id="user_123", session_id="session_abc",
                   entry_ids=["entry_1"], metadata={"importance": 0.8, "tags": ["verified"]},
                   duration_ms=45.2, timestamp=datetime(2025, 1, 15, 10, 30, 45, 123456, tzinfo=timezone.utc),
                   event_id="evt_abc123")
    d = e.to_dict()
    assert list(d) == EXPORT_KEYS
    assert d == {
        "event_id": "evt_abc123", "timestamp": "2025-01-15T10:30:45.123456Z", "operation": "STORE",
        "user_id": "user_123", "session_id": "session_abc", "entry_ids": ["entry_1"],
        "metadata": {"importance": 0.8, "tags": ["verified"]}, "status": "SUCCESS",
        "error_message": None, "duration_ms": 45.2,
    }


def test_ids_sort_by_time_and_are_unique():
    ids = [AuditEvent(operation="store").event_id for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert make_event_id(1, 5, "abcdef") < make_event_id(2, 0, "000000")


def test_timestamp_helpers_are_exact():
    dt = datetime(2025, 1, 15, 10, 30, 45, 123456, tzinfo=timezone.utc)
    assert format_us(to_us(dt)) == "2025-01-15T10:30:45.123456Z"
    assert parse_timestamp("2025-01-15T10:30:45.123456Z") == to_us(dt)
    assert parse_timestamp("2025-01-15T11:30:45.123456+01:00") == to_us(dt)
    with pytest.raises(AuditValueError, match="timestamp"):
        parse_timestamp("yesterday")


@pytest.mark.parametrize(
    "kwargs, error, word",
    [
        ({"operation": "teleport"}, AuditValueError, "operation"),
        ({"operation": 3}, AuditTypeError, "operation"),
        ({"operation": "store", "status": "maybe"}, AuditValueError, "status"),
        ({"operation": "store", "user_id": 42}, AuditTypeError, "user_id"),
        ({"operation": "store", "entry_ids": "entry_1"}, AuditTypeError, "entry_ids"),
        ({"operation": "store", "entry_ids": ["a", 2]}, AuditTypeError, r"entry_ids\[1\]"),
        ({"operation": "store", "metadata": {"s": {1, 2}}}, AuditValueError, "metadata"),
        ({"operation": "store", "metadata": {"t": datetime(2025, 1, 1)}}, AuditValueError, "metadata"),
        ({"operation": "store", "metadata": {"x": math.nan}}, AuditValueError, "metadata"),
        ({"operation": "store", "metadata": [1]}, AuditTypeError, "metadata"),
        ({"operation": "store", "duration_ms": -1.0}, AuditValueError, "duration_ms"),
        ({"operation": "store", "duration_ms": math.inf}, AuditValueError, "duration_ms"),
        ({"operation": "store", "duration_ms": "5"}, AuditTypeError, "duration_ms"),
    ],
)
def test_bad_fields_are_refused_naming_the_argument(kwargs, error, word):
    with pytest.raises(error, match=word):
        AuditEvent(**kwargs)


json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | \
    st.floats(allow_nan=False, allow_infinity=False) | st.text()
json_values = st.recursive(json_scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(), c, max_size=4),
                           max_leaves=12)
texts = st.text().filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s))


@settings(max_examples=150, deadline=None)
@given(
    op=st.sampled_from(list(OperationType)),
    status=st.sampled_from(list(EventStatus)),
    user=st.none() | texts,
    session=st.none() | texts,
    entries=st.lists(texts, max_size=5),
    metadata=st.dictionaries(texts, json_values, max_size=5),
    error=st.none() | texts,
    duration=st.none() | st.floats(min_value=0, allow_infinity=False),
    us=st.integers(0, 7_000_000_000_000_000),
)
def test_dict_round_trip_is_exact(op, status, user, session, entries, metadata, error, duration, us):
    ts = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=us)
    e = AuditEvent(operation=op, user_id=user, session_id=session, entry_ids=entries, metadata=metadata,
                   status=status, error_message=error, duration_ms=duration, timestamp=ts)
    back = AuditEvent.from_dict(e.to_dict())
    assert back == e
    assert back.to_dict() == e.to_dict()
    assert back.timestamp == ts and back.metadata == metadata


@settings(max_examples=100, deadline=None)
@given(times=st.lists(st.integers(-(10**15), 10**16 - 1), min_size=1, max_size=40))
def test_generated_ids_sort_by_time_before_and_after_1970(times):
    """Ids made by log_batch (vectorized) and by AuditEvent (one at a time) share
    one encoding, and sorting them as text sorts their events by time."""
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    audit = AuditLogger(max_events=10**6)
    audit.log_batch([{"operation": "store", "timestamp": epoch + timedelta(microseconds=us)} for us in times])
    df = audit.scan().select("event_id", "timestamp").collect().sort("event_id")
    assert df["timestamp"].is_sorted()
    assert sorted(df["timestamp"].dt.epoch("us").to_list()) == sorted(times)
    one_by_one = [make_event_id(us, i, "abcdef") for i, us in enumerate(times)]
    vectorized = pl.select(_id_expr(pl.Series(times, dtype=pl.Int64), pl.int_range(0, len(times)),
                                    pl.lit("abcdef"))).to_series().to_list()
    assert one_by_one == vectorized
    assert all(len(i) == len(one_by_one[0]) for i in one_by_one)


def test_times_ids_cannot_sort_are_refused_unless_the_row_brings_its_id():
    audit = AuditLogger()
    old = datetime(1900, 1, 1, tzinfo=timezone.utc)
    with pytest.raises(AuditValueError, match=r"events: row 1: timestamp 1900-01-01 .* outside the range"):
        audit.log_batch([{"operation": "store"}, {"operation": "store", "timestamp": old}])
    assert audit.event_count == 0  # a refused batch logs nothing
    audit.log_batch([{"operation": "store", "timestamp": old, "event_id": "legacy-1"}])
    assert audit.get_event("legacy-1").timestamp == old
    with pytest.raises(AuditValueError, match=r"timestamp: .* outside the range event ids can sort"):
        AuditEvent("store", timestamp=old)
