"""Live subscriptions (`AuditLogger.subscribe`): every matching event, in log order, once;
the overflow policies; closing; the async form; the live security monitor."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
import weakref
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from axon_audit import AuditLogger, AuditTypeError, AuditValueError, SecurityMonitor, Subscription

THREADS, PER_THREAD = 8, 20_000


def _log_from_threads(audit: AuditLogger, threads: int, per: int) -> None:
    def work(t: int) -> None:
        log = audit.log
        for i in range(per):
            log("store" if i % 3 else "recall", user_id=f"u{i % 5}", session_id=f"t{t}",
                status="failure" if i % 7 == 0 else "success", metadata={"i": i})

    ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def _ids(frames: list[pl.DataFrame]) -> list[str]:
    return [i for df in frames for i in df["event_id"].to_list()]


def _logged_ids(audit: AuditLogger, **filters: object) -> list[str]:
    """Every matching event the logger holds, in logging order (the store's order)."""
    return audit.scan(**filters).select("event_id").collect()["event_id"].to_list()


def test_eight_logging_threads_each_matching_event_once_in_log_order() -> None:
    audit = AuditLogger(max_events=10**6)
    audit.log("recall", user_id="u1")  # before the subscription: not delivered
    events = audit.subscribe(user_id=["u1", "u3"], operation="recall")
    batches = audit.subscribe(batches=True, status="failure", max_events=10**6)
    got: list[str] = []
    frames: list[pl.DataFrame] = []
    readers = [threading.Thread(target=lambda: got.extend(e.event_id for e in events)),
               threading.Thread(target=lambda: frames.extend(batches))]
    for r in readers:
        r.start()
    _log_from_threads(audit, THREADS, PER_THREAD)
    audit.close()
    for r in readers:
        r.join(timeout=60)
    assert not any(r.is_alive() for r in readers)

    recalls = sum(1 for i in range(PER_THREAD) if i % 3 == 0 and i % 5 in (1, 3)) * THREADS
    assert len(got) == len(set(got)) == recalls
    assert got == _logged_ids(audit, user_id=["u1", "u3"], operation="recall")[1:]  # minus the one before
    failures = sum(1 for i in range(PER_THREAD) if i % 7 == 0) * THREADS
    ids = _ids(frames)
    assert len(ids) == len(set(ids)) == failures
    assert ids == _logged_ids(audit, status="failure")
    whole = pl.concat(frames)
    assert set(whole["status"].cast(pl.String)) == {"FAILURE"}
    # Each thread's events arrive in the order that thread logged them.
    for t in range(THREADS):
        mine = whole.filter(pl.col("session_id") == f"t{t}")["metadata"].str.json_path_match("$.i").cast(int)
        assert mine.to_list() == sorted(mine.to_list()) and mine.n_unique() == mine.len()
    assert events.dropped == batches.dropped == 0 and events.ended and batches.ended


def test_async_subscriber_gets_batches_and_metadata_filters() -> None:
    async def main() -> tuple[list[str], list[str], int]:
        audit = AuditLogger()
        async with audit.subscribe(metadata={"kind": "pay"}, entry_ids=["e1"]) as sub:
            assert isinstance(sub, Subscription)
            for i in range(300):
                await audit.log_event("store", user_id=f"u{i}", entry_ids=["e1" if i % 2 else "e2"],
                                      metadata={"kind": "pay" if i % 3 else "view"})
            audit.log_batch([{"operation": "recall", "user_id": "batch", "entry_ids": ["e1"],
                              "metadata": {"kind": "pay"}}] * 4)
            await asyncio.to_thread(audit.close)
            got = [e.user_id async for e in sub]
        return got, _logged_ids(audit, metadata={"kind": "pay"}, entry_ids=["e1"]), sub.delivered

    got, expected_ids, delivered = asyncio.run(main())
    assert got == [f"u{i}" for i in range(300) if i % 2 and i % 3] + ["batch"] * 4
    assert delivered == len(expected_ids) == len(got)


def test_async_waiter_is_woken_by_a_quiet_logger_within_the_interval() -> None:
    async def main() -> tuple[str | None, float]:
        audit = AuditLogger()
        sub = audit.subscribe(interval=0.05)
        t0 = time.monotonic()
        audit.log("export", user_id="lonely")  # stays in the buffer: no flush, no close
        event = await asyncio.wait_for(sub.__anext__(), timeout=5)
        sub.close()
        return event.user_id, time.monotonic() - t0

    user, elapsed = asyncio.run(main())
    assert user == "lonely" and elapsed < 2


def test_quiet_logger_delivers_without_a_flush() -> None:
    audit = AuditLogger()
    with audit.subscribe(batches=True, interval=0.05) as sub:
        audit.log("store", user_id="u1")
        df = sub.poll(timeout=5)
        assert df is not None and df["user_id"].cast(pl.String).to_list() == ["u1"]
        assert sub.poll(timeout=0.1) is None and not sub.ended  # nothing more yet, still live


def test_drop_oldest_keeps_the_newest_and_counts_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    audit = AuditLogger(max_events=10**6, flush_size=1000)
    sub = audit.subscribe(max_events=1000)  # nobody reads until the end
    with caplog.at_level(logging.WARNING, logger="axon_audit"):
        for i in range(10_000):
            audit.log("store", user_id=f"u{i}")
        audit.close()
        sub._thread.join(timeout=30)  # delivery done: the queue holds what survived
        got = [e.user_id for e in sub]
    assert got == [f"u{i}" for i in range(9000, 10_000)]
    assert sub.dropped == 9000 and sub.delivered == 10_000
    assert sum("oldest queued events are dropped" in r.getMessage() for r in caplog.records) == 1


def test_a_slow_reader_with_drop_oldest_gets_an_ordered_subsequence() -> None:
    audit = AuditLogger(max_events=10**6, flush_size=500)
    sub = audit.subscribe(batches=True, max_events=600)
    frames: list[pl.DataFrame] = []

    def slow() -> None:
        for df in sub:
            frames.append(df)
            time.sleep(0.01)

    reader = threading.Thread(target=slow)
    reader.start()
    _log_from_threads(audit, 2, 10_000)
    audit.close()
    reader.join(timeout=60)
    everything = _logged_ids(audit)
    got = _ids(frames)
    assert len(got) + sub.dropped == len(everything) == 20_000 and sub.dropped > 0
    position = {e: i for i, e in enumerate(everything)}
    assert [position[e] for e in got] == sorted(position[e] for e in got)  # in order, none twice


def test_block_loses_nothing_and_never_blocks_log() -> None:
    audit = AuditLogger(max_events=10**6, flush_size=256)
    sub = audit.subscribe(max_events=500, on_overflow="block")
    done = threading.Event()

    def produce() -> None:
        _log_from_threads(audit, 2, 10_000)
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    # Nobody reads yet: the queue is full after 500 events, yet logging goes on to the end.
    assert done.wait(timeout=60)
    assert sub.pending <= 500
    audit.close()
    got = [e.event_id for e in sub]
    assert got == _logged_ids(audit) and len(got) == 20_000 and sub.dropped == 0
    producer.join()


def test_block_hands_a_chunk_bigger_than_the_queue_over_piece_by_piece() -> None:
    audit = AuditLogger(flush_size=10**5)
    sub = audit.subscribe(batches=True, max_events=100, on_overflow="block")
    for i in range(1000):
        audit.log("store", user_id=f"u{i}")
    audit.close()  # one sealed chunk of 1000 rows
    frames = list(sub)
    assert [df.height for df in frames] == [100] * 10 and sub.dropped == 0
    assert pl.concat(frames)["user_id"].cast(pl.String).to_list() == [f"u{i}" for i in range(1000)]


def test_logger_close_delivers_the_buffered_tail_and_ends() -> None:
    audit = AuditLogger()
    sub = audit.subscribe(operation="forget", interval=60)  # no idle flush within the test
    for i in range(7):
        audit.log("forget", user_id=f"u{i}")
    audit.close()
    audit.log("forget", user_id="after")  # the logger stays usable; the subscription has ended
    assert [e.user_id for e in sub] == [f"u{i}" for i in range(7)]
    assert sub.ended and list(sub) == []
    later = audit.subscribe(operation="forget")
    audit.log("forget", user_id="later")
    audit.close()
    assert [e.user_id for e in later] == ["later"]  # "after" was logged before it subscribed


def test_close_discards_the_queue_and_unsubscribes() -> None:
    audit = AuditLogger()
    sub = audit.subscribe()
    audit.log("store")
    audit.flush()
    sub.close()
    assert list(sub) == [] and sub.ended and sub.pending == 0
    assert not sub._thread.is_alive() and audit._hot.subscribers.subs == ()
    audit.log("store")
    audit.flush()
    assert sub.delivered <= 1


def test_a_forgotten_logger_and_subscription_are_collected_and_the_thread_ends() -> None:
    audit = AuditLogger()
    sub = audit.subscribe(interval=0.01)
    thread, ref = sub._thread, weakref.ref(audit)
    audit.log("store")
    del audit, sub
    for _ in range(200):  # the thread holds it while it waits (interval): collect until it let go
        gc.collect()
        thread.join(timeout=0.02)
        if not thread.is_alive():
            break
    assert ref() is None and not thread.is_alive()


def test_several_reader_threads_share_one_subscription() -> None:
    audit = AuditLogger(flush_size=100)
    sub = audit.subscribe()
    seen: list[list[str]] = [[] for _ in range(4)]
    readers = [threading.Thread(target=lambda out=out: out.extend(e.event_id for e in sub)) for out in seen]
    for r in readers:
        r.start()
    for i in range(5000):
        audit.log("store", user_id=f"u{i}")
    audit.close()
    for r in readers:
        r.join(timeout=30)
    union = [e for out in seen for e in out]
    assert sorted(union) == sorted(_logged_ids(audit)) and len(union) == len(set(union)) == 5000


def test_bad_arguments_name_what_was_expected() -> None:
    audit = AuditLogger()
    with pytest.raises(AuditValueError, match="on_overflow must be one of drop_oldest, block"):
        audit.subscribe(on_overflow="wait")
    with pytest.raises(AuditValueError, match="max_events must be an int >= 1"):
        audit.subscribe(max_events=0)
    with pytest.raises(AuditValueError, match="interval must be a number of seconds > 0"):
        audit.subscribe(interval=0)
    with pytest.raises(AuditTypeError, match="unknown filter 'limit'"):
        audit.subscribe(limit=3)
    with pytest.raises(AuditTypeError, match="batches must be True or False"):
        audit.subscribe(batches="yes")
    assert audit._hot.subscribers.subs == ()
def test_live_monitor_yields_each_alert_once() -> None:
    audit = AuditLogger()
    monitor = SecurityMonitor(rules=["failure_burst", "excessive_deletions"], max_failures=3, max_deletions=5)
    sub = audit.subscribe(batches=True)
    alerts: list = []
    watcher = threading.Thread(target=lambda: alerts.extend(monitor.watch(sub)))
    watcher.start()
    t0 = datetime(2026, 1, 5, 10, 0, tzinfo=timezone.utc)  # one 15-minute and one 1-hour window
    for b in range(3):  # a growing burst of failures, one batch at a time: one alert, however often re-evaluated
        audit.log_batch([{"operation": "recall", "user_id": "u1", "status": "failure",
                          "timestamp": t0 + timedelta(seconds=2 * b + k)} for k in range(2)])
    audit.log_batch([{"operation": "forget", "user_id": "m", "timestamp": t0 + timedelta(minutes=10, seconds=i)}
                     for i in range(7)])
    audit.close()
    watcher.join(timeout=30)
    assert [(a.rule, a.count, a.window_start) for a in alerts] == [("failure_burst", 4, t0),
                                                                    ("excessive_deletions", 7, t0)]


def test_live_monitor_over_an_async_feed_and_a_feed_of_events_is_refused() -> None:
    async def main() -> list:
        audit = AuditLogger()
        sub = audit.subscribe(batches=True)
        audit.log_batch([{"operation": "export", "user_id": "x"}] * 3)
        await asyncio.to_thread(audit.close)
        return [a.rule async for a in SecurityMonitor(max_exports=2, rules=["export_activity"]).awatch(sub)]

    assert asyncio.run(main()) == ["export_activity"]
    with AuditLogger().subscribe() as events, pytest.raises(AuditValueError, match=r"subscribe\(..., batches=True\)"):
        list(SecurityMonitor().watch(events))


def test_rotations_and_the_write_ahead_log_lose_nothing_for_a_subscriber(tmp_path: Path) -> None:
    audit = AuditLogger(max_events=1000, flush_size=300, auto_export_path=tmp_path / "e", wal_path=tmp_path / "w",
                        wal_sync="interval")
    sub = audit.subscribe(batches=True, status="failure")
    for i in range(5000):
        audit.log("store", user_id=f"u{i}", status="failure" if i % 2 else "success")
    audit.close()
    got = pl.concat(list(sub))["user_id"].cast(pl.String).to_list()
    assert got == [f"u{i}" for i in range(1, 5000, 2)]
    assert audit.get_stats()["rotations"] >= 4  # the events left memory meanwhile; the subscriber had them
