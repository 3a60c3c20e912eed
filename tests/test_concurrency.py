"""Many threads and asyncio tasks logging and querying at once: exact counts, unique ids."""

from __future__ import annotations

import asyncio
import json
import threading

import duckdb

from axon_audit import AuditLogger


def test_threads_logging_and_querying():
    audit = AuditLogger(max_events=10**7, flush_size=500)
    n_threads, per_thread = 8, 3000
    errors: list[BaseException] = []
    seen_counts: dict[int, list[int]] = {0: [], 1: []}
    stop = threading.Event()

    def writer(t: int) -> None:
        try:
            for i in range(per_thread):
                audit.log("store", user_id=f"t{t}", entry_ids=[f"{t}-{i}"])
        except BaseException as exc:  # noqa: BLE001 - any failure in the thread is asserted on below  # pragma: no cover
            errors.append(exc)

    def reader(r: int) -> None:
        while not stop.is_set():
            seen_counts[r].append(len(audit.query_events(operation="STORE")))
            audit.get_statistics()

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(n_threads)]
    readers = [threading.Thread(target=reader, args=(r,)) for r in range(2)]
    for th in threads + readers:
        th.start()
    for th in threads:
        th.join()
    stop.set()
    for th in readers:
        th.join()
    assert not errors
    events = audit.query_events()
    assert len(events) == n_threads * per_thread == audit.total_events_logged
    assert len({e.event_id for e in events}) == len(events)
    for t in range(n_threads):
        mine = audit.query_events(user_id=f"t{t}")
        assert sorted(e.entry_ids[0] for e in mine) == sorted(f"{t}-{i}" for i in range(per_thread))
    for counts in seen_counts.values():
        assert counts == sorted(counts)  # a reader never sees the store shrink


async def test_asyncio_tasks_read_their_own_writes():
    audit = AuditLogger(max_events=10**7, flush_size=64)

    async def task(k: int) -> None:
        for i in range(100):
            e = await audit.log_event("recall", user_id=f"task{k}", session_id=f"s{i}")
            if i % 25 == 0:
                ids = {x.event_id for x in audit.query_events(user_id=f"task{k}")}
                assert e.event_id in ids
                assert len(ids) == i + 1
            await asyncio.sleep(0)

    await asyncio.gather(*(task(k) for k in range(200)))
    assert audit.event_count == 20_000
    assert len({e.event_id for e in audit.query_events()}) == 20_000


def test_threads_with_rotation_lose_and_duplicate_nothing(tmp_path):
    audit = AuditLogger(max_events=1000, auto_export_path=tmp_path, flush_size=128)
    n_threads, per_thread = 6, 2500

    def writer(t: int) -> None:
        for i in range(per_thread):
            audit.log("store", user_id=f"t{t}", metadata={"i": i})

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    audit.close()
    total = n_threads * per_thread
    json_ids = [e["event_id"] for p in tmp_path.glob("audit_*.json")
                for e in json.loads(p.read_text())["events"]]
    assert len(json_ids) == total == len(set(json_ids))
    (n, distinct), = duckdb.sql(
        f"select count(*), count(distinct event_id) from read_parquet('{tmp_path}/parquet/**/*.parquet')").fetchall()
    assert n == distinct == total
    per_user = duckdb.sql(
        f"select user_id, count(*) from read_parquet('{tmp_path}/parquet/**/*.parquet') group by all").fetchall()
    assert dict(per_user) == {f"t{t}": per_thread for t in range(n_threads)}
