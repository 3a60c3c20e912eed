"""What following a live logger's write-ahead log costs the follower (`axon_audit.read.live_tail`).

    .venv/bin/python benchmarks/live_tail_cost.py [--events N] [--batch K]

A logger with a WAL (``wal_sync="always"``, no rotation during the run) holds N
events not yet exported; prints medians of 5 runs of: making a `LiveFollower`
(it reads the WAL's N events: the backlog), a look with nothing new, a look
after K more events (per event), and the delay from `log()` returning to a
follower looking every 10 ms having the event. The machine is shared: compare
the rows of one run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from axon_audit import AuditLogger
from axon_audit.io.location import resolve
from axon_audit.read.live_tail import LiveFollower

ARGS = dict(user_id="user_123", session_id="session_abc", entry_ids=["entry_1", "entry_2"],
            metadata={"source": "api", "batch_size": 2}, status="SUCCESS", duration_ms=45.2)


def run(n: int, k: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d:
        folder, wal = Path(d) / "export", Path(d) / "wal"
        audit = AuditLogger(max_events=10 * (n + k + 1000), auto_export_path=folder, wal_path=wal)
        audit.log_batch([{"operation": "store", **ARGS} for _ in range(n)])
        t0 = time.perf_counter()
        follower = LiveFollower(resolve(folder), wal)
        make = time.perf_counter() - t0
        assert follower.backlog.height == n
        t0 = time.perf_counter()
        assert follower.fresh() == []
        idle = time.perf_counter() - t0
        for _ in range(k):
            audit.log("store", **ARGS)
        t0 = time.perf_counter()
        got = sum(df.height for df in follower.fresh())
        look = time.perf_counter() - t0
        assert got == k
        delays: list[float] = []

        def watch(logged: float) -> None:
            while not sum(df.height for df in follower.fresh()):
                time.sleep(0.01)
            delays.append(time.perf_counter() - logged)

        for _ in range(50):  # the delay: log() returned (fsynced) -> a follower looking every 10 ms has it
            logged = time.perf_counter()
            audit.log("store", **ARGS)
            thread = threading.Thread(target=watch, args=(logged,))
            thread.start()
            thread.join(10)
        audit.close()
        return {"make_s": make, "idle_look_ms": idle * 1e3, "look_us_per_event": look / k * 1e6,
                "delay_ms_median": statistics.median(delays) * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1_000)
    args = parser.parse_args()
    runs = [run(args.events, args.batch) for _ in range(5)]
    for key in runs[0]:
        print(f"{key:>20}: {statistics.median(r[key] for r in runs):.3f}")


if __name__ == "__main__":
    main()
