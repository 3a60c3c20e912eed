"""The cost of one `await log_event` (full arguments, no export), against another
checkout's code, in one run: CPU per event, the collector's share, and the tail.

    .venv/bin/python benchmarks/log_event_cost.py [--baseline /work/main] [--events 5000000] [--runs 3]

Every run is a fresh subprocess with PYTHONPATH set to the checkout under test
(this one, or `--baseline`), alternating between the two so both see the same
machine. One run logs `--events` events into a fresh logger without export
(`max_events` above the count, so no rotation), the seed's full-argument call
(`benchmarks._timing.LOG_EVENT_ARGS`), and reports:

- CPU seconds of the logging thread per event (`time.thread_time`), and wall;
- the time the cyclic garbage collector spent, per generation (`gc.callbacks`);
- p99.99 and max of one call (each call timed with `perf_counter_ns`, which adds
  ~0.1 µs per call to the CPU figure; the CPU figure comes from a separate, untimed
  pass of the same length in the same process).

The machine is shared: compare rows of one run; medians over `--runs`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent


def child(n: int) -> dict[str, Any]:
    from axon_audit import AuditLogger
    from benchmarks._timing import LOG_EVENT_ARGS, log_event_loop

    spent = {0: 0.0, 1: 0.0, 2: 0.0}
    runs = {0: 0, 1: 0, 2: 0}
    started = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            spent[info["generation"]] += time.perf_counter() - started[0]
            runs[info["generation"]] += 1

    async def timed(audit: Any) -> list[int]:
        log_event, args, clock = audit.log_event, LOG_EVENT_ARGS, time.perf_counter_ns
        took = [0] * n
        for i in range(n):  # per-call timing: the tail is the figure here
            t0 = clock()
            await log_event("store", **args)
            took[i] = clock() - t0
        return took

    gc.callbacks.append(on_gc)
    cpu, wall = asyncio.run(log_event_loop(AuditLogger(max_events=n + 1), n))
    gc.callbacks.remove(on_gc)
    took = sorted(asyncio.run(timed(AuditLogger(max_events=n + 1))))
    return {"cpu_us": cpu / n * 1e6, "wall_us": wall / n * 1e6,
            "gc_us": {g: spent[g] / n * 1e6 for g in spent}, "gc_runs": runs,
            "p9999_ms": took[int(n * 0.9999)] / 1e6, "max_ms": took[-1] / 1e6,
            "over_1ms": sum(1 for t in took if t > 1_000_000)}


def run_child(tree: Path, n: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(n)],
                         env=env, cwd=tree, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(out.stdout.splitlines()[-1])
    return result


def _line(label: str, rs: list[dict[str, Any]]) -> str:
    def med(f: Any) -> float:
        return statistics.median(f(r) for r in rs)

    gc_total = med(lambda r: sum(r["gc_us"].values()))
    return (f"  {label:14s} cpu {med(lambda r: r['cpu_us']):5.2f} µs/event  wall {med(lambda r: r['wall_us']):5.2f}"
            f"  gc {gc_total:4.2f} µs (gen2 {med(lambda r: r['gc_us']['2']):4.2f}, "
            f"{med(lambda r: r['gc_runs']['2']):.0f} full collections)"
            f"  p99.99 {med(lambda r: r['p9999_ms']):5.2f} ms  max {med(lambda r: r['max_ms']):6.1f} ms"
            f"  calls > 1 ms {med(lambda r: r['over_1ms']):.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", type=Path, default=None, help="another checkout (e.g. /work/main) to compare")
    ap.add_argument("--events", type=int, default=5_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child)))
        return
    trees = [("this checkout", HERE)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
    results: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in trees}
    for _ in range(args.runs):  # alternate, so both trees see the same load
        for label, tree in trees:
            results[label].append(run_child(tree, args.events))
    print(f"await log_event, full arguments, {args.events:,} events, no export: median of {args.runs} runs "
          f"(load average {os.getloadavg()[0]:.1f})")
    for label, _ in trees:
        print(_line(label, results[label]))
    if args.baseline:
        ours, base = (statistics.median(r["cpu_us"] for r in results[k]) for k in ("this checkout", "baseline"))
        print(f"  CPU per event, this checkout / baseline: {ours / base:.2f}")


if __name__ == "__main__":
    main()
