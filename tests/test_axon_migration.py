"""Migrating from Axon's own AuditLogger: its bare-list exports read (open_archive,
the CLI), imported into an export folder that verifies, Axon's positional
`get_events`, pydantic's `model_dump`/`model_validate` shapes, `MemorySystem`
attribution from metadata and `export_audit_log`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from axon_audit import (
    ArchiveError,
    AuditEvent,
    AuditLogger,
    AuditTypeError,
    AuditValueError,
    EventStatus,
    MemorySystem,
    OperationType,
    open_archive,
    verify,
)
from axon_audit.io.legacy import axon_rows, load_axon_export
from axon_audit.write.migrate import ImportResult, import_axon_export
from tests.cli_process import env, script
from tests.exported import listed_ids

UTC = timezone.utc
BASE = datetime(2025, 1, 15, 10, 30, 45, 123456)  # naive, as Axon's datetime.utcnow() gives


def axon_events(n: int = 6) -> list[dict[str, Any]]:
    """Events as Axon's AuditEvent.to_dict() writes them: uuid4 ids, lower-case enums,
    naive UTC times (a whole second has no fraction: isoformat drops it)."""
    ops, statuses = ["store", "recall", "forget", "compact", "export", "bulk_store"], ["success", "failure", "partial"]
    out = []
    for i in range(n):
        ts = BASE + timedelta(minutes=7 * i) if i % 3 else (BASE + timedelta(minutes=7 * i)).replace(microsecond=0)
        event: dict[str, Any] = {"event_id": str(uuid.uuid4()), "timestamp": ts.isoformat(),
                                 "operation": ops[i % len(ops)], "status": statuses[i % 3]}
        if i % 2 == 0:  # the optional fields present on some events only, as Axon's defaults allow
            event.update(user_id=f"user_{i % 4}", session_id="session_abc", entry_ids=[f"entry_{i}"],
                         metadata={"importance": 0.8, "tags": ["verified"]}, error_message=None, duration_ms=4.5 * i)
        if statuses[i % 3] == "failure":
            event["error_message"] = "Database connection timeout"
        out.append(event)
    return out


def utc_of(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def legacy(tmp_path) -> tuple[Path, list[dict[str, Any]]]:
    events = axon_events()
    path = tmp_path / "legacy.json"
    path.write_text(json.dumps(events, indent=2))  # Axon: json.dump(events_dict, f, indent=2)
    return path, events


def run(*args: object) -> subprocess.CompletedProcess:
    # Away from UTC: a naive legacy time read as local would show here.
    return subprocess.run([script(), *map(str, args)], capture_output=True, text=True, timeout=120,
                          env=env(TZ="America/New_York"))


# --------------------------------------------------------------------------- reading a bare-list export


def check_same(got: list[AuditEvent], events: list[dict[str, Any]]) -> None:
    by_id = {e.event_id: e for e in got}
    assert sorted(by_id) == sorted(e["event_id"] for e in events) and len(got) == len(events)
    for want in events:
        e = by_id[want["event_id"]]
        assert e.timestamp == utc_of(want["timestamp"])
        assert e.operation is OperationType(want["operation"].upper())
        assert e.status is EventStatus(want["status"].upper())
        assert e.user_id == want.get("user_id") and e.session_id == want.get("session_id")
        assert e.entry_ids == want.get("entry_ids", []) and e.metadata == want.get("metadata", {})
        assert e.error_message == want.get("error_message") and e.duration_ms == want.get("duration_ms")


def test_open_archive_reads_an_axon_bare_list(legacy):
    path, events = legacy
    archive = open_archive(path)
    got = archive.query_events()
    check_same(got, events)
    assert [e.timestamp for e in got] == sorted((utc_of(e["timestamp"]) for e in events), reverse=True)
    assert archive.get_event(events[3]["event_id"]).timestamp == utc_of(events[3]["timestamp"])
    stats = archive.get_statistics()
    assert stats["total_events"] == 6 and stats["by_operation"]["BULK_STORE"] == 1
    assert stats["first_event"] == utc_of(events[0]["timestamp"])
    assert len(archive.query_events(operation="store", status=EventStatus.SUCCESS)) == 1


def test_legacy_naive_times_are_utc_whatever_the_local_zone(legacy, monkeypatch):
    path, events = legacy
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # +05:30: a naive-as-local reading would be off by 5.5 h
    time.tzset()
    try:
        got = {e.event_id: e.timestamp for e in open_archive(path).query_events()}
        rows = {r["event_id"]: r for r in load_axon_export(path)}
    finally:
        monkeypatch.undo()
        time.tzset()
    assert got == {e["event_id"]: utc_of(e["timestamp"]) for e in events}
    audit = AuditLogger()
    audit.log_batch(list(rows.values()))
    assert {e.event_id: e.timestamp for e in audit.query_events()} == got


def test_zoned_times_and_pydantic_objects_in_a_legacy_list(tmp_path):
    class Op(str, Enum):  # Axon's own enums: lower-case values
        STORE = "store"

    @dataclass
    class AxonEvent:  # the fields of Axon's pydantic AuditEvent, its types
        operation: Op
        event_id: uuid.UUID = field(default_factory=uuid.uuid4)
        timestamp: datetime = BASE
        entry_ids: list[str] = field(default_factory=list)

    path = tmp_path / "zoned.json"
    path.write_text(json.dumps([{"event_id": "a", "timestamp": "2025-01-15T12:30:45+02:00", "operation": "store"}]))
    assert open_archive(path).query_events()[0].timestamp == datetime(2025, 1, 15, 10, 30, 45, tzinfo=UTC)
    obj = AxonEvent(Op.STORE)
    event = AuditEvent.model_validate(obj, from_attributes=True)
    assert (event.event_id, event.operation, event.timestamp_us) == (
        str(obj.event_id), OperationType.STORE, AuditEvent(operation="store", timestamp=BASE).timestamp_us)
    audit = AuditLogger()  # Axon's events still in memory: axon_rows reads their utcnow() times as UTC
    assert audit.log_batch(axon_rows([obj, AxonEvent(Op.STORE, entry_ids=["e1"])])) == 2
    got = audit.query_events(entry_ids=["e1"])[0]
    assert got.timestamp == BASE.replace(tzinfo=UTC) and audit.get_event(str(obj.event_id)) is not None


@pytest.mark.parametrize("bad, message", [
    ([{"timestamp": "2025-01-15T10:30:45", "operation": "store"}], r"events\[0\] has no event_id"),
    ([{"event_id": "x", "timestamp": "2025-01-15T10:30:45", "operation": "launch"}], "operation must be one of"),
    ([{"event_id": "x", "timestamp": "2025-01-15T10:30:45", "operation": "store"}] * 2, "event_id"),
])
def test_a_bad_legacy_file_is_refused_naming_it(tmp_path, bad, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(ArchiveError, match=message) as info:
        open_archive(path).query_events()
    assert str(path) in str(info.value)


def test_cli_query_and_stats_read_a_legacy_file(legacy):
    path, events = legacy
    proc = run("query", path, "-f", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["total_events"] == 6
    assert {e["event_id"]: e["timestamp"] for e in doc["events"]} == {
        e["event_id"]: utc_of(e["timestamp"]).isoformat(timespec="microseconds")[:-6] + "Z" for e in events}
    assert {e["operation"] for e in doc["events"]} == {"STORE", "RECALL", "FORGET", "COMPACT", "EXPORT", "BULK_STORE"}
    proc = run("stats", path, "-f", "json")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)
    assert stats["total_events"] == 6 and stats["by_status"] == {"SUCCESS": 2, "FAILURE": 2, "PARTIAL": 2}
    assert stats["first_event"] == utc_of(events[0]["timestamp"]).isoformat()
    proc = run("query", path, "-u", "user_0", "-f", "json")
    assert [e["event_id"] for e in json.loads(proc.stdout)["events"]] == [events[4]["event_id"], events[0]["event_id"]]


# --------------------------------------------------------------------------- importing into an export folder


def test_cli_import_into_a_new_folder_then_verify(legacy, tmp_path):
    path, events = legacy
    folder = tmp_path / "audit_logs"
    proc = run("import", path, "--into", folder)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("imported 6 events from ")
    ids = listed_ids(folder)
    assert sorted(ids) == sorted(e["event_id"] for e in events) and len(set(ids)) == len(ids) == 6
    assert verify(folder).ok and run("verify", folder).returncode == 0
    check_same(open_archive(folder).query_events(), events)
    before = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))
    again = run("import", path, "--into", folder)  # the same events again: refused, nothing written
    assert again.returncode == 2 and "already logged" in again.stderr and "Traceback" not in again.stderr
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == before
    assert listed_ids(folder) == ids and verify(folder).ok


def test_import_appends_to_an_export_folder_and_refuses_a_foreign_one(legacy, tmp_path):
    path, events = legacy
    folder = tmp_path / "audit"
    with AuditLogger(auto_export_path=folder) as audit:
        own = audit.log("recall", user_id="live").event_id
    assert import_axon_export(path, folder) == ImportResult(6, 0)
    assert sorted(listed_ids(folder)) == sorted([own] + [e["event_id"] for e in events])
    assert verify(folder).ok
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("not evidence")
    proc = run("import", path, "--into", foreign)
    assert proc.returncode == 2 and "--into" in proc.stderr and "not an axon_audit export folder" in proc.stderr
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    signed = run("import", path, "--into", tmp_path / "signed", "--key", "s3cret")
    assert signed.returncode == 0, signed.stderr
    assert verify(tmp_path / "signed", key="s3cret").ok and not verify(tmp_path / "signed", key="wrong").ok
    with pytest.raises(AuditValueError, match="is a URI"):
        import_axon_export(path, "s3://bucket/audit")
    assert not (Path.cwd() / "s3:").exists()
    with pytest.raises(AuditValueError, match="lies inside the export folder"):
        import_axon_export(path, folder / "parquet")
    missing = run("import", tmp_path / "none.json", "--into", tmp_path / "new")
    assert missing.returncode == 2 and "LEGACY.json" in missing.stderr and not (tmp_path / "new").exists()
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps([*events[:2], {"event_id": "z", "timestamp": "2025-01-15", "operation": "nope"}]))
    with pytest.raises(AuditValueError, match="operation"):
        import_axon_export(broken, tmp_path / "new")
    assert not (tmp_path / "new").exists()  # checked whole before the folder is made


def test_overlapping_daily_exports_import_once_with_skip_known(tmp_path):
    events = axon_events(9)
    days = [tmp_path / f"audit_2025_01_1{d}_000000.json" for d in range(3)]
    for d, path in enumerate(days):  # Axon's daily export of its in-memory log: each holds the earlier days' too
        path.write_text(json.dumps(events[: 3 * (d + 1)]))
    # A folder of Axon's files reads as it is (an event in three files is there three times: import dedupes).
    assert {e.event_id for e in open_archive(tmp_path).query_events()} == {e["event_id"] for e in events}
    folder = tmp_path / "audit"
    refused = run("import", *days, "--into", folder)
    assert refused.returncode == 2 and "occurs more than once" in refused.stderr and not folder.exists()
    assert "--skip-known imports each event once" in refused.stderr
    proc = run("import", days[0], days[1], "--into", folder, "--skip-known")
    assert proc.returncode == 0, proc.stderr
    assert "imported 6 events from 2 files" in proc.stdout and "3 already there skipped" in proc.stdout
    assert import_axon_export(days, folder, skip_known=True) == ImportResult(3, 15)
    ids = listed_ids(folder)
    assert sorted(ids) == sorted(e["event_id"] for e in events) and len(ids) == 9 and verify(folder).ok
    changed = [dict(events[0], user_id="someone_else")]  # same id, other content: conflicting evidence
    (tmp_path / "changed.json").write_text(json.dumps(changed))
    before = listed_ids(folder)
    with pytest.raises(AuditValueError, match=r"differs from the event with that id already in"):
        import_axon_export(tmp_path / "changed.json", folder, skip_known=True)
    proc = run("import", days[0], tmp_path / "changed.json", "--into", tmp_path / "fresh", "--skip-known")
    assert proc.returncode == 2 and "differs from the event with that id in" in proc.stderr
    assert listed_ids(folder) == before and not (tmp_path / "fresh").exists()


def test_log_batch_of_load_axon_export_keeps_every_event(tmp_path):
    events = axon_events(250)
    path = tmp_path / "big.json"
    path.write_bytes(orjson.dumps(events))
    audit = AuditLogger(max_events=100, auto_export_path=tmp_path / "rotated")
    assert audit.log_batch(load_axon_export(path)) == 250
    audit.close()
    ids = listed_ids(tmp_path / "rotated")
    assert len(ids) == 250 and set(ids) == {e["event_id"] for e in events}


# --------------------------------------------------------------------------- Axon's positional get_events


def test_get_events_takes_axon_positional_order():
    audit = AuditLogger()
    t0 = datetime(2025, 1, 15, tzinfo=UTC)
    for i, (op, user, status) in enumerate([("store", "u1", "success"), ("store", "u2", "failure"),
                                            ("recall", "u1", "success"), ("store", "u1", "failure")]):
        audit.log_batch([{"operation": op, "user_id": user, "session_id": f"s{i % 2}", "status": status,
                          "timestamp": t0 + timedelta(hours=i), "event_id": f"evt_{i}"}])

    def ids(*args: Any, **kwargs: Any) -> list[str]:
        return [e.event_id for e in asyncio.run(audit.get_events(*args, **kwargs))]

    assert ids(OperationType.STORE) == ["evt_3", "evt_1", "evt_0"]
    assert ids("store", "u1") == ["evt_3", "evt_0"]
    assert ids("store", "u1", "s1") == ["evt_3"]
    assert ids(None, None, None, EventStatus.FAILURE) == ["evt_3", "evt_1"]
    assert ids(None, None, None, None, t0 + timedelta(hours=1), t0 + timedelta(hours=2)) == ["evt_2", "evt_1"]
    assert ids(None, "u1", None, None, None, None, 1) == ["evt_3"]
    assert ids(user_id="u1", operation="store", limit=1) == ["evt_3"]  # keywords as before
    assert ids(entry_ids=None, session_id="s0") == ["evt_2", "evt_0"]  # query_events' other filters too


# --------------------------------------------------------------------------- pydantic shapes

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_json = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | _text
                     | st.floats(allow_nan=False, allow_infinity=False),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
                     max_leaves=8)


@st.composite
def events(draw: Any) -> AuditEvent:
    return AuditEvent(
        operation=draw(st.sampled_from(list(OperationType))),
        user_id=draw(st.none() | _text), session_id=draw(st.none() | _text),
        entry_ids=draw(st.lists(_text, max_size=3)),
        metadata=draw(st.dictionaries(_text, _json, max_size=3)),
        status=draw(st.sampled_from(list(EventStatus))),
        error_message=draw(st.none() | _text),
        duration_ms=draw(st.none() | st.floats(0, 1e9, allow_nan=False)),
        event_id=draw(st.none() | st.uuids().map(str)),
        timestamp=draw(st.datetimes(datetime(1970, 1, 1), datetime(2200, 1, 1), timezones=st.just(UTC))),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events())
def test_model_dump_and_validate_round_trip(event):
    python = event.model_dump()
    assert python["timestamp"] == event.timestamp and python["operation"] is event.operation
    assert AuditEvent.model_validate(python) == event
    as_json = event.model_dump(mode="json")
    assert as_json == event.to_dict() and json.loads(json.dumps(as_json)) == as_json
    assert AuditEvent.model_validate(as_json) == event
    assert AuditEvent.model_validate_json(event.model_dump_json()) == event
    assert AuditEvent.model_validate_json(event.model_dump_json(indent=2).encode()) == event
    slim = event.model_dump(exclude_none=True)
    assert all(v is not None for v in slim.values()) and AuditEvent.model_validate(slim) == event
    assert AuditEvent.model_validate(event) is event


def test_model_dump_options_and_errors():
    e = AuditEvent(operation="store", user_id="u1", event_id="evt_1", timestamp="2025-01-15T10:30:45.123456Z")
    assert e.model_dump(include={"event_id", "user_id"}) == {"event_id": "evt_1", "user_id": "u1"}
    assert set(e.model_dump(exclude_defaults=True)) == {"event_id", "timestamp", "operation", "user_id"}
    assert json.loads(e.model_dump_json())["timestamp"] == "2025-01-15T10:30:45.123456Z"
    assert e.model_copy(update={"user_id": "u2"}).user_id == "u2" and e.user_id == "u1"
    with pytest.raises(AuditValueError, match="mode must be"):
        e.model_dump(mode="yaml")
    with pytest.raises(AuditValueError, match=r"exclude names unknown fields \['nope'\]"):
        e.model_dump(exclude={"nope"})
    with pytest.raises(AuditTypeError, match="model_validate takes a dict"):
        AuditEvent.model_validate(["store"])
    with pytest.raises(AuditValueError, match="one JSON object"):
        AuditEvent.model_validate_json("[1]")
    with pytest.raises(AuditValueError, match="not valid JSON"):
        AuditEvent.model_validate_json("{")


# --------------------------------------------------------------------------- MemorySystem as Axon's


def test_memory_store_takes_user_and_session_from_metadata():
    audit = AuditLogger()
    memory = MemorySystem(audit_logger=audit)

    async def main() -> list[str]:
        return [
            await memory.store("a", metadata={"user_id": "user_123", "session_id": "session_abc"}),
            await memory.store("b", {"user_id": "user_123"}, 0.9, ["t"]),  # Axon's positional order
            await memory.store("c", metadata={"user_id": "meta"}, user_id="arg"),  # the argument wins
        ]

    a, b, c = asyncio.run(main())
    got = {e.entry_ids[0]: (e.user_id, e.session_id) for e in audit.query_events(operation="store")}
    assert got == {a: ("user_123", "session_abc"), b: ("user_123", None), c: ("arg", None)}
    assert memory.get(a).user_id == "user_123" and memory.get(b).importance == 0.9 and memory.get(b).tags == ["t"]


def test_export_audit_log_returns_dicts_and_writes_the_seed_format(tmp_path):
    audit = AuditLogger()
    memory = MemorySystem(audit_logger=audit)
    path = tmp_path / "audit_trail.json"

    async def main() -> tuple[list[dict], list[dict]]:
        entry = await memory.store("x", metadata={"user_id": "user_123"})
        await memory.recall("x", user_id="user_456")
        await memory.forget(entry, user_id="user_123")
        return await memory.export_audit_log(path), await memory.export_audit_log(user_id="user_123")

    everything, mine = asyncio.run(main())
    assert [e["operation"] for e in everything] == ["FORGET", "RECALL", "STORE"]
    assert [e["operation"] for e in mine] == ["FORGET", "STORE"]
    doc = orjson.loads(path.read_bytes())
    assert doc["total_events"] == 3
    assert [e["event_id"] for e in doc["events"]] == [e["event_id"] for e in reversed(everything)]
    assert [e.to_dict() for e in open_archive(path).query_events()] == everything
    with pytest.raises(AuditValueError, match="already exists"):
        asyncio.run(memory.export_audit_log(path))
    with pytest.raises(RuntimeError, match="No audit logger configured"):
        asyncio.run(MemorySystem().export_audit_log())
    assert os.path.getsize(path) > 0
