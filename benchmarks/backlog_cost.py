"""What a backlog bound costs the logging path.

    PYTHONPATH=. .venv/bin/python benchmarks/backlog_cost.py [--events N] [--rounds R] [--cases a,b,...]

`await log_event(...)` with full arguments, `auto_export_path` set and a rotation
every `--max-events` (default 100 000) events, for each case:

- ``unbounded``: ``max_backlog=None``
- ``default``: no ``max_backlog`` argument (whatever the logger's default is)
- ``bound``: an explicit ``max_backlog`` far above what the run reaches (never blocks)

Per event: CPU time of the logging thread (`time.thread_time`, so the export
thread's work is not counted, rotation hand-off included) and wall time of the
logging loop (`close()` not included). Rounds are interleaved (each case first
in turn), so load from other processes hits every case alike; medians are printed. To compare two checkouts,
run this alternately with PYTHONPATH pointing at each.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tempfile
from pathlib import Path
from typing import Any

from axon_audit import AuditLogger
from benchmarks._timing import LOG_EVENT_ARGS, log_event_loop

ARGS = LOG_EVENT_ARGS


def run(case: str, n: int, max_events: int) -> tuple[float, float, bool]:
    with tempfile.TemporaryDirectory() as d:
        kw: dict[str, Any] = {"max_events": max_events, "auto_export_path": Path(d)}
        if case == "unbounded":
            kw["max_backlog"] = None
        elif case == "bound":
            kw["max_backlog"] = 10**9
        audit = AuditLogger(**kw)
        gc.collect()
        cpu, wall = asyncio.run(log_event_loop(audit, n))
        guarded = audit._guarded
        audit.close()
        assert audit.get_stats()["exported_events"] == n
        return cpu / n * 1e6, wall / n * 1e6, guarded


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--max-events", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cases", default="unbounded,default,bound")
    a = ap.parse_args()
    cases = a.cases.split(",")
    res: dict[str, list[tuple[float, float, bool]]] = {c: [] for c in cases}
    for r in range(a.rounds):
        for c in cases[r % len(cases):] + cases[: r % len(cases)]:  # each case goes first in turn
            res[c].append(run(c, a.events, a.max_events))
    print(f"{'case':10} {'cpu us/event':>13} {'wall us/event':>14} {'guarded':>8}   (median of {a.rounds}; "
          f"{a.events} events, rotation every {a.max_events})")
    for c in cases:
        cpu = statistics.median(r[0] for r in res[c])
        wall = statistics.median(r[1] for r in res[c])
        spread = "/".join(f"{r[0]:.2f}" for r in res[c])
        print(f"{c:10} {cpu:13.3f} {wall:14.3f} {res[c][-1][2]!s:>8}   cpu runs: {spread}")


if __name__ == "__main__":
    main()
