"""Durable sinks on a logger that recovered events from its write-ahead log: a process logging
with a WAL and a cursor sink is killed with SIGKILL before it exports; a new logger recovers the
events, a sink on the same cursor delivers every one of them once, in log order, with the live
ones after; a further restart sends nothing. Plus the rule for the logger's unexported events
(`Redelivery.memory_batches`) on its own."""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from axon_audit import AuditLogger
from axon_audit.integrations.sinks import WebhookSink
from axon_audit.integrations.sinks.durable import Cursor, Redelivery
from axon_audit.io.location import resolve
from tests.test_sinks import FAST, Receiver
from tests.test_sinks_durable import ROOT, _folder_ids, _received_ids
from tests.waiting import wait_until


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


CHILD = textwrap.dedent("""
    import sys, time
    from axon_audit import AuditLogger
    from axon_audit.integrations.sinks import WebhookSink
    folder, wal, cursor, url = sys.argv[1:5]
    audit = AuditLogger(max_events=100_000, auto_export_path=folder, wal_path=wal)
    sink = WebhookSink(audit, url, cursor=cursor, max_batch=20, max_pending=60,
                       backoff=0.01, max_backoff=0.05, interval=0.02).start()
    for i in range(100):
        audit.log("store", user_id=f"u{i % 3}", metadata={"i": i})
    while sink.delivered < 100:
        time.sleep(0.01)
    print("delivered", flush=True)
    sys.stdin.readline()  # the receiver is down now
    for i in range(100, 300):  # fsynced to the WAL before log() returns (wal_sync="always")
        audit.log("forget" if i % 7 == 0 else "store", user_id=f"u{i % 3}", metadata={"i": i})
    while sink.failures < 1:
        time.sleep(0.01)
    print("logged", audit.get_statistics()["exported_events"], flush=True)
    time.sleep(120)
""")


def _crash_after_logging(receiver: Receiver, folder: Path, wal: Path, cursor: Path) -> None:
    """The child logs 300 events (100 delivered, 200 not: the receiver is down), then SIGKILL: none exported."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(folder), str(wal), str(cursor), receiver.url + "/hook"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "delivered"
        receiver.down = True
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().split() == ["logged", "0"]  # nothing exported: all of it only in the WAL
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    receiver.down = False
    assert len(_received_ids(receiver)) == 100


@pytest.mark.slow
@pytest.mark.parametrize("max_events", [100_000, 150], ids=["recovered-in-memory", "recovered-and-exported"])
def test_a_killed_process_s_wal_events_are_delivered_once_in_order(receiver: Receiver, tmp_path: Path,
                                                                   max_events: int) -> None:
    """With max_events=150 the new logger rotates the 300 recovered events into an export at once,
    racing the sink's start: whether they are in the folder or in memory then, each goes out once."""
    folder, wal, cursor = tmp_path / "audit", tmp_path / "wal", tmp_path / "hook.cursor.json"
    _crash_after_logging(receiver, folder, wal, cursor)
    first = _received_ids(receiver)

    audit = AuditLogger(max_events=max_events, auto_export_path=folder, wal_path=wal)
    assert audit.get_statistics()["wal_recovered_events"] == 300
    sink = WebhookSink(audit, receiver.url + "/hook", cursor=cursor, max_batch=20, max_pending=60, **FAST).start()
    for i in range(300, 360):
        audit.log("store", user_id=f"u{i % 3}", metadata={"i": i})
    audit.close()
    assert sink.join(20)
    sink.close()

    logged = _folder_ids(folder)
    assert len(logged) == len(set(logged)) == 360
    received = _received_ids(receiver)
    assert received == logged  # every event once, in log order: recovered ones first, then the live ones
    assert received[:100] == first
    metas = [e["metadata"]["i"] for body in receiver.bodies() for e in json.loads(body)["events"]]
    assert metas == list(range(360))
    assert sink.delivered == 260 and sink.redelivered + sink.recovered == 200 and sink.pending == 0
    if max_events == 100_000:
        assert (sink.redelivered, sink.recovered) == (0, 200)  # none exported: all from the recovered memory
    assert sink.redelivery is not None and sink.redelivery.duplicates == 0

    # A further restart (the WAL is released, everything exported and delivered) sends nothing.
    requests = len(receiver.requests)
    del audit, sink
    gc.collect()  # a closed logger holds its WAL folder until it is collected
    audit = AuditLogger(max_events=max_events, auto_export_path=folder, wal_path=wal)
    assert audit.get_statistics()["wal_recovered_events"] == 0
    with WebhookSink(audit, receiver.url + "/hook", cursor=cursor, **FAST) as again:
        pass
    audit.close()
    assert (again.redelivered, again.recovered, len(receiver.requests)) == (0, 0, requests)


def test_a_durable_sink_delivers_what_its_logger_holds_unexported(receiver: Receiver, tmp_path: Path) -> None:
    """Events logged before start() and not exported yet go out first, then the live ones."""
    audit = AuditLogger(auto_export_path=tmp_path / "audit")
    before = [audit.log("store", user_id="a").event_id for _ in range(5)]
    audit.log("forget", user_id="b")  # filtered out
    with WebhookSink(audit, receiver.url, cursor=tmp_path / "c.json", operation="store", **FAST) as sink:
        after = [audit.log("store").event_id for _ in range(3)]
    assert _received_ids(receiver) == before + after
    assert (sink.recovered, sink.redelivered, sink.delivered) == (5, 0, 8)


def _unexported(tmp_path: Path, n: int) -> tuple[AuditLogger, list[str]]:
    audit = AuditLogger(auto_export_path=tmp_path / "audit")
    ids = [audit.log("store", metadata={"i": i}).event_id for i in range(n)]
    return audit, ids


def _memory_ids(red: Redelivery, audit: AuditLogger) -> list[str]:
    sub = audit.subscribe(batches=True, backlog=True)
    red.memory = sub.backlog
    sub.close()
    assert list(red.batches(7, None)) == []  # nothing exported
    return [i for df in red.memory_batches(7, None) for i in df["event_id"].to_list()]


@pytest.mark.parametrize("j", [0, 1, 6, 7, 20])
def test_the_cursor_s_live_count_goes_on_into_the_unexported_events(tmp_path: Path, j: int) -> None:
    audit, ids = _unexported(tmp_path, 20)
    cursor = Cursor(tmp_path / "c.json")
    cursor.save(next_leaf=0, delivered=j, live=j, event_id=ids[j - 1] if j else None)
    red = Redelivery(resolve(tmp_path / "audit"), cursor)
    assert _memory_ids(red, audit) == ids[j:]
    red.finished(j)
    state = cursor.load()
    assert state is not None and (state["live"], state["event_id"]) == (j, ids[j - 1] if j else None)
    assert red.duplicates == 0


def test_a_live_count_that_does_not_match_re_sends_them_all(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    audit, ids = _unexported(tmp_path, 10)
    cursor = Cursor(tmp_path / "c.json")
    cursor.save(next_leaf=0, delivered=4, live=4, event_id="evt_not_among_them")
    red = Redelivery(resolve(tmp_path / "audit"), cursor)
    with caplog.at_level(logging.WARNING, logger="axon_audit"):
        assert _memory_ids(red, audit) == ids  # duplicates, never a gap
    assert red.duplicates == 4 and any("re-sends the 10 events" in r.getMessage() for r in caplog.records)


def test_backlog_needs_a_bool() -> None:
    from axon_audit import AuditTypeError  # here: only this test needs it
    with pytest.raises(AuditTypeError, match="backlog must be True or False"):
        AuditLogger().subscribe(backlog=1)  # type: ignore[arg-type]


def test_an_export_committed_but_not_yet_done_when_the_sink_starts_goes_out_once(receiver: Receiver,
                                                                                  tmp_path: Path) -> None:
    """A rotation's export is on the manifest, but the logger has not marked it done (its writer
    thread is between the commit and `on_done`) when a durable sink starts: its events are
    exported, so they are not the logger's unexported events; after a crash (the WAL and
    the cursor as they were) a new sink sends nothing again."""
    import shutil
    import threading

    from axon_audit.read.log_order import log_parts, log_size

    folder, wal, cursor = tmp_path / "audit", tmp_path / "wal", tmp_path / "c.json"
    audit = AuditLogger(max_events=5, auto_export_path=folder, wal_path=wal)
    target = audit._exporter.target
    committed, go = threading.Event(), threading.Event()
    real_export = target.export

    def export(*args: object, **kwargs: object) -> None:  # the first export waits after its commit
        real_export(*args, **kwargs)
        if not committed.is_set():
            committed.set()
            go.wait(30)

    target.export = export  # type: ignore[method-assign]
    ids = [audit.log("store", metadata={"i": i}).event_id for i in range(5)]  # the 5th rotates
    assert committed.wait(30) and log_size(log_parts(resolve(folder))) == 5
    assert audit._exporter.pending  # committed, not marked done
    sink = WebhookSink(audit, receiver.url, cursor=cursor, **FAST).start()
    go.set()
    ids += [audit.log("store", metadata={"i": i}).event_id for i in range(5, 8)]  # live, not exported
    wait_until(lambda: (Cursor(cursor).load() or {}).get("delivered") == sink.delivered and sink.pending == 0
               and len(_received_ids(receiver)) >= 3)
    sent = _received_ids(receiver)
    assert sent == ids[5:]  # the first 5 were exported when the (new) cursor was made: as if delivered
    # A crash now: the WAL (events 5..7, not exported) and the cursor are what a new process finds.
    shutil.copytree(wal, tmp_path / "wal2")
    shutil.copytree(folder, tmp_path / "audit2")
    shutil.copy(cursor, tmp_path / "c2.json")
    requests = len(receiver.requests)
    again_logger = AuditLogger(max_events=5, auto_export_path=tmp_path / "audit2", wal_path=tmp_path / "wal2")
    with WebhookSink(again_logger, receiver.url, cursor=tmp_path / "c2.json", **FAST) as again:
        pass
    again_logger.close()
    audit.close()
    sink.close()
    assert (again.redelivered, again.recovered, again.redelivery.duplicates) == (0, 0, 0)  # type: ignore[union-attr]
    assert len(receiver.requests) == requests
