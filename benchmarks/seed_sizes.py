"""query_events, get_statistics and get_user_statistics at every size, first and warm,
against the seed's reference design, in one run (issue 14).

    PYTHONPATH=. .venv/bin/python benchmarks/seed_sizes.py [--sizes 10,100,...] [--log-sizes 10,100,1000]
        [--out benchmarks/results/seed_sizes.md]

The calls, as the seed's spec shows them (`/work/shared/seed`, "Querying the audit
trail" and "Statistics"), on the benchmark's workload (`benchmarks.case`: same seed,
same events; the top user, the last hour):

- ``stats``: `get_statistics()`;
- ``user``: `get_user_statistics(top user)`;
- ``query``: `query_events(user_id=top user, limit=100)`;
- ``filtered``: `query_events(user_id=top user, operation="RECALL", start_time=last hour)`.

For each size and call:

- ours ``first``: the call on a fresh `AuditLogger` right after the events went in
  (`log_batch` from Arrow, then the background sealer waited for) and a gc.collect();
  median over 7 fresh loggers (3 at 1 M), after one untimed logger (as the seed's
  cold call comes after one untimed call); ``warm``: median of repeated calls on the
  unchanged logger (loops of ~5 ms);
- the seed (`baselines.seed_pydantic.SeedLogger`: one pydantic object per event,
  every call iterates the list, nothing kept between calls): ``cold``, one call right
  after a gc.collect() (median of several), and ``warm``, timed as ours.

Ratios are seed / ours (first vs cold, warm vs warm): above 1×, ours is faster.

Then the same first calls on loggers fed one event at a time by `log()` (as an
application logs: the rows are still buffered, up to 1 024 answered from the rows), against
a seed fed by its `log()` with the same calls.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from axon_audit import AuditLogger
from axon_audit.store.hot import wait_sealed
from axon_audit.workload import generate_events, iter_log_calls
from benchmarks._timing import Plan, measure
from benchmarks.baselines.seed_pydantic import SeedLogger
from benchmarks.case import DAYS, QUERY_OPERATION, SEED, START, query_params
from benchmarks.stats_sizes import _per_call, _ratio, _t

SIZES = (10, 100, 1_000, 10_000, 100_000, 1_000_000)
LOG_SIZES = (10, 100, 1_000)
WARM = Plan(warmup=1, min_runs=5, max_runs=50, budget_s=0.5)
SEED_PLAN = Plan(warmup=1, min_runs=3, max_runs=15, budget_s=1.5)
QUERY_LIMIT = 100
CALLS = ("stats", "user", "query", "filtered")
LABELS = {"stats": "get_statistics()", "user": "get_user_statistics(top)",
          "query": f"query_events(user_id=top, limit={QUERY_LIMIT})",
          "filtered": f'query_events(user_id=top, operation="{QUERY_OPERATION}", start_time=last hour)'}


def ours(kind: str, p: dict[str, Any]) -> Callable[[AuditLogger], Any]:
    top, start = p["top_user"], p["start"]
    return {
        "stats": lambda a: a.get_statistics(),
        "user": lambda a: a.get_user_statistics(top),
        "query": lambda a: a.query_events(user_id=top, limit=QUERY_LIMIT),
        "filtered": lambda a: a.query_events(user_id=top, operation=QUERY_OPERATION, start_time=start),
    }[kind]


def seeds(kind: str, p: dict[str, Any]) -> Callable[[SeedLogger], Any]:
    top, start = p["top_user"], p["start"]
    return {
        "stats": lambda s: s.statistics(),
        "user": lambda s: s.user_statistics(top),
        "query": lambda s: s.query_user(top, QUERY_LIMIT),
        "filtered": lambda s: s.query(top, QUERY_OPERATION, start),
    }[kind]


def _first(make: Callable[[], AuditLogger], call: Callable[[AuditLogger], Any], loggers: int) -> float:
    """Median seconds of `call` on `loggers` fresh loggers, each timed right after a gc.collect()
    (after one untimed logger, as the seed's cold figure comes after one untimed call)."""
    warm = make()
    call(warm)
    warm.close()
    times = []
    for _ in range(loggers):
        audit = make()
        wait_sealed()
        gc.collect()
        t0 = time.perf_counter()
        call(audit)
        times.append(time.perf_counter() - t0)
        audit.close()
        del audit
    return statistics.median(times)


def _seed_times(seed: SeedLogger, call: Callable[[SeedLogger], Any]) -> tuple[float, float]:
    cold = measure(lambda: call(seed), SEED_PLAN)["median"]  # one call right after a gc.collect()
    return cold, _per_call(lambda: call(seed), SEED_PLAN)


def size_row(n: int) -> dict[str, Any]:
    df = generate_events(n, seed=SEED, start=START, days=DAYS)
    p = query_params(df)
    table = df.to_arrow()
    loggers = 7 if n <= 100_000 else 3

    def make() -> AuditLogger:
        audit = AuditLogger(max_events=1 << 40)
        audit.log_batch(table)
        return audit

    row: dict[str, Any] = {"n": n}
    for kind in CALLS:
        row[f"first_{kind}"] = _first(make, ours(kind, p), loggers)
    audit = make()
    wait_sealed()
    for kind in CALLS:
        call = ours(kind, p)
        row[f"warm_{kind}"] = _per_call(lambda: call(audit), WARM)  # noqa: B023 - called in this iteration
    answers = {kind: ours(kind, p)(audit) for kind in CALLS}
    audit.close()
    seed = SeedLogger(Path(tempfile.mkdtemp(prefix="seed-sizes-")))
    seed.ingest(seed.prepare(df))
    for kind in CALLS:
        row[f"seed_cold_{kind}"], row[f"seed_warm_{kind}"] = _seed_times(seed, seeds(kind, p))
    _check(answers, {kind: seeds(kind, p)(seed) for kind in CALLS})
    seed.close()
    gc.collect()
    return row


def logged_row(n: int) -> dict[str, Any]:
    """First calls on loggers fed by `log()`, vs a seed fed by its `log()`."""
    df = generate_events(n, seed=SEED, start=START, days=DAYS)
    calls = list(iter_log_calls(df))
    seed = SeedLogger(Path(tempfile.mkdtemp(prefix="seed-sizes-")))
    for c in calls:
        seed.log(c)
    # log() stamps the time itself: the last hour is that of the events as logged.
    last = max(e.timestamp for e in seed.events)
    p = {"top_user": query_params(df)["top_user"], "start": last - timedelta(hours=1)}

    def make() -> AuditLogger:
        audit = AuditLogger(max_events=1 << 40)
        for c in calls:
            audit.log(**c)
        return audit

    row: dict[str, Any] = {"n": n}
    for kind in CALLS:
        row[f"first_{kind}"] = _first(make, ours(kind, p), 7)
        row[f"seed_cold_{kind}"] = measure(lambda: seeds(kind, p)(seed), SEED_PLAN)["median"]  # noqa: B023
    seed.close()
    return row


def _check(got: dict[str, Any], want: dict[str, Any]) -> None:
    """The answers compared are the same questions: same counts on both sides."""
    assert got["stats"]["total_events"] == want["stats"]["total_events"], (got["stats"], want["stats"])
    assert got["user"]["total_operations"] == want["user"]["total_operations"]
    assert len(got["query"]) == len(want["query"]) and len(got["filtered"]) == len(want["filtered"])


def report(rows: list[dict[str, Any]], logged: list[dict[str, Any]]) -> str:
    lines = [
        "# query_events and statistics at every size: axon_audit vs the seed's reference design",
        "",
        f"`{' '.join(['PYTHONPATH=. .venv/bin/python benchmarks/seed_sizes.py', *sys.argv[1:]])}`",
        "",
        "Ours first: the call on a fresh logger after `log_batch` (from Arrow), the background sealer and a "
        "gc.collect() (median of 7 loggers, 3 at 1 M); warm: median of repeated calls (loops of ~5 ms). "
        "Seed: cold (one call right after a gc.collect(), median) / warm (as ours). Ratio: seed / ours, "
        "first vs cold and warm vs warm; above 1× ours is faster.",
    ]
    for kind in CALLS:
        lines += ["", f"### {LABELS[kind]}", "",
                  "| events | ours first / warm | seed cold / warm | ratio first / warm |", "|---:|---:|---:|---:|"]
        for r in rows:
            lines.append(f"| {r['n']:,} | {_t(r[f'first_{kind}'])} / {_t(r[f'warm_{kind}'])} "
                         f"| {_t(r[f'seed_cold_{kind}'])} / {_t(r[f'seed_warm_{kind}'])} "
                         f"| {_ratio(r[f'seed_cold_{kind}'], r[f'first_{kind}'])} / "
                         f"{_ratio(r[f'seed_warm_{kind}'], r[f'warm_{kind}'])} |")
    if logged:
        lines += ["", "### Events logged one by one with `log()`", "",
                  "First call on a fresh logger fed by `log()` (rows still buffered: answered from them, "
                  "up to 1 024 events), after a gc.collect() (median of 7 loggers), vs a seed fed by its `log()`, "
                  "cold. Cells: ours / seed (ratio).", "",
                  "| events | " + " | ".join(LABELS[k] for k in CALLS) + " |", "|---:|" + "---:|" * len(CALLS)]
        for r in logged:
            cells = [f"{_t(r[f'first_{k}'])} / {_t(r[f'seed_cold_{k}'])} "
                     f"({_ratio(r[f'seed_cold_{k}'], r[f'first_{k}'])})" for k in CALLS]
            lines.append(f"| {r['n']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)))
    ap.add_argument("--log-sizes", default=",".join(map(str, LOG_SIZES)))
    ap.add_argument("--out", default="benchmarks/results/seed_sizes.md")
    args = ap.parse_args()
    rows, logged = [], []
    for n in (int(s) for s in args.sizes.split(",") if s):
        rows.append(size_row(n))
        print(rows[-1], file=sys.stderr, flush=True)
    for n in (int(s) for s in args.log_sizes.split(",") if s):
        logged.append(logged_row(n))
        print(logged[-1], file=sys.stderr, flush=True)
    text = report(rows, logged)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
