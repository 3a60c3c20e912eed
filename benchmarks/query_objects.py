"""What a `query_events` answer of 10 K `AuditEvent` objects costs, made and read.

    PYTHONPATH=. .venv/bin/python benchmarks/query_objects.py [--events N] [--rounds R]

The workload, seed and backend of `benchmarks.case`'s ``query_10k`` figure (the
newest 10 K events of the top user, of N events logged from Arrow), timed
besides: `frame_to_events` on a 10 K-row frame (the objects alone), the same
query with every field of every event read once, and with `to_dict` of every
event. Each round times every figure once, in a rotating order (no figure
always runs first after the ingest), after `gc.collect()` as
`benchmarks._timing.measure` does; medians in ms are printed as JSON. To compare
two checkouts, run this file alternately with PYTHONPATH pointing at each (it
imports `benchmarks.case` and `benchmarks.ours` from there).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from axon_audit.model.schema import frame_to_events
from axon_audit.workload import generate_events
from benchmarks.case import DAYS, SEED, START, USER_LIMIT, query_params
from benchmarks.ours import Ours


def _read_all(events: list) -> list:
    fields = [(e.event_id, e.timestamp_us, e.operation, e.user_id, e.session_id, e.entry_ids, e.metadata,
               e.status, e.error_message, e.duration_ms) for e in events]  # every field once, as a reader of all
    return fields


def run(n: int, rounds: int) -> dict[str, float]:
    df = generate_events(n, seed=SEED, start=START, days=DAYS)
    params = query_params(df)
    with tempfile.TemporaryDirectory(prefix="axon-query-objects-") as tmp:
        backend = Ours(Path(tmp))
        backend.ingest(backend.prepare(df))
        del df
        frame = backend.audit.scan().head(USER_LIMIT).collect()
        query = lambda: backend.query_user(params["top_user"], USER_LIMIT)
        figures: dict[str, Callable[[], Any]] = {
            "query_10k": query,
            "frame_to_events_10k": lambda: frame_to_events(frame),
            "query_10k_read_all": lambda: _read_all(query()),
            "query_10k_to_dicts": lambda: [e.to_dict() for e in query()],
        }
        for fn in figures.values():  # warm-up, and the answers are whole
            assert len(fn()) == USER_LIMIT
        names = list(figures)
        times: dict[str, list[float]] = {k: [] for k in names}
        for r in range(rounds):
            for k in names[r % len(names):] + names[:r % len(names)]:
                gc.collect()
                t0 = time.perf_counter()
                figures[k]()
                times[k].append(time.perf_counter() - t0)
        backend.close()
    return {k: round(statistics.median(v) * 1e3, 2) for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.query_objects", description=__doc__)
    ap.add_argument("--events", type=int, default=1_000_000, help="events logged (default 1 M)")
    ap.add_argument("--rounds", type=int, default=40, help="timed runs of each figure (default 40)")
    args = ap.parse_args(argv)
    print(json.dumps(run(args.events, args.rounds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
