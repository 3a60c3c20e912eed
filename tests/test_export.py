"""JSON exports in the seed's format, and rotation into JSON + date-partitioned Parquet."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from axon_audit import AuditEvent, AuditLogger, AuditTypeError, EventStatus, ExportError, OperationType

UTC = timezone.utc
EXPORT_KEYS = ["event_id", "timestamp", "operation", "user_id", "session_id", "entry_ids", "metadata",
               "status", "error_message", "duration_ms"]
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def load(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def events_of(doc: dict) -> list[AuditEvent]:
    return [AuditEvent.from_dict(e) for e in doc["events"]]


def test_export_document_key_by_key(tmp_path):
    audit = AuditLogger()
    e1 = audit.log(OperationType.STORE, user_id="user_123", session_id="session_abc", entry_ids=["entry_1"],
                   metadata={"importance": 0.8, "tags": ["verified"]}, duration_ms=45.2)
    e2 = audit.log(OperationType.RECALL, user_id="user_456", status=EventStatus.FAILURE,
                   error_message="Database connection timeout", duration_ms=5000.0)
    before = datetime.now(UTC)
    n = audit.export_to_file(tmp_path / "deep" / "er" / "audit_trail.json")
    doc = load(tmp_path / "deep" / "er" / "audit_trail.json")
    assert n == 2
    assert list(doc) == ["events", "total_events", "exported_at"]
    assert doc["total_events"] == 2
    assert TS_RE.match(doc["exported_at"])
    exported_at = datetime.fromisoformat(doc["exported_at"].replace("Z", "+00:00"))
    assert before - timedelta(seconds=1) <= exported_at <= datetime.now(UTC)
    first, second = doc["events"]  # oldest first
    for obj in (first, second):
        assert list(obj) == EXPORT_KEYS
        assert TS_RE.match(obj["timestamp"])
    assert first == e1.to_dict() and second == e2.to_dict()
    assert first["metadata"] == {"importance": 0.8, "tags": ["verified"]}
    assert first["error_message"] is None and first["status"] == "SUCCESS"
    assert second == {
        "event_id": e2.event_id, "timestamp": e2.to_dict()["timestamp"], "operation": "RECALL",
        "user_id": "user_456", "session_id": None, "entry_ids": [], "metadata": {}, "status": "FAILURE",
        "error_message": "Database connection timeout", "duration_ms": 5000.0}


def test_export_to_file_filters_and_leaves_no_temporary_files(tmp_path):
    audit = AuditLogger()
    for i in range(10):
        audit.log("store" if i % 2 else "recall", user_id=f"u{i % 3}")
    assert audit.export_to_file(tmp_path / "u1.json", user_id="u1", operation="STORE") == \
        len(audit.query_events(user_id="u1", operation="STORE"))
    doc = load(tmp_path / "u1.json")
    assert {(e["user_id"], e["operation"]) for e in doc["events"]} == {("u1", "STORE")}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["u1.json"]


def test_export_events_keeps_the_given_events_and_order(tmp_path):
    audit = AuditLogger()
    for i in range(5):
        audit.log("store", user_id="user_123", entry_ids=[f"e{i}"])
    events = audit.query_events(user_id="user_123")  # newest first
    assert audit.export_events(events, tmp_path / "user_123_audit.json") == 5
    assert events_of(load(tmp_path / "user_123_audit.json")) == events
    with pytest.raises(AuditTypeError, match="events"):
        audit.export_events(["not an event"], tmp_path / "x.json")  # type: ignore[list-item]


async def test_export_to_json_compat(tmp_path):
    audit = AuditLogger()
    audit.log_batch([{"operation": "STORE", "timestamp": datetime(2025, 1, d, tzinfo=UTC)} for d in (1, 10, 20)])
    n = await audit.export_to_json(tmp_path / "jan.json", start_time=datetime(2025, 1, 5, tzinfo=UTC),
                                   end_time=datetime(2025, 1, 31, tzinfo=UTC))
    assert n == 2 and load(tmp_path / "jan.json")["total_events"] == 2


def test_empty_export_is_a_valid_document(tmp_path):
    assert AuditLogger().export_to_file(tmp_path / "none.json") == 0
    doc = load(tmp_path / "none.json")
    assert doc["events"] == [] and doc["total_events"] == 0


texts = st.text().filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | texts, lambda c: st.lists(c, max_size=3) | st.dictionaries(texts, c, max_size=3), max_leaves=8)
event_args = st.fixed_dictionaries({
    "operation": st.sampled_from(list(OperationType)),
    "user_id": st.none() | texts,
    "session_id": st.none() | texts,
    "entry_ids": st.lists(texts, max_size=3),
    "metadata": st.dictionaries(texts, json_values, max_size=4),
    "status": st.sampled_from(list(EventStatus)),
    "error_message": st.none() | texts,
    "duration_ms": st.none() | st.floats(min_value=0, allow_infinity=False),
})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls=st.lists(event_args, max_size=12))
def test_log_then_export_then_load_is_identical(tmp_path, calls):
    audit = AuditLogger()
    logged = [audit.log(**c) for c in calls]
    path = tmp_path / "roundtrip.json"
    assert audit.export_to_file(path, force=True) == len(calls)  # hypothesis reuses tmp_path: replace the last one
    assert events_of(load(path)) == logged


# ---------------------------------------------------------------- rotation


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def parquet_rows(root: Path) -> list[dict]:
    con = duckdb.connect()
    rel = con.sql(f"select * from read_parquet('{root}/parquet/**/*.parquet', hive_partitioning=true)"
                  " order by event_id")
    cols = rel.columns
    return [dict(zip(cols, r, strict=True)) for r in rel.fetchall()]


def test_rotation_with_export_writes_json_and_parquet_with_the_same_events(tmp_path):
    audit = AuditLogger(max_events=100, auto_export_path=tmp_path, flush_size=7)
    days = [datetime(2025, 1, 14, 23, 59, tzinfo=UTC), datetime(2025, 1, 15, 0, 1, tzinfo=UTC)]
    # 250 events over two UTC dates, logged through log_batch and log()
    audit.log_batch([{"operation": "STORE", "timestamp": days[i % 2] + timedelta(microseconds=i),
                      "user_id": f"u{i % 5}", "metadata": {"i": i}, "entry_ids": [f"e{i}"]} for i in range(60)])
    logged = [audit.log("recall", user_id="live", metadata={"j": j}, duration_ms=float(j)) for j in range(190)]
    audit.flush()
    stats = audit.get_stats()
    assert stats["rotations"] == 2 and stats["exported_events"] == 200 and audit.event_count == 50
    names = files(tmp_path)
    jsons = [n for n in names if n.startswith("audit_") and n.endswith(".json")]  # not manifest.json
    assert len(jsons) == 2 and all(re.fullmatch(r"audit_\d{4}_\d\d_\d\d_\d{6}(_\d+)?\.json", j) for j in jsons)
    parts = [n for n in names if n.endswith(".parquet")]
    assert {p.split("/")[1] for p in parts} >= {"date=2025-01-14", "date=2025-01-15"}
    assert all(re.fullmatch(r"parquet/date=\d{4}-\d\d-\d\d/part-[\w-]+\.parquet", p) for p in parts)
    assert len(set(p.split("/")[-1] for p in parts)) == len(parts)  # unique part names

    json_events = [e for j in jsons for e in load(tmp_path / j)["events"]]
    assert sum(load(tmp_path / j)["total_events"] for j in jsons) == 200
    rows = parquet_rows(tmp_path)
    assert len(rows) == 200 == len({r["event_id"] for r in rows})
    by_id = {e["event_id"]: e for e in json_events}
    for r in rows:
        e = by_id[r["event_id"]]
        assert r["timestamp"] == datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00"))
        assert str(r["date"]) == e["timestamp"][:10]
        assert (r["operation"], r["user_id"], r["status"], r["duration_ms"], r["entry_ids"]) == \
            (e["operation"], e["user_id"], e["status"], e["duration_ms"], e["entry_ids"])
        assert (json.loads(r["metadata"]) if r["metadata"] else {}) == e["metadata"]
    # what stayed in memory is the newest 50 logged, and nothing is lost or doubled
    in_memory = {e.event_id for e in audit.query_events(include_archived=False)}
    assert in_memory == {e.event_id for e in logged[-50:]}
    everything = set(by_id) | in_memory
    assert len(everything) == 250 and everything >= {e.event_id for e in logged}
    assert sorted(e.event_id for e in audit.query_events()) == sorted(everything)  # the default: the trail


def test_rotated_parquet_reads_in_polars_with_hive_partitions(tmp_path):
    audit = AuditLogger(max_events=10, auto_export_path=tmp_path)
    for i in range(25):
        audit.log("store", user_id=f"u{i}")
    audit.close()
    df = pl.scan_parquet(tmp_path / "parquet" / "**" / "*.parquet", hive_partitioning=True).collect()
    assert df.height == 25 and df["event_id"].n_unique() == 25
    assert "date" in df.columns
    json_ids = {e["event_id"] for p in tmp_path.glob("audit_*.json") for e in load(p)["events"]}
    assert json_ids == set(df["event_id"].to_list())


def test_rotation_without_export_keeps_the_newest_half(tmp_path):
    audit = AuditLogger(max_events=100)
    logged = [audit.log("store", metadata={"i": i}) for i in range(230)]
    kept = audit.query_events()
    stats = audit.get_statistics()
    assert stats["dropped_events"] + len(kept) == 230
    assert stats["total_events_logged"] == 230
    assert len(kept) <= 100
    assert [e.event_id for e in reversed(kept)] == [e.event_id for e in logged[-len(kept):]]
    assert audit.get_stats()["dropped_events"] == stats["dropped_events"] > 0


def test_disabled_rotation_keeps_everything():
    audit = AuditLogger(max_events=10, enable_rotation=False)
    for _ in range(500):
        audit.log("store")
    assert audit.event_count == 500 and audit.get_stats()["dropped_events"] == 0


def test_close_exports_what_is_in_memory(tmp_path):
    with AuditLogger(max_events=1000, auto_export_path=tmp_path) as audit:
        for i in range(7):
            audit.log("forget", user_id="u", entry_ids=[f"e{i}"])
    [j] = list(tmp_path.glob("audit_*.json"))
    assert load(j)["total_events"] == 7
    assert len(parquet_rows(tmp_path)) == 7
    assert audit.event_count == 0


async def test_async_context_manager_exports_on_exit(tmp_path):
    async with AuditLogger(auto_export_path=tmp_path) as audit:
        await audit.log_event("store")
    assert sum(load(p)["total_events"] for p in tmp_path.glob("audit_*.json")) == 1


def test_two_rotations_in_one_second_do_not_overwrite(tmp_path):
    audit = AuditLogger(max_events=3, auto_export_path=tmp_path)
    for _ in range(12):
        audit.log("store")
    audit.flush()
    jsons = list(tmp_path.glob("audit_*.json"))
    assert len(jsons) == 4
    assert sum(load(p)["total_events"] for p in jsons) == 12


def test_failed_rotation_keeps_the_events_and_retries(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the export folder should be")
    audit = AuditLogger(max_events=5, auto_export_path=blocker / "logs")
    for _ in range(5):
        audit.log("store")
    with pytest.raises(ExportError, match="5 events could not be exported"):
        audit.flush()
    stats = audit.get_stats()
    assert stats["export_failures"] >= 1 and stats["pending_export_events"] == 5 and stats["exported_events"] == 0
    blocker.unlink()
    audit.flush()  # retried
    stats = audit.get_stats()
    assert stats["pending_export_events"] == 0 and stats["exported_events"] == 5
    assert sum(load(p)["total_events"] for p in (blocker / "logs").glob("audit_*.json")) == 5


def test_each_parquet_part_names_only_its_own_users(tmp_path) -> None:
    """A day's part carries no other day's user ids, not even in its dictionary page."""
    from axon_audit import AuditLogger

    with AuditLogger(max_events=1000, auto_export_path=tmp_path) as audit:
        audit.log_batch([{"operation": "STORE", "user_id": u, "timestamp": f"2025-01-0{d}T10:00:00Z"}
                         for u, d in (("alice.first-day", 1), ("bob.second-day", 2))])
    parts = sorted((tmp_path / "parquet").rglob("*.parquet"))
    assert len(parts) == 2
    first, second = (p.read_bytes() for p in parts)
    assert b"alice.first-day" in first and b"bob.second-day" not in first
    assert b"bob.second-day" in second and b"alice.first-day" not in second
