"""Leaves per second of the Merkle log's core over workload events: the
vectorized leaf hashes (`axon_audit.integrity.leaf.leaf_hashes`), the tree
root over them (`merkle.root`), the compact range fed in rotation-sized
pieces (`CompactRange.extend`), and hashing + root together.

    .venv/bin/python benchmarks/merkle_speed.py [--events N] [--runs R]

Prints the median of R runs (default 3) over N events (default 1 000 000);
generating the events is not timed. The machine is shared: compare the rows of
one run, not runs across days.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from axon_audit.integrity.leaf import canonical_events, leaf_hashes
from axon_audit.integrity.merkle import CompactRange, root
from axon_audit.model.schema import normalize_batch
from axon_audit.workload import generate_events


def median_s(fn: Callable[[], Any], runs: int) -> float:
    fn()  # warm-up: polars' thread pool
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    n = args.events
    df = normalize_batch(generate_events(n, seed=0))
    hashes = leaf_hashes(df)

    def compact() -> bytes:
        log = CompactRange()
        for start in range(0, n, 100_000):  # one extend per rotation of 100 K events
            log.extend(hashes[start:start + 100_000])
        return log.root()

    rows = [
        ("canonical texts (polars)", lambda: canonical_events(df)),
        ("leaf_hashes (texts + SHA-256)", lambda: leaf_hashes(df)),
        ("root over leaf hashes", lambda: root(hashes)),
        ("CompactRange.extend, 100 K a piece", compact),
        ("leaf_hashes + root", lambda: root(leaf_hashes(df))),
    ]
    print(f"{n:,} workload events, median of {args.runs} runs")
    for name, fn in rows:
        s = median_s(fn, args.runs)
        print(f"  {name:38s} {s:7.3f} s  {n / s / 1e6:6.2f} M leaves/s")


if __name__ == "__main__":
    main()
