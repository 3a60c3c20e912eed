"""Property-based round trips (hypothesis): query vs a plain-Python model, JSON
export vs the logged events, Parquet vs JSON, and WAL replay idempotence."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import orjson
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import axon_audit
from axon_audit import AuditEvent, AuditLogger, EventStatus, OperationType
from axon_audit.integrity import merkle
from axon_audit.integrity.leaf import event_leaf_hash, leaf_hashes

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
                      st.floats(allow_nan=False, allow_infinity=False), text)
metadata = st.dictionaries(text, st.recursive(json_leaf, lambda c: st.lists(c, max_size=3)
                                              | st.dictionaries(text, c, max_size=3), max_leaves=6), max_size=4)
event_args = st.fixed_dictionaries({
    "operation": st.sampled_from(list(OperationType)),
    "user_id": st.one_of(st.none(), st.sampled_from(["alice", "bob", "carol", "ünï"])),
    "session_id": st.one_of(st.none(), st.sampled_from(["s1", "s2"])),
    "entry_ids": st.lists(st.sampled_from(["e1", "e2", "e3", "e4"]), max_size=3),
    "metadata": metadata,
    "status": st.sampled_from(list(EventStatus)),
    "error_message": st.one_of(st.none(), text),
    "duration_ms": st.one_of(st.none(), st.floats(min_value=0, max_value=1e9, allow_nan=False)),
})
events = st.lists(event_args, min_size=0, max_size=40)


def one_or_many(values):
    return st.one_of(st.none(), st.sampled_from(values), st.lists(st.sampled_from(values), min_size=1, max_size=2))


filters = st.fixed_dictionaries({
    "user_id": one_or_many(["alice", "bob", "carol", "ünï"]),
    "session_id": one_or_many(["s1", "s2"]),
    "operation": one_or_many(list(OperationType)),
    "status": one_or_many(list(EventStatus)),
    "entry_ids": st.one_of(st.none(), st.lists(st.sampled_from(["e1", "e2", "e3", "e5"]), min_size=1, max_size=2)),
    "start": st.one_of(st.none(), st.integers(0, 40)),
    "end": st.one_of(st.none(), st.integers(0, 40)),
    "limit": st.one_of(st.none(), st.integers(0, 10)),
})


def _as_set(v):
    if v is None:
        return None
    return {v} if isinstance(v, (str, OperationType, EventStatus)) else set(v)


def model_query(logged: list[AuditEvent], f: dict, start, end) -> list[str]:
    """The filters as plain Python: the specification the engine must match."""
    users, sessions = _as_set(f["user_id"]), _as_set(f["session_id"])
    ops, statuses = _as_set(f["operation"]), _as_set(f["status"])
    out = []
    for i, e in enumerate(logged):
        if users is not None and e.user_id not in users:
            continue
        if sessions is not None and e.session_id not in sessions:
            continue
        if ops is not None and e.operation not in ops:
            continue
        if statuses is not None and e.status not in statuses:
            continue
        if f["entry_ids"] is not None and not set(f["entry_ids"]) & set(e.entry_ids):
            continue
        if start is not None and e.timestamp < start:
            continue
        if end is not None and e.timestamp > end:
            continue
        out.append((e.timestamp, i, e.event_id))
    out.sort(reverse=True)  # newest first; ties: most recently logged first
    ids = [x[2] for x in out]
    return ids if f["limit"] is None else ids[: f["limit"]]


@SETTINGS
@given(events, filters)
def test_query_equals_a_plain_python_model(args: list[dict], f: dict) -> None:
    audit = AuditLogger(max_events=10**6)
    logged = [audit.log(**a) for a in args]
    start = logged[f["start"]].timestamp if f["start"] is not None and f["start"] < len(logged) else None
    end = logged[f["end"]].timestamp if f["end"] is not None and f["end"] < len(logged) else None
    got = audit.query_events(user_id=f["user_id"], session_id=f["session_id"], operation=f["operation"],
                             status=f["status"], entry_ids=f["entry_ids"], start_time=start, end_time=end,
                             limit=f["limit"])
    assert [e.event_id for e in got] == model_query(logged, f, start, end)
    by_id = {e.event_id: e for e in logged}
    assert all(by_id[e.event_id] == e for e in got)


@SETTINGS
@given(events)
def test_json_export_loads_back_identical(args: list[dict]) -> None:
    audit = AuditLogger(max_events=10**6)
    logged = [audit.log(**a) for a in args]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "trail.json"
        assert audit.export_to_file(path) == len(logged)
        doc = orjson.loads(path.read_bytes())
    assert doc["total_events"] == len(logged)
    assert [AuditEvent.from_dict(e) for e in doc["events"]] == logged  # oldest first


@SETTINGS
@given(st.lists(event_args, min_size=1, max_size=40), st.integers(1, 15))
def test_rotated_parquet_equals_the_rotated_json(args: list[dict], max_events: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        with AuditLogger(max_events=max_events, auto_export_path=root) as audit:
            logged = [audit.log(**a) for a in args]
        entries = orjson.loads((root / "manifest.json").read_bytes())["entries"]
        from_json = [e for x in entries if x["kind"] == "json"
                     for e in orjson.loads((root / x["file"]).read_bytes())["events"]]
        from_parquet = pl.concat([pl.read_parquet(root / x["file"]) for x in entries if x["kind"] == "parquet"])
        assert axon_audit.verify(root).ok
    assert sorted(e["event_id"] for e in from_json) == sorted(e.event_id for e in logged)  # exactly once
    assert from_parquet["event_id"].to_list() == [e["event_id"] for e in from_json]  # same order: the log's
    assert from_parquet.columns == list(axon_audit.COLUMNS)  # no column of the integrity's own
    # Both copies give the same leaf hashes in the same order, and the newest tree head is their root.
    leaves = [event_leaf_hash(e) for e in from_json]
    assert [bytes(h) for h in leaf_hashes(from_parquet)] == leaves
    assert [e["root"] for e in entries if e["kind"] == "tree"][-1] == merkle.root(leaves).hex()
    rows = from_parquet.with_columns(
        pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"),
        pl.col("operation", "status", "user_id", "session_id").cast(pl.String),
        pl.col("entry_ids").fill_null([]),
    ).to_dicts()
    for row, ev in zip(rows, from_json, strict=True):
        row["metadata"] = orjson.loads(row["metadata"]) if row["metadata"] else {}
        assert row == ev


@SETTINGS
@given(events, st.integers(0, 40))
def test_wal_replay_is_idempotent(args: list[dict], cleared_after: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        a = AuditLogger(max_events=10**6, auto_export_path=root / "exp_a", wal_path=root / "wal_a",
                        wal_sync="interval", wal_interval=0)
        logged = [a.log(**x) for x in args[:cleared_after]]
        asyncio.run(a.clear())  # cleared on purpose: must not come back
        logged = [a.log(**x) for x in args[cleared_after:]]
        a.flush()
        crash = root / "crash"
        shutil.copytree(root / "wal_a", crash)  # what a crash would leave on disk

        def recover(wal: Path, exp: str) -> list[AuditEvent]:
            b = AuditLogger(max_events=10**6, auto_export_path=root / exp, wal_path=wal)
            got = b.query_events()[::-1]
            b.flush()
            return got

        first = recover(crash, "exp_b")
        second = recover(crash, "exp_b")  # recovering again (a crash during recovery) changes nothing
        assert first == logged and second == logged
        copy = root / "again"
        shutil.copytree(crash, copy)
        assert recover(copy, "exp_c") == logged
