"""The write-ahead log's cost per event under each sync policy, and the integrity
chain's cost per exported event.

    .venv/bin/python benchmarks/wal_cost.py [--events N]

Prints medians of 3 runs (per-event wall time of `log()`, full arguments). The
machine is shared: compare the rows of one run, not runs across days.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from axon_audit import AuditLogger
from axon_audit.integrity import manifest as _integrity
from axon_audit.io.json_export import event_objects

ARGS = dict(user_id="user_123", session_id="session_abc", entry_ids=["entry_1", "entry_2"],
            metadata={"source": "api", "batch_size": 2}, status="SUCCESS", duration_ms=45.2)


def per_event_us(make, n: int, threads: int = 1) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as d:
        audit = make(Path(d))
        per = n // threads

        def work() -> None:
            log = audit.log
            for _ in range(per):
                log("store", **ARGS)

        ts = [threading.Thread(target=work) for _ in range(threads)]
        t0 = time.perf_counter()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if audit._wal is not None:
            audit._wal.sync()  # count the time until everything is on disk
        elapsed = time.perf_counter() - t0
        stats = audit.get_stats()
        return elapsed / (per * threads) * 1e6, stats


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    n = ap.parse_args().events
    big = 10**9
    cases = [
        ("no WAL", lambda d: AuditLogger(max_events=big), n, 1),
        ("wal_sync='interval' (5 ms)", lambda d: AuditLogger(max_events=big, auto_export_path=d / "e",
                                                              wal_path=d / "w", wal_sync="interval"), n, 1),
        ("wal_sync='always', 1 thread", lambda d: AuditLogger(max_events=big, auto_export_path=d / "e",
                                                              wal_path=d / "w"), max(200, n // 200), 1),
        ("wal_sync='always', 8 threads", lambda d: AuditLogger(max_events=big, auto_export_path=d / "e",
                                                               wal_path=d / "w"), max(1600, n // 25), 8),
    ]
    print(f"{'policy':32} {'us/event':>10} {'events':>8} {'fsyncs':>8}")
    # Interleaved rounds, so load from other processes hits every policy alike.
    results: dict[str, list[tuple[float, dict]]] = {c[0]: [] for c in cases}
    for _ in range(3):
        for name, make, count, threads in cases:
            results[name].append(per_event_us(make, count, threads))
    for name, _, count, _ in cases:
        us = statistics.median(r[0] for r in results[name])
        print(f"{name:32} {us:10.2f} {count:8d} {results[name][-1][1]['wal_fsyncs']:8d}")

    audit = AuditLogger(max_events=big)
    for _ in range(n):
        audit.log("store", **ARGS)
    df = audit.scan().collect()
    objects = event_objects(df)
    t0 = time.perf_counter()
    _integrity.chain_column(objects, _integrity.GENESIS)
    chain = (time.perf_counter() - t0) / n * 1e6
    print(f"{'integrity chain at export':32} {chain:10.2f} {n:8d}")


if __name__ == "__main__":
    main()
