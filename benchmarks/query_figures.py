"""Query and lookup figures of the live store at N events (default 1 M).

Wall-clock medians, and process CPU-time medians (all threads: on a shared,
busy machine the CPU time is the steadier figure).

    .venv/bin/python benchmarks/query_figures.py [N]

Logs `workload.generate_events(N)` with `log_batch` (rotation off), then prints
the median of a few runs of each read. A measurement script, not a test.
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import timedelta

import polars as pl

from axon_audit import AuditLogger
from axon_audit.store.hot import wait_sealed
from axon_audit.workload import generate_events


def median_ms(fn, runs: int = 7, clock=time.perf_counter) -> float:
    times = []
    for _ in range(runs):
        t = clock()
        out = fn()
        times.append(clock() - t)
        del out
    return statistics.median(times) * 1e3


def main(n: int) -> None:
    df = generate_events(n, seed=42)
    audit = AuditLogger(max_events=n + 1, enable_rotation=False)
    t = time.perf_counter()
    audit.log_batch(df)
    print(f"{n:,} events; log_batch {time.perf_counter() - t:.2f} s")
    t = time.perf_counter()
    wait_sealed()  # full chunks get their lookup index in the background
    print(f"background sealing (lookup indexes) done {time.perf_counter() - t:.2f} s later")
    users = df["user_id"].value_counts(sort=True)
    mid_user = users["user_id"][len(users) // 50]  # a busy user, not the busiest
    last = df["timestamp"].max()
    entry = df["entry_ids"].explode().drop_nulls()[n // 2]
    eid = audit.scan().select(pl.col("event_id").gather(n // 3)).collect().item()
    del df, users  # the generated frame is as big as the store
    cases = {
        "query user+op+time (last day)": lambda: audit.query_events(
            user_id=mid_user, operation="STORE", start_time=last - timedelta(days=1)),
        "query user+op (all time)": lambda: audit.query_events(user_id=mid_user, operation="STORE"),
        "query limit=100 (no filter)": lambda: audit.query_events(limit=100),
        "10K events as objects": lambda: audit.query_events(limit=10_000),
        "10K events as objects (CPU time)": None,
        "get_event(id)": lambda: audit.get_event(eid),
        "entry_ids=[one entry]": lambda: audit.query_events(entry_ids=[entry]),
        "get_statistics()": audit.get_statistics,
        "get_user_statistics(user)": lambda: audit.get_user_statistics(mid_user),
        "sql count by op": lambda: audit.sql("SELECT operation, count(*) FROM events GROUP BY 1"),
    }
    if n <= 2_000_000:  # a full canonical copy of every event: at 10 M it needs several GB at once
        cases["to_arrow()"] = audit.to_arrow
    def cpu_10k():
        t = time.thread_time()
        audit.query_events(limit=10_000)
        return (time.thread_time() - t) * 1e3

    cpu = statistics.median(cpu_10k() for _ in range(7))
    del cases["10K events as objects (CPU time)"]
    for name, fn in cases.items():
        first = median_ms(fn, runs=1)
        out = fn()
        size = f"{len(out):>8,} rows" if isinstance(out, list) else ""
        wall, proc = median_ms(fn), median_ms(fn, clock=time.process_time)
        print(f"{name:34s} {wall:9.2f} ms  cpu {proc:8.2f} ms  (first call {first:7.1f} ms) {size}")


    print(f"{'10K events as objects, CPU time':34s} {cpu:9.2f} ms   (this thread's CPU: the machine is shared)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
