"""Load: 8 threads and 200 asyncio tasks log 1 M events while queries, statistics,
flushes and rotations run; afterwards every event is exported exactly once, ids
are unique and the folder verifies."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import orjson
import polars as pl
import pytest

import axon_audit
from axon_audit import AuditLogger

THREADS, PER_THREAD = 8, 75_000
TASKS, PER_TASK = 200, 2_000
TOTAL = THREADS * PER_THREAD + TASKS * PER_TASK


@pytest.mark.slow
def test_one_million_events_from_threads_and_tasks_exactly_once(tmp_path: Path) -> None:
    assert TOTAL == 1_000_000
    root = tmp_path / "exp"
    audit = AuditLogger(max_events=50_000, auto_export_path=root, wal_path=tmp_path / "wal",
                        wal_sync="interval", hmac_key="stress")
    ids: list[list[str]] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def thread_worker(t: int) -> None:
        mine: list[str] = []
        try:
            for i in range(PER_THREAD):
                event = audit.log("store" if i % 4 else "recall", user_id=f"t{t}", session_id=f"s{i % 50}",
                                  entry_ids=[f"e{i % 1000}"], metadata={"i": i}, duration_ms=float(i % 97))
                mine.append(event.event_id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        ids.append(mine)

    async def task_worker(k: int, out: list[str]) -> None:
        for i in range(PER_TASK):
            ev = await audit.log_event("forget" if i % 5 == 0 else "store", user_id=f"task{k % 20}",
                                       metadata={"k": k, "i": i}, status="failure" if i % 11 == 0 else "success")
            out.append(ev.event_id)
            if i % 100 == 0:
                await asyncio.sleep(0)  # let the other tasks interleave

    def async_side() -> None:
        async def main() -> None:
            outs: list[list[str]] = [[] for _ in range(TASKS)]
            await asyncio.gather(*(task_worker(k, outs[k]) for k in range(TASKS)))
            ids.extend(outs)

        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    reads = {"queries": 0, "stats": 0}

    def reader() -> None:
        try:
            while not done.is_set():
                got = audit.query_events(user_id="t3", operation="recall", limit=50)
                assert all(e.user_id == "t3" for e in got)
                stats = audit.get_statistics()
                assert stats["total_events"] <= stats["total_events_logged"]
                audit.scan(status="failure").select(pl.len()).collect()
                audit.flush()
                reads["queries"] += 1
                reads["stats"] += 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=thread_worker, args=(t,)) for t in range(THREADS)]
    workers.append(threading.Thread(target=async_side))
    watcher = threading.Thread(target=reader)
    watcher.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    done.set()
    watcher.join()
    assert not errors, errors[:3]
    audit.close()

    logged = [i for chunk in ids for i in chunk]
    assert len(logged) == TOTAL and len(set(logged)) == TOTAL  # unique ids
    stats = audit.get_stats()
    assert stats["total_events_logged"] == TOTAL and stats["exported_events"] == TOTAL
    assert stats["events_in_memory"] == 0 and stats["rotations"] >= 10 and reads["queries"] > 0

    entries = orjson.loads((root / "manifest.json").read_bytes())["entries"]
    exported = [e["event_id"] for x in entries if x["kind"] == "json"
                for e in orjson.loads((root / x["file"]).read_bytes())["events"]]
    assert len(exported) == TOTAL and set(exported) == set(logged)  # each exactly once
    parquet = pl.concat([pl.read_parquet(root / x["file"], columns=["event_id"])
                         for x in entries if x["kind"] == "parquet"])
    assert parquet.height == TOTAL and parquet["event_id"].n_unique() == TOTAL
    result = axon_audit.verify(root, key="stress")
    assert result.ok, result.problems[:3]
    assert result.events_checked == TOTAL and result.tree_size == TOTAL  # each event checked once
