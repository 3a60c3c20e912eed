"""Small loggers answer `query_events` from their buffered rows (query.row_compiler):
the same events, in the same order, with the same fields as the polars path, and
only while every event read is in the buffer and there are few of them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from axon_audit import AuditLogger
from axon_audit.model.enums import EventStatus, OperationType
from axon_audit.model.schema import frame_to_events, rows_to_frame
from axon_audit.query.filters import Filters
from axon_audit.query.row_compiler import SMALL_ROWS, select_rows
from axon_audit.read.snapshot import Snapshot
from axon_audit.store.hot import Chunk

T_US = 1_772_366_400_000_000  # 2026-03-01 12:00 UTC


def _row(ts: int, seq: int, op: str, user: str | None, entries: tuple[str, ...], meta: str | None,
         status: str, error: str | None, ms: float | None) -> tuple:
    return (ts, seq, "n1", OperationType(op), user, "s1" if user else None, entries, meta, EventStatus(status),
            error, ms)


# Equal timestamps (ties), an older event logged late, nulls, metadata of every kind.
ROWS = [
    _row(T_US, 1, "STORE", "u1", ("e1",), '{"src":"api","n":3,"ok":true,"x":1.5}', "SUCCESS", None, 5.0),
    _row(T_US, 2, "RECALL", "u2", (), None, "FAILURE", "timeout after 5s", None),
    _row(T_US - 10, 3, "STORE", "u1", ("e2", "e3"), '{"src":"ui","n":4}', "PARTIAL", "quota", 50.0),
    _row(T_US + 7, 4, "FORGET", None, ("e1",), '{"l":[1,"a"]}', "SUCCESS", None, 0.0),
    _row(T_US, 5, "STORE", "u1", (), '{"ok":false}', "FAILURE", "Timeout", 500.0),
]

QUERIES = [
    {}, {"limit": 2}, {"limit": 0}, {"user_id": "u1"}, {"user_id": ["u1", "u2"], "limit": 1},
    {"operation": "store", "status": ["failure", "partial"]}, {"entry_ids": ["e1", "e9"]},
    {"metadata": {"src": "api", "n": 3}}, {"metadata": {"ok": False}}, {"metadata": {"x": "1.5"}},
    {"metadata": {"l": '[1,"a"]'}}, {"error_contains": "imeout"}, {"min_duration_ms": 5, "max_duration_ms": 50},
    {"start_time": datetime(2026, 3, 1, 12, tzinfo=timezone.utc)},
    {"end_time": datetime(2026, 3, 1, 12, tzinfo=timezone.utc) - timedelta(microseconds=1)},
    {"session_id": "s1", "limit": 3}, {"user_id": []},
]


def _fields(events) -> list[tuple]:
    return [(e.event_id, e.timestamp, e.operation, e.user_id, e.session_id, e.entry_ids, e.metadata, e.status,
             e.error_message, e.duration_ms, e.to_dict()) for e in events]


@pytest.mark.parametrize("query", QUERIES, ids=repr)
def test_rows_answer_like_the_polars_path(query):
    f = Filters.build(**query)
    polars_way = frame_to_events(Snapshot(live=[Chunk.of(rows_to_frame(ROWS))]).select(f))
    by_rows = select_rows(ROWS, f, f.limit)
    assert _fields(by_rows) == _fields(polars_way)
    if query == {}:  # newest first; the tie at T_US: the later logged first
        assert [e._row[1] for e in by_rows] == [4, 5, 2, 1, 3]


def test_a_small_logger_reads_its_buffer_without_sealing_it_and_agrees_after_sealing():
    audit = AuditLogger()
    for i in range(10):
        audit.log("store" if i % 2 else "recall", user_id=f"u{i % 3}", entry_ids=[f"e{i}"],
                  metadata={"i": i, "even": i % 2 == 0}, duration_ms=float(i),
                  status="failure" if i == 4 else "success")
    queries = [{"user_id": "u1"}, {"limit": 3}, {"operation": "store", "min_duration_ms": 3}, {"metadata": {"i": 4}},
               {"entry_ids": ["e3", "e5"]}, {"status": "failure"}, {}]
    from_rows = [audit.query_events(**q) for q in queries]
    assert not audit._hot.store.chunks and len(audit._hot.rows) == 10  # answered from the buffer, left there
    assert [len(r) for r in from_rows] == [3, 3, 4, 1, 2, 1, 10]
    audit.flush()  # sealed: the same queries now run through polars
    assert audit._hot.store.chunks and not audit._hot.rows
    assert [_fields(audit.query_events(**q)) for q in queries] == [_fields(r) for r in from_rows]


@pytest.mark.parametrize("n", [SMALL_ROWS + 1, 10_000])
def test_bigger_loggers_take_the_columnar_path(n):
    audit = AuditLogger()
    for i in range(n):
        audit.log("store", user_id=f"u{i % 7}")
    assert audit._snapshot(False, small=True).rows is None
    got = audit.query_events(user_id="u3", limit=5)
    assert len(got) == 5 and all(e.user_id == "u3" for e in got)
    assert [e.timestamp_us for e in got] == sorted((e.timestamp_us for e in got), reverse=True)


def test_a_logger_that_exports_reads_its_trail_not_just_the_buffer(tmp_path):
    with AuditLogger(auto_export_path=tmp_path / "trail") as audit:
        audit.log("store", user_id="u1")
        assert audit._snapshot(False, small=True).rows is not None  # memory only: the buffer is all of it
        assert audit._snapshot(True, small=True).rows is None  # the folder may hold older events (this seals)
        assert audit._hot.store.chunks and not audit._hot.rows
        assert len(audit.query_events(user_id="u1")) == 1


@pytest.mark.parametrize("query", QUERIES, ids=repr)
def test_a_chunks_row_tuples_answer_like_the_polars_path(query):
    frame = rows_to_frame(ROWS)
    chunks = [Chunk.of(frame.slice(0, 2)), Chunk.of(frame.slice(2))]  # two chunks: source order across them
    f = Filters.build(**query)
    polars_way = frame_to_events(Snapshot(live=chunks).select(f))
    small = Snapshot(live=chunks).small_rows()
    assert small is not None
    assert _fields(select_rows(small[0], f, f.limit, small[1])) == _fields(polars_way)


def test_a_small_store_in_chunks_answers_from_rows_like_polars(monkeypatch):
    import polars as pl

    audit = AuditLogger()
    batch = [{"operation": "store" if i % 3 else "recall", "user_id": f"u{i % 4}", "entry_ids": [f"e{i % 7}"],
              "metadata": {"i": i % 5}, "status": "failure" if i % 11 == 0 else "success",
              "timestamp": datetime(2026, 3, 1, 12, tzinfo=timezone.utc) + timedelta(seconds=i % 17),
              "duration_ms": float(i % 9)} for i in range(300)]
    audit.log_batch(batch[:200])
    audit.log_batch(pl.DataFrame(batch[200:]).with_columns(event_id=pl.format("custom-{}", pl.int_range(100))))
    audit.flush()
    assert sum(c.height for c in audit._hot.store.chunks) == 300 and not audit._hot.rows
    ids = [e.event_id for e in audit.query_events(limit=None)]
    queries = [{}, {"limit": 5}, {"user_id": "u1"}, {"operation": "recall", "status": "failure"},
               {"entry_ids": ["e3"]}, {"metadata": {"i": 2}}, {"event_id": [ids[0], ids[150], ids[-1], "nope"]},
               {"start_time": datetime(2026, 3, 1, 12, 0, 9, tzinfo=timezone.utc), "limit": 40},
               {"min_duration_ms": 4}]
    answered: list[bool] = []
    original = Snapshot.small_rows
    monkeypatch.setattr(Snapshot, "small_rows", lambda self: answered.append(original(self) is not None)
                        or original(self))
    from_rows = [_fields(audit.query_events(**q)) for q in queries]
    assert answered == [True] * len(queries)  # every query took the rows
    calls = []
    monkeypatch.setattr(Snapshot, "small_rows", lambda self: calls.append(1))  # the polars path, for comparison
    assert [_fields(audit.query_events(**q)) for q in queries] == from_rows
    assert len(calls) == len(queries)
    assert [len(r) for r in from_rows][:2] == [300, 5] and len(from_rows[6]) == 3
