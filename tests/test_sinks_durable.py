"""Durable sinks (`axon_audit.integrations.sinks.durable`) against a real HTTP receiver on
127.0.0.1: a process killed with SIGKILL during a receiver outage, a new sink on the same
cursor delivering every event once and in log order; batches refused for good going to the
dead-letter file while delivery goes on; the cursor's checks."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from axon_audit import AuditLogger, AuditValueError
from axon_audit.integrations.sinks import WebhookSink
from axon_audit.integrations.sinks.durable import CURSOR_FORMAT, Cursor, Redelivery
from axon_audit.io.location import resolve
from axon_audit.read.log_order import log_parts, read_log_part
from tests.test_sinks import FAST, Receiver
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()

CHILD = textwrap.dedent("""
    import sys, time
    from axon_audit import AuditLogger
    from axon_audit.integrations.sinks import WebhookSink
    folder, cursor, url = sys.argv[1:4]
    audit = AuditLogger(max_events=50, auto_export_path=folder)
    sink = WebhookSink(audit, url, cursor=cursor, max_batch=20, max_pending=60,
                       backoff=0.01, max_backoff=0.05, interval=0.02).start()
    for i in range(100):
        audit.log("store", user_id=f"u{i % 3}", metadata={"i": i})
    while sink.delivered < 100:
        time.sleep(0.01)
    print("delivered", flush=True)
    sys.stdin.readline()  # the receiver is down now
    for i in range(100, 400):
        audit.log("forget" if i % 7 == 0 else "store", user_id=f"u{i % 3}", metadata={"i": i})
    audit.close()  # every event exported; the sink keeps retrying, its batches only in memory
    print("exported", sink.failures, flush=True)
    time.sleep(120)
""")


def _folder_ids(folder: Path) -> list[str]:
    """The folder's events in export log order."""
    root = resolve(folder)
    return [i for p in log_parts(root) for i in read_log_part(root, p)[0]["event_id"].to_list()]


def _received_ids(receiver: Receiver) -> list[str]:
    return [e["event_id"] for body in receiver.bodies() for e in json.loads(body)["events"]]


@pytest.mark.slow
def test_a_killed_process_s_events_are_redelivered_once_in_order(receiver: Receiver, tmp_path: Path) -> None:
    folder, cursor = tmp_path / "audit", tmp_path / "hook.cursor.json"
    url = receiver.url + "/hook"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(folder), str(cursor), url], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "delivered"
        receiver.down = True
        child.stdin.write("go\n")
        child.stdin.flush()
        line = child.stdout.readline().split()
        assert line[0] == "exported" and int(line[1]) >= 1  # the receiver refused while the events were logged
        os.kill(child.pid, signal.SIGKILL)  # the crash: the sink's 300 undelivered events die with it
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert len(_received_ids(receiver)) == 100
    assert json.loads(cursor.read_text())["format"] == CURSOR_FORMAT

    # A new process: the same folder and cursor; the receiver is back.
    receiver.down = False
    audit = AuditLogger(max_events=50, auto_export_path=folder)
    sink = WebhookSink(audit, url, cursor=cursor, max_batch=20, max_pending=60, **FAST).start()
    for i in range(400, 460):
        audit.log("store", user_id=f"u{i % 3}", metadata={"i": i})
    audit.close()
    assert sink.join(20)
    sink.close()

    logged = _folder_ids(folder)
    assert len(logged) == len(set(logged)) == 460
    received = _received_ids(receiver)
    assert received == logged  # every event once, in log order: the crash lost none and sent none twice
    firsts = [json.loads(body)["events"][0]["metadata"]["i"] for body in receiver.bodies()]
    assert 100 in firsts and 400 in firsts  # the re-delivery began right after the cursor; live went on after it
    assert (sink.redelivered, sink.delivered, sink.pending, sink.dead_lettered) == (300, 360, 0, 0)
    state = json.loads(cursor.read_text())
    assert state["event_id"] == logged[-1] and (state["next_leaf"], state["live"]) == (400, 60)

    # And again: a third start with nothing new sends nothing.
    requests = len(receiver.requests)
    audit = AuditLogger(max_events=50, auto_export_path=folder)
    with WebhookSink(audit, url, cursor=cursor, **FAST) as again:
        pass
    assert (again.redelivered, len(receiver.requests)) == (0, requests)


def test_a_batch_refused_for_good_goes_to_the_dead_letter_file(receiver: Receiver, tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    receiver.refuse = lambda body: 422 if b'"poison"' in body else None
    dead = tmp_path / "dead.jsonl"
    audit = AuditLogger()
    sink = WebhookSink(audit, receiver.url, max_batch=5, max_pending=10, dead_letter=dead, max_attempts=2,
                       **FAST).start()
    with caplog.at_level(logging.ERROR, logger="axon_audit"):
        for first, end in ((0, 5), (5, 10), (10, 12)):  # one chunk each, done with before the next: one batch each
            audit.log_batch([{"operation": "store", "user_id": "poison" if i == 6 else f"u{i}"}
                             for i in range(first, end)])
            wait_until(lambda: sink.delivered + sink.dead_lettered == end)  # noqa: B023  (called right here)
        audit.close()
        assert sink.join(10)
    sink.close()
    logged = audit.scan().collect()["event_id"].to_list()
    lines = [json.loads(x) for x in dead.read_text().splitlines()]
    assert len(lines) == 1 and lines[0]["count"] == len(lines[0]["events"]) == 5
    assert lines[0]["error"] == "HTTP 422" and lines[0]["attempts"] == 2 and lines[0]["sink"] == "webhook"
    dead_ids = [e["event_id"] for e in lines[0]["events"]]
    assert dead_ids == logged[5:10] and any(e["user_id"] == "poison" for e in lines[0]["events"])
    assert _received_ids(receiver) == logged[:5] + logged[10:]  # delivery went on after it, in order
    assert (sink.delivered, sink.dead_lettered, sink.pending) == (7, 5, 0)
    assert sum(key == lines[0]["batch_id"] for _, key, _, _ in receiver.requests) == 2  # same key each time
    assert any("refused batch" in r.getMessage() and "5 events" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("status", [408, 429, 503])
def test_a_retryable_answer_is_retried_not_dead_lettered(receiver: Receiver, status: int) -> None:
    answers = [status, status, status]
    receiver.refuse = lambda body: answers.pop() if answers else None
    audit = AuditLogger()
    with WebhookSink(audit, receiver.url, max_attempts=1, **FAST) as sink:
        audit.log("store")
    assert (sink.delivered, sink.dead_lettered, sink.failures, sink.dead) == (1, 0, 3, [])


def test_without_a_dead_letter_file_refused_batches_are_kept_in_memory(receiver: Receiver) -> None:
    receiver.refuse = lambda body: 400
    audit = AuditLogger()
    with WebhookSink(audit, receiver.url, max_attempts=1, **FAST) as sink:
        eid = audit.log("store").event_id
    assert [df["event_id"].to_list() for df in sink.dead] == [[eid]]
    assert (sink.delivered, sink.dead_lettered, sink.pending) == (0, 1, 0)


def test_a_cursor_needs_a_local_export_folder(tmp_path: Path) -> None:
    with pytest.raises(AuditValueError, match="cursor needs a logger with a local auto_export_path"):
        WebhookSink(AuditLogger(), "http://127.0.0.1:9", cursor=tmp_path / "c.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    sink = WebhookSink(AuditLogger(auto_export_path=tmp_path / "a"), "http://127.0.0.1:9", cursor=bad)
    with pytest.raises(AuditValueError, match="is not a sink cursor"):
        sink.start()
    with pytest.raises(AuditValueError, match="max_attempts must be an int >= 1"):
        WebhookSink(AuditLogger(), "http://127.0.0.1:9", max_attempts=0)


_START_US = 1_748_736_000_000_000  # 2025-06-01T00:00:00Z


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(offsets=st.lists(st.lists(st.integers(0, 3 * 86_400), min_size=1, max_size=12), min_size=1, max_size=3),
       monotone=st.booleans(), data=st.data())
def test_redelivery_after_live_delivery_never_leaves_a_gap(tmp_path_factory: pytest.TempPathFactory,
                                                          offsets: list[list[int]], monotone: bool,
                                                          data: st.DataObject) -> None:
    """Whatever part of the log went out live (the first j events logged), the re-delivery sends every
    other event, once, in log order; exactly those when the times grew as the events were logged (the
    export sorts each commit by time), else at most the commit it cannot tell apart again (counted)."""
    folder = tmp_path_factory.mktemp("redelivery")
    if monotone:
        flat = sorted(x for batch in offsets for x in batch)
        it = iter(flat)
        offsets = [[next(it) for _ in batch] for batch in offsets]
    audit = AuditLogger(max_events=1000, auto_export_path=folder)
    rank = 0
    for batch in offsets:  # one export commit each, in logging order
        audit.log_batch([{"operation": "store", "session_id": f"s{rank + i}",
                          "timestamp": datetime.fromtimestamp((_START_US // 10**6) + x, timezone.utc)}
                         for i, x in enumerate(batch)])
        rank += len(batch)
        audit.close()
    root = resolve(folder)
    log_rows = [row for p in log_parts(root) for row in read_log_part(root, p)[0]
                .select("event_id", "session_id", pl.col("timestamp").dt.epoch("us")).iter_rows()]
    by_rank = sorted(log_rows, key=lambda r: int(r[1][1:]))  # logging order
    j = data.draw(st.integers(0, rank))
    delivered = [r[0] for r in by_rank[:j]]
    cursor = Cursor(folder.parent / f"{folder.name}.cursor.json")
    cursor.save(next_leaf=0, delivered=j, live=j, event_id=delivered[-1] if j else None,
                max_time_us=max(r[2] for r in by_rank[:j]) if j else None)
    red = Redelivery(root, cursor)
    resent = [i for df, _ in red.batches(4, None) for i in df["event_id"].to_list()]
    log_ids = [r[0] for r in log_rows]
    undelivered = [i for i in log_ids if i not in set(delivered)]
    assert len(resent) == len(set(resent)) and set(undelivered) <= set(resent)  # once each, no gap
    assert resent == [i for i in log_ids if i in set(resent)]  # in log order
    event("re-sent a commit" if red.duplicates else "exact")
    assert len(set(resent) & set(delivered)) == red.duplicates
    if monotone:
        assert resent == undelivered and red.duplicates == 0


def test_events_exported_while_the_redelivery_starts_are_marked_for_the_live_feed(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    cursor = Cursor(tmp_path / "c.json")
    audit = AuditLogger(max_events=1000, auto_export_path=folder)
    red = Redelivery(resolve(folder), cursor)  # as `start()` makes it, before subscribing
    ids = [audit.log("store").event_id for _ in range(5)]
    audit.close()  # exported before the re-delivery reads the log: sent from the folder, and skipped live
    assert [i for df, _ in red.batches(10, None) for i in df["event_id"].to_list()] == ids
    assert red.overlap == set(ids) and (red.before, red.end) == (0, 5)


def test_a_durable_sink_dead_letters_beside_its_cursor_and_moves_on(receiver: Receiver, tmp_path: Path) -> None:
    receiver.refuse = lambda body: 403
    audit = AuditLogger(auto_export_path=tmp_path / "audit")
    cursor = tmp_path / "hook.cursor.json"
    with WebhookSink(audit, receiver.url, cursor=cursor, max_attempts=1, **FAST) as sink:
        ids = [audit.log("store").event_id for _ in range(3)]
    lines = [json.loads(x) for x in (tmp_path / "hook.cursor.dead-letter.jsonl").read_text().splitlines()]
    assert [e["event_id"] for line in lines for e in line["events"]] == ids
    assert sum(line["count"] for line in lines) == sink.dead_lettered == 3 and sink.pending == 0
    state = json.loads(cursor.read_text())
    assert (state["live"], state["event_id"]) == (3, ids[-1])  # dealt with: a restart does not send them again
    audit.close()
    receiver.refuse = None
    with WebhookSink(AuditLogger(auto_export_path=tmp_path / "audit"), receiver.url, cursor=cursor, **FAST) as again:
        pass
    assert again.redelivered == 0 and receiver.order == []
