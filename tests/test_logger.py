"""AuditLogger: logging, every filter of query_events, statistics, counters."""

from __future__ import annotations

import gc
import os
import statistics as pystats
import time
from datetime import datetime, timedelta, timezone

import pytest

from axon_audit import AuditLogger, AuditTypeError, AuditValueError, EventStatus, OperationType

UTC = timezone.utc
T0 = datetime(2025, 1, 15, 10, 0, tzinfo=UTC)


def batch_logger(rows, **kwargs):
    """A logger holding events with chosen timestamps (through log_batch)."""
    audit = AuditLogger(max_events=10**6, **kwargs)
    audit.log_batch(rows)
    return audit


@pytest.fixture
def sample():
    rows = [
        {"timestamp": T0 + timedelta(minutes=0), "operation": "STORE", "user_id": "alice", "session_id": "s1",
         "entry_ids": ["e1", "e2"], "duration_ms": 10.0},
        {"timestamp": T0 + timedelta(minutes=1), "operation": "RECALL", "user_id": "alice", "session_id": "s1",
         "entry_ids": ["e1"], "duration_ms": 20.0},
        {"timestamp": T0 + timedelta(minutes=2), "operation": "RECALL", "user_id": "bob", "session_id": "s2",
         "status": "FAILURE", "error_message": "timeout", "duration_ms": 5000.0},
        {"timestamp": T0 + timedelta(minutes=3), "operation": "FORGET", "user_id": "alice", "session_id": "s3",
         "entry_ids": ["e2"], "duration_ms": 30.0},
        {"timestamp": T0 + timedelta(minutes=4), "operation": "STORE", "user_id": None, "status": "PARTIAL",
         "entry_ids": ["e3"]},
        {"timestamp": T0 + timedelta(minutes=5), "operation": "STORE", "user_id": "bob", "session_id": "s2",
         "duration_ms": 40.0},
    ]
    return batch_logger(rows)


def ops(events):
    return [(e.operation.value, e.user_id) for e in events]


async def test_log_event_returns_the_event_and_it_is_queryable():
    audit = AuditLogger()
    event = await audit.log_event(
        operation=OperationType.STORE, user_id="user_123", session_id="session_abc",
        entry_ids=["entry_1", "entry_2"], metadata={"source": "api", "batch_size": 2},
        status=EventStatus.SUCCESS, duration_ms=45.2)
    [got] = audit.query_events(user_id="user_123")
    assert got == event
    assert got.to_dict() == event.to_dict()
    assert got.metadata == {"source": "api", "batch_size": 2}
    assert got.entry_ids == ["entry_1", "entry_2"] and got.duration_ms == 45.2


def test_sync_log_takes_the_same_arguments_and_strings():
    audit = AuditLogger()
    e = audit.log("recall", "u1", "s1", ["e1"], {"k": 1}, "failure", "boom", 3)
    assert (e.operation, e.status, e.duration_ms, e.error_message) == \
        (OperationType.RECALL, EventStatus.FAILURE, 3.0, "boom")
    assert audit.query_events(status="FAILURE") == [e]


def test_query_sees_every_returned_event_without_flush():
    audit = AuditLogger(max_events=10**6, flush_size=1000)
    for i in range(2500):
        audit.log("store", user_id=f"u{i % 3}")
    assert audit.event_count == 2500
    assert len(audit.query_events()) == 2500
    assert len(audit.query_events(user_id="u1")) == 833


def test_results_are_newest_first(sample):
    events = sample.query_events()
    stamps = [e.timestamp for e in events]
    assert stamps == sorted(stamps, reverse=True)
    assert ops(events)[0] == ("STORE", "bob")


def test_ties_in_time_put_the_latest_logged_first():
    audit = AuditLogger()
    same = T0
    audit.log_batch([{"timestamp": same, "operation": "STORE", "user_id": "first"},
                     {"timestamp": same, "operation": "STORE", "user_id": "second"}])
    assert [e.user_id for e in audit.query_events()] == ["second", "first"]


def test_filter_user(sample):
    assert ops(sample.query_events(user_id="alice")) == [("FORGET", "alice"), ("RECALL", "alice"), ("STORE", "alice")]
    assert sample.query_events(user_id="nobody") == []


def test_filter_several_users_and_operations(sample):
    got = sample.query_events(user_id=["alice", "bob"], operation=[OperationType.STORE, "forget"])
    assert ops(got) == [("STORE", "bob"), ("FORGET", "alice"), ("STORE", "alice")]


def test_filter_session(sample):
    assert ops(sample.query_events(session_id="s2")) == [("STORE", "bob"), ("RECALL", "bob")]


def test_filter_operation_and_status(sample):
    assert ops(sample.query_events(operation="RECALL", status=EventStatus.FAILURE)) == [("RECALL", "bob")]
    assert ops(sample.query_events(operation=OperationType.STORE, status="success")) == \
        [("STORE", "bob"), ("STORE", "alice")]
    assert len(sample.query_events(status=["PARTIAL", "FAILURE"])) == 2


def test_time_bounds_are_inclusive(sample):
    got = sample.query_events(start_time=T0 + timedelta(minutes=1), end_time=T0 + timedelta(minutes=3))
    assert [e.timestamp for e in got] == [T0 + timedelta(minutes=m) for m in (3, 2, 1)]
    assert len(sample.query_events(start_time=T0 + timedelta(minutes=5))) == 1
    assert len(sample.query_events(end_time=T0)) == 1


def test_inverted_time_range_matches_nothing(sample):
    assert sample.query_events(start_time=T0 + timedelta(minutes=3), end_time=T0) == []


def test_naive_datetimes_are_local_time(sample, monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")  # UTC+9, no DST
    time.tzset()
    try:
        local = datetime(2025, 1, 15, 19, 2)  # 10:02 UTC
        got = sample.query_events(start_time=local)
        assert [e.timestamp.minute for e in got] == [5, 4, 3, 2]
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_filter_entry_ids_matches_any(sample):
    assert ops(sample.query_events(entry_ids=["e2"])) == [("FORGET", "alice"), ("STORE", "alice")]
    assert len(sample.query_events(entry_ids=["e1", "e3"])) == 3
    assert sample.query_events(entry_ids=["zz"]) == []


def test_limit_keeps_the_newest(sample):
    assert ops(sample.query_events(limit=2)) == [("STORE", "bob"), ("STORE", None)]
    assert sample.query_events(limit=0) == []


def test_combined_filters(sample):
    got = sample.query_events(user_id="alice", operation="RECALL", start_time=T0, end_time=T0 + timedelta(hours=1),
                              entry_ids=["e1"], status="SUCCESS", session_id="s1")
    assert ops(got) == [("RECALL", "alice")]


async def test_get_events_is_the_async_query(sample):
    assert await sample.get_events(user_id="bob") == sample.query_events(user_id="bob")


@pytest.mark.parametrize(
    "kwargs, error, word",
    [
        ({"user_id": 5}, AuditTypeError, "user_id"),
        ({"operation": "fly"}, AuditValueError, "operation"),
        ({"status": "meh"}, AuditValueError, "status"),
        ({"start_time": "2025-01-01"}, AuditTypeError, "start_time"),
        ({"end_time": 3}, AuditTypeError, "end_time"),
        ({"limit": -1}, AuditValueError, "limit"),
        ({"limit": 1.5}, AuditTypeError, "limit"),
        ({"entry_ids": [1]}, AuditTypeError, "entry_ids"),
    ],
)
def test_bad_filters_name_the_argument(sample, kwargs, error, word):
    with pytest.raises(error, match=word):
        sample.query_events(**kwargs)


# ---------------------------------------------------------------- statistics


def test_statistics_match_a_hand_computation(sample):
    s = sample.get_statistics()
    durations = [10.0, 20.0, 5000.0, 30.0, 40.0]
    assert s["total_events"] == 6
    assert s["success_rate"] == pytest.approx(4 / 6)
    assert s["failure_count"] == 1
    assert s["avg_duration_ms"] == pytest.approx(sum(durations) / 5)
    assert s["p50_duration_ms"] == pytest.approx(pystats.median(durations))
    q = pystats.quantiles(durations, n=100, method="inclusive")
    assert s["p95_duration_ms"] == pytest.approx(q[94])
    assert s["p99_duration_ms"] == pytest.approx(q[98])
    assert s["by_operation"] == {"STORE": 3, "RECALL": 2, "FORGET": 1, "COMPACT": 0, "EXPORT": 0, "IMPORT": 0,
                                 "BULK_STORE": 0, "REINDEX": 0}
    assert s["by_status"] == {"SUCCESS": 4, "FAILURE": 1, "PARTIAL": 1}
    assert s["unique_users"] == 2
    assert s["first_event"] == T0 and s["last_event"] == T0 + timedelta(minutes=5)


def test_statistics_with_no_events_are_sensible():
    s = AuditLogger().get_statistics()
    assert s["total_events"] == 0 and s["success_rate"] == 1.0 and s["avg_duration_ms"] == 0.0
    assert s["p99_duration_ms"] == 0.0 and s["unique_users"] == 0
    assert s["first_event"] is None and s["last_event"] is None
    assert set(s["by_operation"].values()) == {0}
    u = AuditLogger().get_user_statistics("ghost")
    assert u["total_operations"] == 0 and u["last_activity"] is None and u["most_common_operation"] is None


def test_user_statistics_match_a_hand_computation(sample):
    u = sample.get_user_statistics("alice")
    assert u["total_operations"] == 3
    assert u["first_activity"] == T0 and u["last_activity"] == T0 + timedelta(minutes=3)
    assert u["most_common_operation"] == "STORE"  # 1-1-1 tie: first in OperationType order
    assert u["by_operation"]["RECALL"] == 1 and u["by_operation"]["FORGET"] == 1
    assert u["success_rate"] == 1.0
    b = sample.get_user_statistics("bob")
    assert b["success_rate"] == 0.5 and b["failure_count"] == 1
    with pytest.raises(AuditTypeError, match="user_id"):
        sample.get_user_statistics(None)  # type: ignore[arg-type]


async def test_compat_counters_and_clear():
    audit = AuditLogger(max_events=100, enable_rotation=True)
    for _ in range(30):
        await audit.log_event("store")
    stats = audit.get_stats()
    assert {k: stats[k] for k in ("events_in_memory", "total_events_logged", "max_events", "rotation_enabled",
                                  "auto_export_enabled")} == {
        "events_in_memory": 30, "total_events_logged": 30, "max_events": 100, "rotation_enabled": True,
        "auto_export_enabled": False}
    assert audit.event_count == 30 and audit.total_events_logged == 30
    await audit.clear()
    assert audit.event_count == 0 and audit.total_events_logged == 30
    assert audit.query_events() == []
    audit.log("recall")
    assert audit.total_events_logged == 31


@pytest.mark.parametrize(
    "kwargs, error, word",
    [
        ({"max_events": 0}, AuditValueError, "max_events"),
        ({"max_events": "10"}, AuditTypeError, "max_events"),
        ({"auto_export_path": 5}, AuditTypeError, "auto_export_path"),
    ],
)
def test_bad_constructor_arguments(kwargs, error, word):
    with pytest.raises(error, match=word):
        AuditLogger(**kwargs)


@pytest.mark.parametrize(
    "kwargs, error, word",
    [
        ({"operation": "teleport"}, AuditValueError, "operation"),
        ({"operation": None}, AuditTypeError, "operation"),
        ({"operation": "store", "status": "sort of"}, AuditValueError, "status"),
        ({"operation": "store", "user_id": 123}, AuditTypeError, "user_id"),
        ({"operation": "store", "session_id": b"s"}, AuditTypeError, "session_id"),
        ({"operation": "store", "entry_ids": "entry_1"}, AuditTypeError, "entry_ids"),
        ({"operation": "store", "entry_ids": [1, 2]}, AuditTypeError, "entry_ids"),
        ({"operation": "store", "entry_ids": 7}, AuditTypeError, "entry_ids"),
        ({"operation": "store", "metadata": {"when": datetime.now()}}, AuditValueError, "metadata"),
        ({"operation": "store", "metadata": {"blob": b"\x00"}}, AuditValueError, "metadata"),
        ({"operation": "store", "metadata": {1: "int key"}}, AuditValueError, "metadata"),
        ({"operation": "store", "metadata": {"x": float("nan")}}, AuditValueError, "metadata"),
        ({"operation": "store", "metadata": {"x": [1, {"y": float("inf")}]}}, AuditValueError, "metadata"),
        ({"operation": "store", "metadata": {"big": 2**70}}, AuditValueError, "metadata"),
        ({"operation": "store", "metadata": "json text"}, AuditTypeError, "metadata"),
        ({"operation": "store", "user_id": "bad\ud800"}, AuditValueError, "user_id"),
        ({"operation": "store", "error_message": 5}, AuditTypeError, "error_message"),
        ({"operation": "store", "duration_ms": -0.5}, AuditValueError, "duration_ms"),
        ({"operation": "store", "duration_ms": float("nan")}, AuditValueError, "duration_ms"),
        ({"operation": "store", "duration_ms": True}, AuditTypeError, "duration_ms"),
    ],
)
async def test_an_invalid_call_logs_nothing(kwargs, error, word):
    audit = AuditLogger()
    audit.log("store", user_id="kept")
    with pytest.raises(error, match=word):
        await audit.log_event(**kwargs)
    with pytest.raises(error, match=word):
        audit.log(**kwargs)
    assert [e.user_id for e in audit.query_events()] == ["kept"]
    assert audit.total_events_logged == 1


def test_unicode_round_trips_through_the_store():
    audit = AuditLogger()
    meta = {"emoji": "🦀", "rtl": "שלום", "nul": "a\x00b", "nested": {"l": [1, 2.5, None, True]}}
    e = audit.log("store", user_id="ユーザー", entry_ids=["é", "\x00"], metadata=meta, error_message="ошибка")
    [got] = audit.query_events(user_id="ユーザー")
    assert got == e and got.metadata == meta and got.entry_ids == ["é", "\x00"]


def test_log_batch_validates_the_whole_batch_first():
    audit = AuditLogger()
    with pytest.raises(AuditValueError, match="operation"):
        audit.log_batch([{"operation": "STORE"}, {"operation": "nope"}])
    with pytest.raises(AuditValueError, match="duration_ms"):
        audit.log_batch([{"operation": "STORE", "duration_ms": -1.0}])
    with pytest.raises(AuditValueError, match="unknown"):
        audit.log_batch([{"operation": "STORE", "colour": "red"}])
    assert audit.event_count == 0
    assert audit.log_batch([{"operation": "store", "metadata": {"a": 1}}, {"operation": "RECALL"}]) == 2
    assert sorted(e.operation.value for e in audit.query_events()) == ["RECALL", "STORE"]
    assert audit.query_events(operation="STORE")[0].metadata == {"a": 1}


def test_events_from_other_processes_have_other_ids():
    import subprocess
    import sys

    code = "from axon_audit import AuditLogger; a=AuditLogger(); print(a.log('store').event_id)"
    ids = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ}).stdout.strip() for _ in range(3)}
    assert len(ids) == 3 and all(i.startswith("evt_") for i in ids)


def test_buffered_rows_leave_the_cyclic_collector_and_give_back_the_enums() -> None:
    # Rows hold the enums' values (model.row): tuples of atomic values, which the collector
    # untracks, so buffered rows are never promoted and full collections stay rare.
    audit = AuditLogger()
    events = [audit.log("recall", user_id="u", entry_ids=["e1"], metadata={"k": [1, 2]}, status=EventStatus.FAILURE,
                        error_message="timeout", duration_ms=1.5),
              audit.log(OperationType.FORGET, status="partial")]
    gc.collect()
    gc.collect()
    assert [gc.is_tracked(e._row) for e in events] == [False, False]
    assert [(e.operation, e.status) for e in events] == [(OperationType.RECALL, EventStatus.FAILURE),
                                                          (OperationType.FORGET, EventStatus.PARTIAL)]
    assert type(events[0].operation) is OperationType and events[0].to_dict()["operation"] == "RECALL"
    stored = audit.query_events(include_archived=False)  # the same after the flush into the store
    assert {(e.operation, e.status) for e in stored} == {(OperationType.RECALL, EventStatus.FAILURE),
                                                         (OperationType.FORGET, EventStatus.PARTIAL)}
    assert all(type(e.operation) is OperationType and type(e.status) is EventStatus for e in stored)
    assert audit.query_events(operation="recall", status=["FAILURE"], include_archived=False) == [events[0]]
