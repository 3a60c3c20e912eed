"""`log_batch`'s ingest rate, from Arrow and from a list of dicts, against another
checkout's code (main) and DuckDB's own Arrow insert, in one run.

    .venv/bin/python benchmarks/ingest_rate.py [--baseline /work/main] [--sizes 1000000 10000000]
        [--dict-sizes 100000 1000000] [--runs 3]

Every figure runs in a fresh subprocess with PYTHONPATH set to the checkout
under test (this one, or `--baseline`): it makes the workload untimed
(`axon_audit.workload.generate_events`; as Arrow the way `pl.DataFrame.to_arrow`
gives it, large strings, and with string views; as dicts the keyword arguments of
`log` from `iter_log_calls`, metadata as dicts), logs 1,000 events to warm up,
then times `log_batch` of the whole batch into a fresh logger (rotation off)
`--runs` times (waiting, untimed, for the background sealer between runs). It
prints the median events/s (and the slowest and fastest run).
Two references: DuckDB inserting the same Arrow table into an in-memory table
(as `benchmarks/baselines/duckdb_direct.py` does, ids from `uuid()`), and `log()`
called once per dict. The machine is shared: compare rows of one run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent
START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _workload(kind: str, n: int) -> Any:
    import polars as pl

    from axon_audit.workload import generate_events, iter_log_calls

    df = generate_events(n, seed=1, start=START, days=30)
    if kind in ("arrow", "duckdb"):
        return df.to_arrow()
    if kind == "arrow_view":
        return df.to_arrow(compat_level=pl.CompatLevel.newest())
    return list(iter_log_calls(df))  # dicts, rows


def _duckdb_insert(data: Any) -> None:
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'").fetchall()
    con.execute("CREATE TABLE events (event_id VARCHAR NOT NULL, timestamp TIMESTAMPTZ NOT NULL, "
                "operation VARCHAR NOT NULL, user_id VARCHAR, session_id VARCHAR, entry_ids VARCHAR[], "
                "metadata JSON, status VARCHAR NOT NULL, error_message VARCHAR, duration_ms DOUBLE)").fetchall()
    con.register("batch", data)
    con.execute("INSERT INTO events SELECT 'evt_' || uuid()::VARCHAR, timestamp, operation, user_id, session_id, "
                "entry_ids, metadata, status, error_message, duration_ms FROM batch").fetchall()
    con.unregister("batch")
    con.close()


def child(kind: str, n: int, runs: int) -> dict[str, Any]:
    """Time one figure in this process: seconds of each run."""
    from axon_audit import AuditLogger
    from axon_audit.store.hot import wait_sealed

    data = _workload(kind, n)
    times = []
    if kind == "duckdb":
        _duckdb_insert(data.slice(0, 1000))
        for _ in range(runs):
            gc.collect()
            t0 = time.perf_counter()
            _duckdb_insert(data)
            times.append(time.perf_counter() - t0)
        return {"times": times}
    AuditLogger(max_events=1 << 40).log_batch(data[:1000])
    for _ in range(runs):
        audit = AuditLogger(max_events=1 << 40)
        gc.collect()
        t0 = time.perf_counter()
        if kind == "rows":
            log = audit.log
            for call in data:  # per event on purpose: the row path is the reference
                log(**call)
            audit.flush()
        else:
            audit.log_batch(data)
        times.append(time.perf_counter() - t0)
        assert audit.event_count == n
        wait_sealed()  # the background sealer's work on this run's chunks: not into the next run's time
        del audit
    return {"times": times}


def run_child(tree: Path, kind: str, n: int, runs: int) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", kind, str(n), str(runs)],
                         env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{kind} {n} under {tree} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["times"]


def _row(label: str, n: int, times: list[float]) -> str:
    med = statistics.median(times)
    return (f"| {label} | {n:,} | {n / med / 1e6:.2f} M/s | {med * 1e9 / n:.0f} ns | "
            f"{n / max(times) / 1e6:.2f}–{n / min(times) / 1e6:.2f} M/s |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", type=Path, default=None, help="another checkout (e.g. /work/main) to compare")
    ap.add_argument("--sizes", type=int, nargs="*", default=[1_000_000, 10_000_000], help="Arrow batch sizes")
    ap.add_argument("--dict-sizes", type=int, nargs="*", default=[100_000, 1_000_000], help="list-of-dicts sizes")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--child", nargs=3, metavar=("KIND", "N", "RUNS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, n, runs = args.child
        print(json.dumps(child(kind, int(n), int(runs))))
        return
    trees = [("this checkout", HERE)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
    print(f"log_batch ingest: median of {args.runs} runs each (fresh subprocess per figure)")
    for label, tree in trees:
        print(f"  {label}: {tree}")
    print("\n| what | events | median rate | per event | range of runs |\n| --- | --- | --- | --- | --- |")
    plan = [(k, n) for n in args.sizes for k in ("arrow", "arrow_view")]
    plan += [(k, n) for n in args.dict_sizes for k in ("dicts",)]
    for kind, n in plan:
        for label, tree in trees:
            print(_row(f"{label}: log_batch({kind})", n, run_child(tree, kind, n, args.runs)), flush=True)
        if kind == "arrow":
            print(_row("DuckDB: INSERT from Arrow", n, run_child(HERE, "duckdb", n, args.runs)), flush=True)
        if kind == "dicts":
            print(_row(f"{trees[0][0]}: log() per dict", n, run_child(HERE, "rows", n, args.runs)), flush=True)


if __name__ == "__main__":
    main()
