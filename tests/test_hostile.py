"""Hostile input: every argument gets wrong types and nasty values. Each call either
round-trips exactly (memory, JSON export, Parquet, verify) or is refused with an
error naming the argument, and nothing already accepted is harmed."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import orjson
import polars as pl
import pytest

import axon_audit
from axon_audit import AuditEvent, AuditLogger, AuditTypeError, AuditValueError


def _deep(n: int) -> dict:
    d: dict = {}
    cur = d
    for _ in range(n):
        cur["a"] = {}
        cur = cur["a"]
    return d


REFUSED = [
    # (arguments, error type, text the message must contain)
    (dict(operation="nope"), AuditValueError, "operation must be one of"),
    (dict(operation=3), AuditTypeError, "operation"),
    (dict(operation=None), AuditTypeError, "operation"),
    (dict(operation=b"STORE"), AuditTypeError, "operation"),
    (dict(status="meh"), AuditValueError, "status must be one of"),
    (dict(status=1), AuditTypeError, "status"),
    (dict(user_id=5), AuditTypeError, "user_id"),
    (dict(user_id=b"u"), AuditTypeError, "user_id"),
    (dict(user_id="\ud800"), AuditValueError, "user_id"),
    (dict(session_id=["s"]), AuditTypeError, "session_id"),
    (dict(session_id="a\udfffb"), AuditValueError, "session_id"),
    (dict(entry_ids="abc"), AuditTypeError, "entry_ids"),
    (dict(entry_ids=[1]), AuditTypeError, "entry_ids[0]"),
    (dict(entry_ids=["ok", None]), AuditTypeError, "entry_ids[1]"),
    (dict(entry_ids=["\ud800"]), AuditValueError, "entry_ids[0]"),
    (dict(entry_ids=5), AuditTypeError, "entry_ids"),
    (dict(metadata=[1]), AuditTypeError, "metadata"),
    (dict(metadata="{}"), AuditTypeError, "metadata"),
    (dict(metadata={"s": {1, 2}}), AuditValueError, "metadata"),
    (dict(metadata={"b": b"x"}), AuditValueError, "metadata"),
    (dict(metadata={"d": datetime.now()}), AuditValueError, "metadata"),
    (dict(metadata={"d": Decimal("1.5")}), AuditValueError, "metadata"),
    (dict(metadata={1: "int key"}), AuditValueError, "metadata"),
    (dict(metadata={"x": "\ud800"}), AuditValueError, "metadata"),
    (dict(metadata={"big": 2**70}), AuditValueError, "metadata"),
    (dict(metadata={"f": math.nan}), AuditValueError, "metadata['f']"),
    (dict(metadata={"l": [1, math.inf]}), AuditValueError, "metadata['l'][1]"),
    (dict(metadata=_deep(400)), AuditValueError, "metadata"),
    (dict(error_message=b"x"), AuditTypeError, "error_message"),
    (dict(error_message="\udc80"), AuditValueError, "error_message"),
    (dict(duration_ms=math.nan), AuditValueError, "duration_ms"),
    (dict(duration_ms=math.inf), AuditValueError, "duration_ms"),
    (dict(duration_ms=-1.0), AuditValueError, "duration_ms"),
    (dict(duration_ms=-1), AuditValueError, "duration_ms"),
    (dict(duration_ms="5"), AuditTypeError, "duration_ms"),
    (dict(duration_ms=True), AuditTypeError, "duration_ms"),
]

ACCEPTED = [
    dict(user_id="nul\x00byte", session_id="\x00", entry_ids=["a\x00b"], error_message="x\x00y",
         metadata={"k\x00": "v\x00"}),
    dict(user_id="emoji 🦉👩‍🔬", metadata={"😀": ["🚀", {"ok": "✓"}]}, error_message="💥"),
    dict(user_id="مستخدم", session_id="\u202eRTL override\u202c", metadata={"שלום": "עולם"}),
    dict(user_id="u" * 100_000, entry_ids=["e" * 100_000, "f" * 100_000], session_id="s" * 100_000),
    dict(error_message="m" * 10_000_000),
    dict(metadata={"big": "b" * 10_000_000}),
    dict(metadata=_deep(100)),
    dict(metadata={"line\nbreak": "a\nb\r\n", "quote": '"},"chain":"x', "tab": "\t"}),
    dict(metadata={"ints": [0, -(2**63), 2**63 - 1], "f": [0.1, -0.0, 1e308, 5e-324], "b": [True, False, None]}),
    dict(duration_ms=0), dict(duration_ms=1e308), dict(duration_ms=5e-324),
    dict(operation=" store ", status="partial"),
    dict(entry_ids=()), dict(entry_ids=[]), dict(metadata={}),
]


@pytest.fixture
def audit(tmp_path: Path) -> AuditLogger:
    return AuditLogger(max_events=10**6, auto_export_path=tmp_path / "exp")


def _log(audit: AuditLogger, args: dict) -> AuditEvent:
    args = dict(args)
    op = args.pop("operation", "store")
    return audit.log(op, **args)


@pytest.mark.parametrize("args,error,text", REFUSED, ids=[f"refused-{i}" for i in range(len(REFUSED))])
def test_refused_with_a_clear_error_and_nothing_stored(audit: AuditLogger, args, error, text) -> None:
    before = audit.log("store", user_id="before")
    with pytest.raises(error) as info:
        _log(audit, args)
    assert text in str(info.value)
    assert isinstance(info.value, axon_audit.AuditError)
    after = audit.log("store", user_id="after")
    assert [e.user_id for e in audit.query_events()] == ["after", "before"]
    audit.close()
    assert axon_audit.verify(audit.auto_export_path).ok
    loaded = orjson.loads(next(audit.auto_export_path.glob("audit_*.json")).read_bytes())["events"]
    assert [e["event_id"] for e in loaded] == [before.event_id, after.event_id]


@pytest.mark.slow
def test_accepted_values_round_trip_exactly_through_memory_json_and_parquet(audit: AuditLogger) -> None:
    logged = [_log(audit, args) for args in ACCEPTED]
    by_id = {e.event_id: e for e in audit.query_events()}
    assert [by_id[e.event_id] for e in logged] == logged  # memory
    audit.close()
    root = audit.auto_export_path
    result = axon_audit.verify(root)
    assert result.ok, result.problems
    events = orjson.loads(next(root.glob("audit_*.json")).read_bytes())["events"]
    from_json = {d["event_id"]: AuditEvent.from_dict(d) for d in events}
    assert [from_json[e.event_id] for e in logged] == logged  # JSON
    pq_rows = pl.concat([pl.read_parquet(p) for p in (root / "parquet").rglob("*.parquet")])
    for ev in logged:
        row = pq_rows.filter(pl.col("event_id") == ev.event_id).row(0, named=True)
        assert row["user_id"] == ev.user_id and row["session_id"] == ev.session_id
        assert (row["entry_ids"] or []) == ev.entry_ids and row["error_message"] == ev.error_message
        assert (orjson.loads(row["metadata"]) if row["metadata"] else {}) == ev.metadata  # Parquet


def test_wrong_types_for_every_query_argument(audit: AuditLogger) -> None:
    audit.log("store", user_id="u")
    for kwargs, text in [
        (dict(user_id=5), "user_id"), (dict(session_id=[1]), "session_id"), (dict(operation="nope"), "operation"),
        (dict(status=3.5), "status"), (dict(start_time="yesterday"), "start_time"), (dict(end_time=5), "end_time"),
        (dict(entry_ids=[1]), "entry_ids"), (dict(limit=-1), "limit"), (dict(limit="3"), "limit"),
    ]:
        with pytest.raises(axon_audit.AuditError, match=text):
            audit.query_events(**kwargs)
    assert audit.event_count == 1


def test_naive_and_aware_datetimes_in_filters_mean_the_same_instant(audit: AuditLogger) -> None:
    ev = audit.log("store")
    aware = ev.timestamp
    naive_local = aware.astimezone().replace(tzinfo=None)  # the same instant as local wall time
    other_zone = aware.astimezone(timezone(timedelta(hours=-7)))
    for t in (aware, naive_local, other_zone):
        assert [e.event_id for e in audit.query_events(start_time=t, end_time=t)] == [ev.event_id]
    assert audit.query_events(start_time=aware + timedelta(microseconds=1)) == []


def test_constructor_arguments_are_checked(tmp_path: Path) -> None:
    for kwargs, error, text in [
        (dict(max_events="10"), AuditTypeError, "max_events"), (dict(max_events=0), AuditValueError, "max_events"),
        (dict(max_events=True), AuditTypeError, "max_events"),
        (dict(auto_export_path=5), AuditTypeError, "auto_export_path"),
        (dict(flush_size=0), AuditValueError, "flush_size"),
    ]:
        with pytest.raises(error, match=text):
            AuditLogger(**kwargs)


def test_corrupt_and_truncated_export_files_are_reported_not_crashed_on(tmp_path: Path) -> None:
    root = tmp_path / "exp"
    with AuditLogger(max_events=10, auto_export_path=root) as audit:
        for i in range(30):
            audit.log("store", metadata={"i": i})
            if i % 10 == 9:
                audit.flush()
    entries = orjson.loads((root / "manifest.json").read_bytes())["entries"]
    jsons = [root / e["file"] for e in entries if e["kind"] == "json"]
    parquets = [root / e["file"] for e in entries if e["kind"] == "parquet"]
    jsons[0].write_bytes(jsons[0].read_bytes()[:-100])  # truncated JSON
    jsons[1].write_bytes(b"\x00\xff garbage")  # not JSON at all
    parquets[0].write_bytes(parquets[0].read_bytes()[:200])  # truncated Parquet
    found = axon_audit.verify(root).problems
    names = " ".join(found)
    for broken in (jsons[0], jsons[1], parquets[0]):
        assert broken.name in names
    assert any(p.startswith(f"{parquets[0].relative_to(root).as_posix()}: cannot be read as this log's Parquet part")
               for p in found), found
    assert any("not an axon_audit JSON export" in p for p in found)
