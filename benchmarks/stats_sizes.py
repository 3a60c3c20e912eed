"""Statistics at every size, against the seed's reference design, in one run.

    PYTHONPATH=. .venv/bin/python benchmarks/stats_sizes.py [--sizes 10,100,...] [--no-10m]
        [--log-prefill N] [--log-events N] [--log-runs R] [--no-log] [--out benchmarks/results/stats_sizes.md]

For each size, the benchmark's workload (`benchmarks.case`: same seed, same
events) goes into a fresh `AuditLogger` with `log_batch` (from Arrow), the
background sealer is waited for, and then:

- ``first``: the first `get_statistics()` / `get_user_statistics(top user)` of
  that logger (median over several fresh loggers);
- ``warm``: the median of repeated calls on the unchanged logger (timed in loops
  of ~5 ms, so microsecond calls are not each timed right after a gc.collect());
- the seed's reference design (`baselines.seed_pydantic.SeedLogger`: one pydantic
  object per event, statistics by iterating the list; it keeps nothing between
  calls): ``cold``, one call right after a gc.collect() (as our first call is
  timed), and ``warm``, timed as ours. Not run at 10 M (~10 GB of objects).

Ratios are seed / ours (first vs cold, warm vs warm): above 1, ours is faster.

Also the first calls on loggers fed one event at a time by `log()` (10 and 100
events, still buffered), against the seed's cold call.

Then the cost of the sealer's statistics work to the logging path: `await
log_event` (full arguments) into a logger pre-filled with `--log-prefill` events
(near 10 M by default, where merging is largest), with the sealer building the
statistics summaries (``with``) and without (``without``: no `on_seal`, the seal
builds only the lookup index, as before), rounds interleaved. Per event: CPU time
of the logging thread, process CPU time (the sealer thread included) and wall.

Memory of the summaries: per-user summaries (`UserSummary.nbytes`) and the running
statistics (duration runs, user and session hashes), real numpy/Arrow bytes per event.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from axon_audit import AuditLogger
from axon_audit.store import hot
from axon_audit.store.hot import wait_sealed
from axon_audit.workload import generate_events, iter_log_calls
from benchmarks._timing import Plan, log_event_loop, measure
from benchmarks.baselines.seed_pydantic import SeedLogger
from benchmarks.case import DAYS, SEED, START, query_params

SIZES = (10, 100, 1_000, 10_000, 100_000, 1_000_000)
BIG = 10_000_000
WARM = Plan(warmup=1, min_runs=5, max_runs=50, budget_s=0.5)
SEED_PLAN = Plan(warmup=1, min_runs=3, max_runs=30, budget_s=2.0)


def _fresh(table: pa.Table) -> AuditLogger:
    audit = AuditLogger(max_events=1 << 40)
    audit.log_batch(table)
    wait_sealed()
    gc.collect()
    return audit


def _first(table: pa.Table, call: Any, loggers: int) -> float:
    """Median seconds of the first `call(audit)` over `loggers` fresh loggers."""
    times = []
    for _ in range(loggers):
        audit = _fresh(table)
        t0 = time.perf_counter()
        call(audit)
        times.append(time.perf_counter() - t0)
        del audit
    return statistics.median(times)


def _per_call(fn: Any, plan: Plan) -> float:
    """Median seconds per call of `fn`, timing loops of K calls (K: ~5 ms per loop), so a
    call of a few microseconds is not timed alone right after `measure`'s gc.collect()."""
    fn()  # the first call (summaries built): not the one calibrated on
    t0 = time.perf_counter()
    fn()
    k = max(1, min(10_000, int(5e-3 / max(time.perf_counter() - t0, 1e-7))))

    def loop() -> None:
        for _ in range(k):  # the same call repeated: the timed unit
            fn()

    return float(measure(loop, plan, per=k)["median"])


def _summary_bytes(audit: AuditLogger) -> tuple[float, float]:
    """B/event of the per-user summaries and of the running statistics."""
    chunks = audit._hot.store.chunks
    n = sum(c.height for c in chunks) or 1
    users = sum(c.users.nbytes for c in chunks)
    agg = audit._hot.stats_cache._agg
    running = sum(r.nbytes for r in agg.runs) + agg.users.nbytes + agg.sessions.nbytes + agg.counts.nbytes
    return users / n, running / n


def size_row(n: int, with_seed: bool) -> dict[str, Any]:
    df = generate_events(n, seed=SEED, start=START, days=DAYS)
    top = query_params(df)["top_user"]
    table = df.to_arrow()
    loggers = 7 if n <= 100_000 else 3 if n <= 1_000_000 else 1
    row: dict[str, Any] = {"n": n}
    row["first_stats"] = _first(table, lambda a: a.get_statistics(), loggers)
    row["first_user"] = _first(table, lambda a: a.get_user_statistics(top), loggers)
    audit = _fresh(table)
    audit.get_statistics()
    row["warm_stats"] = _per_call(audit.get_statistics, WARM)
    row["warm_user"] = _per_call(lambda: audit.get_user_statistics(top), WARM)
    if n >= 100_000:
        row["user_bpe"], row["running_bpe"] = _summary_bytes(audit)
    audit.close()
    if with_seed:
        seed = SeedLogger(Path(tempfile.mkdtemp(prefix="stats-seed-")))
        seed.ingest(seed.prepare(df))
        del df
        # Cold: one call right after a gc.collect(), as ours first; warm: in loops, as ours warm.
        row["seed_stats_cold"] = measure(seed.statistics, SEED_PLAN)["median"]
        row["seed_user_cold"] = measure(lambda: seed.user_statistics(top), SEED_PLAN)["median"]
        row["seed_stats"] = _per_call(seed.statistics, SEED_PLAN)
        row["seed_user"] = _per_call(lambda: seed.user_statistics(top), SEED_PLAN)
        seed.close()
    gc.collect()
    return row


def logged_row(n: int) -> dict[str, Any]:
    """The first calls on a logger fed by `log()` (rows still buffered, none sealed), vs the seed cold."""
    df = generate_events(n, seed=SEED, start=START, days=DAYS)
    top = query_params(df)["top_user"]
    calls = list(iter_log_calls(df))
    out: dict[str, Any] = {"n": n}
    for kind, call in (("stats", lambda a: a.get_statistics()), ("user", lambda a: a.get_user_statistics(top))):
        times = []
        for _ in range(7):
            audit = AuditLogger(max_events=1 << 40)
            for c in calls:
                audit.log(**c)
            gc.collect()
            t0 = time.perf_counter()
            call(audit)
            times.append(time.perf_counter() - t0)
        out[f"first_{kind}"] = statistics.median(times)
    seed = SeedLogger(Path(tempfile.mkdtemp(prefix="stats-seed-")))
    for c in calls:
        seed.log(c)
    out["seed_stats_cold"] = measure(seed.statistics, SEED_PLAN)["median"]
    out["seed_user_cold"] = measure(lambda: seed.user_statistics(top), SEED_PLAN)["median"]
    return out


# ---------------------------------------------------------------------- log_event A/B


def _seal_index_only(self: hot.Chunk) -> None:
    """`Chunk.seal` as it was before the statistics summaries: the lookup index only."""
    self.derived("index", hot.ChunkIndex)
    self.derived("ids_timed", hot._ids_timed)


def log_round(prefill: pa.Table | None, events: int, summaries: bool) -> tuple[float, float, float]:
    """(thread CPU, process CPU, wall) µs per `await log_event` for one variant."""
    real_seal = hot.Chunk.seal
    if not summaries:
        hot.Chunk.seal = _seal_index_only  # type: ignore[method-assign]
    try:
        audit = AuditLogger(max_events=1 << 40)
        if not summaries:
            audit._hot.store.on_seal = None
        if prefill is not None:
            audit.log_batch(prefill)
        wait_sealed()
        gc.collect()
        p0 = time.process_time()
        cpu, wall = asyncio.run(log_event_loop(audit, events))
        wait_sealed()  # the sealer's work for these events is part of their cost
        proc = time.process_time() - p0
        return cpu / events * 1e6, proc / events * 1e6, wall / events * 1e6
    finally:
        hot.Chunk.seal = real_seal  # type: ignore[method-assign]


def log_ab(prefill_n: int, events: int, rounds: int) -> dict[str, list[tuple[float, float, float]]]:
    prefill = generate_events(prefill_n, seed=SEED, start=START, days=DAYS).to_arrow() if prefill_n else None
    out: dict[str, list[tuple[float, float, float]]] = {"with": [], "without": []}
    for r in range(rounds):  # interleaved, each variant first in turn
        order = ("with", "without") if r % 2 == 0 else ("without", "with")
        for variant in order:
            out[variant].append(log_round(prefill, events, variant == "with"))
            print(f"  log_event {variant}: {out[variant][-1]}", file=sys.stderr, flush=True)
    return out


# ---------------------------------------------------------------------- report


def _t(s: float | None) -> str:
    if s is None:
        return "—"
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    return f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s"


def _ratio(seed: float | None, ours: float) -> str:
    return "—" if seed is None else f"{seed / ours:.1f}×"


def report(rows: list[dict[str, Any]], logged: list[dict[str, Any]], ab: dict[str, Any] | None,
           args: argparse.Namespace) -> str:
    lines = [
        "# Statistics at every size: axon_audit vs the seed's reference design",
        "",
        f"`{' '.join(['PYTHONPATH=. .venv/bin/python benchmarks/stats_sizes.py', *sys.argv[1:]])}`",
        "",
        "First: the first call on a fresh logger after `log_batch`, the sealer and a gc.collect() (median of 7 "
        "loggers up to 100 K, 3 at 1 M, 1 at 10 M); warm: median of repeated calls (loops of ~5 ms). Seed: "
        "cold (one call right after a gc.collect(), median) / warm (as ours). Ratios: seed / ours, first vs "
        "cold and warm vs warm; above 1× ours is faster.",
        "",
        "| events | get_statistics first / warm | seed cold / warm | ratio | get_user_statistics (top user) "
        "first / warm | seed cold / warm | ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cells = [f"{r['n']:,}"]
        for kind in ("stats", "user"):
            cells += [f"{_t(r[f'first_{kind}'])} / {_t(r[f'warm_{kind}'])}",
                      f"{_t(r.get(f'seed_{kind}_cold'))} / {_t(r.get(f'seed_{kind}'))}",
                      f"{_ratio(r.get(f'seed_{kind}_cold'), r[f'first_{kind}'])} / "
                      f"{_ratio(r.get(f'seed_{kind}'), r[f'warm_{kind}'])}"]
        lines.append("| " + " | ".join(cells) + " |")
    if logged:
        lines += ["", "Events logged one by one with `log()` (still buffered: no chunk sealed), first call after a "
                  "gc.collect() (median of 7 loggers) vs the seed cold:", "",
                  "| events | get_statistics first | seed cold | ratio | get_user_statistics first | seed cold "
                  "| ratio |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['n']:,} | {_t(r['first_stats'])} | {_t(r['seed_stats_cold'])} "
                  f"| {_ratio(r['seed_stats_cold'], r['first_stats'])} | {_t(r['first_user'])} "
                  f"| {_t(r['seed_user_cold'])} | {_ratio(r['seed_user_cold'], r['first_user'])} |" for r in logged]
    mem = [r for r in rows if "user_bpe" in r]
    if mem:
        lines += ["", "Memory of the summaries (real numpy/Arrow bytes, per event held):", "",
                  "| events | per-user summaries | running statistics (duration runs, user/session hashes) |",
                  "|---:|---:|---:|"]
        lines += [f"| {r['n']:,} | {r['user_bpe']:.2f} B | {r['running_bpe']:.2f} B |" for r in mem]
    if ab is not None:
        lines += ["", f"`await log_event` (full arguments), {args.log_events:,} events into a logger holding "
                  f"{args.log_prefill:,}; {args.log_runs} interleaved rounds, medians (µs/event):", "",
                  "| sealer | logging thread CPU | process CPU (sealer included) | wall |", "|---|---:|---:|---:|"]
        for variant, label in (("without", "index only (before)"), ("with", "index + statistics summaries")):
            runs = ab[variant]
            med = [statistics.median(x[i] for x in runs) for i in range(3)]
            lines.append(f"| {label} | {med[0]:.2f} | {med[1]:.2f} | {med[2]:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)))
    ap.add_argument("--no-10m", action="store_true", help="skip the 10 M row (first call and top user)")
    ap.add_argument("--no-seed-above", type=int, default=1_000_000, help="no seed baseline above this size")
    ap.add_argument("--log-prefill", type=int, default=9_000_000)
    ap.add_argument("--log-events", type=int, default=1_000_000)
    ap.add_argument("--log-runs", type=int, default=3)
    ap.add_argument("--no-log", action="store_true", help="skip the log_event A/B")
    ap.add_argument("--out", default="benchmarks/results/stats_sizes.md")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if not args.no_10m:
        sizes.append(BIG)
    rows = []
    for n in sizes:
        rows.append(size_row(n, with_seed=n <= args.no_seed_above))
        print({k: v for k, v in rows[-1].items()}, file=sys.stderr, flush=True)
    logged = [logged_row(n) for n in (10, 100)]
    ab = None if args.no_log else log_ab(args.log_prefill, args.log_events, args.log_runs)
    text = report(rows, logged, ab, args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
