"""One benchmark case: every figure of one backend at one size, in this process.

Run by `benchmarks.run` as ``python -m benchmarks.case BACKEND SIZE OUT.json
[--quick]`` in a fresh interpreter, so memory is measured from a clean process
and no backend's caches help another.
"""

from __future__ import annotations

import asyncio
import gc
import json
import resource
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import polars as pl

from axon_audit.workload import generate_events, iter_log_calls

from ._timing import Plan, measure
from .baselines import Backend, backend_classes

SEED = 20250101
#: Fixed, so every backend and every run sees the same events.
START = datetime(2025, 1, 1, tzinfo=timezone.utc)
DAYS = 30.0
QUERY_OPERATION = "RECALL"
USER_LIMIT = 10_000

# (plan for cheap reads, for whole-store writes, for ingest, for per-event logging)
# Every operation first runs once on a 1 000-event store (imports, lazy caches);
# whole-store writes and ingest then need no warm-up run at full size.
FULL = {
    "read": Plan(warmup=1, min_runs=3, max_runs=9, budget_s=1.0),
    "write": Plan(warmup=0, min_runs=3, max_runs=5, budget_s=10.0),
    "ingest": Plan(warmup=0, min_runs=3, max_runs=5, budget_s=10.0),
    "log": Plan(warmup=1, min_runs=3, max_runs=5, budget_s=2.0),
    "rotation": Plan(warmup=0, min_runs=3, max_runs=3, budget_s=0.0),
}
LOG_CALLS = 20_000  # per run of the per-event logging figures (quick: 2 000)
QUICK = {
    "read": Plan(warmup=0, min_runs=1, max_runs=2, budget_s=0.1),
    "write": Plan(warmup=0, min_runs=1, max_runs=2, budget_s=0.1),
    "ingest": Plan(warmup=0, min_runs=1, max_runs=2, budget_s=0.1),
    "log": Plan(warmup=0, min_runs=1, max_runs=2, budget_s=0.1),
    "rotation": Plan(warmup=0, min_runs=1, max_runs=1, budget_s=0.0),
}


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def query_params(df: pl.DataFrame) -> dict[str, Any]:
    """The questions asked of every backend, picked from the data (untimed)."""
    users = df["user_id"].value_counts(sort=True)
    entries = df["entry_ids"].explode().drop_nulls().value_counts(sort=True)
    last = df["timestamp"].max()
    return {
        "top_user": users["user_id"][0],
        # a mid-ranked user for user statistics is as typical as the top one; keep the top (worst case)
        "start": last - timedelta(hours=1),
        # an entry a few events touch: the 1000th most used (or the rarest at small sizes)
        "entry": entries["entry_ids"][min(999, entries.height - 1)],
    }


def dir_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def run_case(name: str, n: int, quick: bool, workdir: Path) -> dict[str, Any]:
    plans = QUICK if quick else FULL
    cls = backend_classes()[name]
    t_scaled = time.perf_counter()  # time that grows with n: for the driver's projection
    df = generate_events(n, seed=SEED, start=START, days=DAYS)
    params = query_params(df)
    scaled = time.perf_counter() - t_scaled
    n_calls = min(n, 2_000 if quick else LOG_CALLS)
    calls = list(iter_log_calls(df.head(n_calls)))
    figures: dict[str, Any] = {}
    checks: dict[str, Any] = {}

    # Warm-up: every operation once on a small store in a throwaway backend.
    warm = cls(workdir / "warm")
    warm.ingest(warm.prepare(df.head(1000)))
    warm.query(params["top_user"], QUERY_OPERATION, params["start"])
    warm.query_user(params["top_user"], USER_LIMIT)
    warm.lookup(params["entry"])
    warm.statistics()
    warm.user_statistics(params["top_user"])
    warm.export_json(workdir / "warm.json")
    if warm.write_parquet(workdir / "warm-parquet") is not None:
        shutil.rmtree(workdir / "warm-parquet")
    for c in calls[:200]:
        warm.log(c)
    warm.rotation(warm.prepare(df.head(1000)), workdir / "warm-rotation")
    warm.close()

    # Bulk ingest; the first one also measures memory in this fresh process.
    t_scaled = time.perf_counter()
    backend: Backend = cls(workdir / "store")
    data = backend.prepare(df)
    del df  # the generated frame is not needed past here: 2-3 GB at 10 M events
    before = rss_bytes()
    t0 = time.perf_counter()
    backend.ingest(data)
    first_ingest = time.perf_counter() - t0
    after = rss_bytes()
    own = backend.memory_bytes()
    figures["memory_rss"] = {"median": (after - before) / n, "min": None, "max": None, "runs": 1}
    if own is not None:
        figures["memory_own"] = {"median": own / n, "min": None, "max": None, "runs": 1}
    estimate = backend.memory_estimate_bytes()
    if estimate is not None:
        figures["memory_estimated"] = {"median": estimate / n, "min": None, "max": None, "runs": 1}
    disk = backend.disk_bytes()
    if disk is not None:
        figures["store_disk"] = {"median": disk / n, "min": None, "max": None, "runs": 1}

    holder: dict[str, Backend] = {"b": backend}

    def fresh() -> None:
        holder["b"].close()
        holder["b"] = cls(workdir / "store")

    # `data` is bound as a default: the `del data` below would leave a closure over it unbound.
    figures["ingest"] = measure(lambda data=data: holder["b"].ingest(data), plans["ingest"], setup=fresh, per=n,
                                scale=1e6)
    figures["ingest"]["first_run"] = first_ingest * 1e6 / n
    backend = holder["b"]

    # Logging with rotation, end to end: a fresh logger and export folder per run, timed by
    # `rotation` itself from the logger's creation to its close (its own preparation left out).
    rot_dir = workdir / "rotation"
    rot_runs = []
    for _ in range(plans["rotation"].min_runs):
        shutil.rmtree(rot_dir, ignore_errors=True)
        gc.collect()
        rot_runs.append(backend.rotation(data, rot_dir))
    rot = rot_runs[-1]
    if rot is not None:
        per_event = [r[0] * 1e6 / n for r in rot_runs if r is not None]
        figures["rotation"] = {"median": statistics.median(per_event), "min": min(per_event),
                               "max": max(per_event), "runs": len(per_event)}
        checks["rotation_exported"] = rot[1]
        # The Parquet a rotation writes, every column: the on-disk figure for a backend that rotates.
        figures["parquet_bytes"] = {"median": rot[2] / n, "min": None, "max": None, "runs": 1}
        shutil.rmtree(rot_dir)
    del data
    scaled += time.perf_counter() - t_scaled

    def q() -> list:
        return backend.query(params["top_user"], QUERY_OPERATION, params["start"])

    figures["query_filtered"] = measure(q, plans["read"], scale=1e3)
    figures["query_10k"] = measure(lambda: backend.query_user(params["top_user"], USER_LIMIT), plans["read"], scale=1e3)
    figures["lookup_entry"] = measure(lambda: backend.lookup(params["entry"]), plans["read"], scale=1e3)
    figures["statistics"] = measure(backend.statistics, plans["read"], scale=1e3)
    figures["user_statistics"] = measure(lambda: backend.user_statistics(params["top_user"]), plans["read"], scale=1e3)
    for key in ("query_filtered", "query_10k", "lookup_entry"):
        checks[key] = len(figures[key].pop("result"))
    checks["statistics_total"] = figures["statistics"].pop("result")["total_events"]
    checks["user_total"] = figures["user_statistics"].pop("result")["total_operations"]

    json_path = workdir / "export.json"
    figures["export_json"] = measure(lambda: backend.export_json(json_path), plans["write"],
                                     setup=lambda: json_path.unlink(missing_ok=True), per=n, scale=1e6)
    checks["export_count"] = figures["export_json"].pop("result")
    figures["json_bytes"] = {"median": json_path.stat().st_size / n, "min": None, "max": None, "runs": 1}
    json_path.unlink()

    pq_dir = workdir / "parquet"
    if cls.write_parquet is not Backend.write_parquet:
        figures["parquet"] = measure(lambda: backend.write_parquet(pq_dir), plans["write"],
                                     setup=lambda: shutil.rmtree(pq_dir, ignore_errors=True), per=n, scale=1e6)
        figures["parquet"].pop("result")
        # A backend that rotates reports its rotation's files (above); others what this writes.
        figures.setdefault("parquet_bytes", {"median": dir_bytes(pq_dir) / n, "min": None, "max": None, "runs": 1})
        shutil.rmtree(pq_dir)

    # Per-event logging last (it adds events): into a store already holding n events.
    figures["log"] = measure(lambda: [backend.log(c) for c in calls] and None, plans["log"], per=n_calls, scale=1e6)
    loop = asyncio.new_event_loop()

    async def log_all() -> None:
        log_event = backend.log_event
        for c in calls:
            await log_event(c)

    figures["log_event"] = measure(lambda: loop.run_until_complete(log_all()), plans["log"], per=n_calls, scale=1e6)
    loop.close()
    for f in ("log", "log_event"):
        figures[f].pop("result", None)
        figures[f]["calls"] = n_calls
    backend.close()
    # What the next size would cost: each size-dependent figure's runs at its minimum count.
    scaled += sum(f["run_s"] * f["planned_runs"] for k, f in figures.items()
                  if "run_s" in f and k not in ("log", "log_event"))
    for f in figures.values():
        for k in ("spent_s", "run_s", "planned_runs"):
            f.pop(k, None)
    return {"backend": name, "size": n, "figures": figures, "checks": checks, "peak_rss": peak_rss_bytes(),
            "scaled_s": scaled}


def main(argv: list[str]) -> int:
    name, size, out = argv[0], int(argv[1]), Path(argv[2])
    quick = "--quick" in argv[3:]
    with tempfile.TemporaryDirectory(prefix=f"axon-bench-{name}-") as tmp:
        t0 = time.perf_counter()
        result = run_case(name, size, quick, Path(tmp))
        result["wall_s"] = time.perf_counter() - t0
    out.write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
