"""What live subscriptions cost the logging path.

    PYTHONPATH=. .venv/bin/python benchmarks/subscription_cost.py [--events N] [--rounds R] [--cases a,b,...]

`await log_event(...)` with full arguments (no export folder, no rotation within
the run), for each case:

- ``none``: nobody subscribes
- ``batches``: one subscriber, ``batches=True``, a thread reading the DataFrames
- ``events``: one subscriber reading `AuditEvent`s (the consumer builds one object per event)
- ``no_match``: one subscriber whose filter matches nothing (delivery and filtering only)

Per event: CPU time of the logging thread (`time.thread_time`: the delivery and
consumer threads' work is not counted) and wall time of the logging loop (it
is: they share the GIL). Rounds are interleaved, each case first in turn;
medians are printed, with each case's ratio to ``none``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import threading

from axon_audit import AuditLogger
from benchmarks._timing import LOG_EVENT_ARGS, log_event_loop

ARGS = LOG_EVENT_ARGS
CASES = ("none", "batches", "events", "no_match")


def run(case: str, n: int) -> tuple[float, float]:
    audit = AuditLogger(max_events=n + 1)
    sub = None
    got = [0]
    reader = None
    if case != "none":
        filters = {"user_id": "nobody"} if case == "no_match" else {}
        sub = audit.subscribe(batches=case == "batches", **filters)

        def read() -> None:
            assert sub is not None
            if case == "batches":
                got[0] = sum(df.height for df in sub)
            else:
                got[0] = sum(1 for _ in sub)

        reader = threading.Thread(target=read)
        reader.start()
    gc.collect()
    cpu, wall = asyncio.run(log_event_loop(audit, n))
    audit.close()
    if reader is not None and sub is not None:
        reader.join()
        expected = 0 if case == "no_match" else n
        assert got[0] == expected and sub.dropped == 0, (case, got[0], sub.dropped)
    return cpu / n * 1e6, wall / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cases", default=",".join(CASES))
    a = ap.parse_args()
    cases = a.cases.split(",")
    res: dict[str, list[tuple[float, float]]] = {c: [] for c in cases}
    for r in range(a.rounds):
        for c in cases[r % len(cases):] + cases[: r % len(cases)]:  # each case goes first in turn
            res[c].append(run(c, a.events))
    med = {c: (statistics.median(x[0] for x in res[c]), statistics.median(x[1] for x in res[c])) for c in cases}
    base = med.get("none")
    print(f"{'case':10} {'cpu us/event':>13} {'wall us/event':>14} {'cpu ratio':>10} {'wall ratio':>11}"
          f"   (median of {a.rounds}; {a.events} events)")
    for c in cases:
        cpu, wall = med[c]
        ratios = f"{cpu / base[0]:10.3f} {wall / base[1]:11.3f}" if base else f"{'':10} {'':11}"
        spread = "/".join(f"{x[0]:.2f}" for x in res[c])
        print(f"{c:10} {cpu:13.3f} {wall:14.3f} {ratios}   cpu runs: {spread}")


if __name__ == "__main__":
    main()
