"""The export pipeline end to end, on the real path: rotation with integrity,
the Parquet it writes, `verify` over it, and sustained logging with rotation.

    .venv/bin/python benchmarks/export_pipeline.py rotation [--events N] [--runs R]
    .venv/bin/python benchmarks/export_pipeline.py sustained [--events N] [--every K]

``rotation``: one export of N workload events (default 1 M) through the export
target (`write.targets.FolderTarget.append`: leaf hashes, the Merkle tree, JSON
and Parquet written side by side and hashed as written, the manifest commit),
against polars' own ``write_ndjson`` + ``write_parquet`` of the same frame in
the same process; then the bytes per event of the Parquet parts it wrote (the
real files, every column), and `verify` of a folder of 10 such exports of N/10.
Also runs under an older checkout (``PYTHONPATH=<old tree>``): it only uses
APIs both have, so the two runs pair up (A/B).

``sustained``: N ``await log_event`` calls (default 5 M, full arguments) into a
logger rotating every K (default 100 K) events to a folder, against the same
logger without export; events/s end to end (close included), the p99.99 and
max latency of a call, and the peak export backlog (sampled every 10 K events).

Medians of R runs (after a warm-up); the machine is shared, so compare rows of
one run, not runs across days.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl

import axon_audit
from axon_audit.model.schema import normalize_batch
from axon_audit.workload import generate_events
from axon_audit.write.targets import FolderTarget


def _median(fn, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def rotation(n: int, runs: int) -> None:
    df = normalize_batch(generate_events(n, seed=0))
    base = Path(tempfile.mkdtemp(prefix="axon-bench-"))
    try:
        def ours() -> None:
            folder = Path(tempfile.mkdtemp(dir=base))
            FolderTarget(folder, None).append(df)
            shutil.rmtree(folder)

        def polars_only() -> None:
            folder = Path(tempfile.mkdtemp(dir=base))
            df.write_ndjson(folder / "events.ndjson")
            df.write_parquet(folder / "events.parquet", compression="zstd", compression_level=1)
            shutil.rmtree(folder)

        t_ours = _median(ours, runs)
        t_polars = _median(polars_only, runs)
        print(f"{n:,} workload events, median of {runs} runs")
        print(f"  rotation with integrity (JSON + Parquet + log + manifest) {t_ours:7.3f} s  "
              f"{n / t_ours / 1e6:5.2f} M events/s")
        if hasattr(axon_audit, "prove"):  # the export log: its Parquet lane can be timed alone
            t_lane = _median(lambda: _parquet_lane(df, Path(tempfile.mkdtemp(dir=base))), runs)
            print(f"  its Parquet lane (leaves + tree + parts hashed as written + manifest) {t_lane:7.3f} s  "
                  f"{n / t_lane / 1e6:5.2f} M events/s")
        print(f"  polars write_ndjson + write_parquet (no integrity)      {t_polars:7.3f} s  "
              f"{n / t_polars / 1e6:5.2f} M events/s  (ratio ours/polars time {t_ours / t_polars:.2f})")

        folder = base / "sealed"
        target = FolderTarget(folder, None)
        tenth = max(1, n // 10)
        for start in range(0, n, tenth):
            target.append(df.slice(start, tenth))
        parts = list((folder / "parquet").rglob("*.parquet"))
        size = sum(p.stat().st_size for p in parts)
        print(f"  Parquet as written: {size / n:.1f} B/event ({len(parts)} parts, {size / 1e6:.1f} MB, "
              f"every column they carry)")
        t_verify = _median(lambda: axon_audit.verify(folder), runs)
        result = axon_audit.verify(folder)
        assert result.ok, result.problems[:3]
        print(f"  verify of the folder ({result.events_checked:,} events checked, {result.files_checked} files) "
              f"{t_verify:7.3f} s  {result.events_checked / t_verify / 1e6:5.2f} M events/s")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _parquet_lane(df: pl.DataFrame, folder: Path) -> None:
    """What a rotation does besides the JSON document, with the same functions
    (`write.targets.FolderTarget.export` runs the JSON document beside it)."""
    from axon_audit.integrity import manifest
    from axon_audit.integrity.leaf import leaf_hashes
    from axon_audit.integrity.merkle import CompactRange
    from axon_audit.io.parquet import plan_parquet, write_parquet_planned

    df = df.sort("timestamp", maintain_order=True)
    with manifest.folder_lock(folder), ThreadPoolExecutor(1) as lane:
        leaves = lane.submit(leaf_hashes, df)  # on a lane beside the parts, as the rotation hashes them
        tree = CompactRange()
        plan = plan_parquet(df, folder / "parquet")
        digests: list[tuple[str, int]] = []
        write_parquet_planned(df, plan, digests)
        tree.extend(leaves.result())
        entries = [manifest.file_entry(p.relative_to(folder).as_posix(), "parquet", df.slice(a, k), a, d)
                   for (p, a, k), d in zip(plan, digests, strict=True)]
        manifest.append_entries(folder, {"entries": []}, entries, None, "2026-01-01T00:00:00.000000Z", tree)
    shutil.rmtree(folder)


async def _log(audit: axon_audit.AuditLogger, n: int, lat: np.ndarray, backlog: list[int]) -> None:
    ops = ("store", "recall", "recall", "forget")
    now = time.perf_counter_ns
    for i in range(n):
        t0 = now()
        await audit.log_event(ops[i & 3], user_id=f"user_{i % 500}", session_id=f"s{i % 5000}",
                              entry_ids=[f"e{i}"], metadata={"importance": 0.5, "n": i % 97},
                              status="SUCCESS", error_message=None, duration_ms=1.5)
        lat[i] = now() - t0
        if i % 10_000 == 0:
            backlog.append(audit.get_stats()["pending_export_events"])


def sustained(n: int, every: int) -> None:
    base = Path(tempfile.mkdtemp(prefix="axon-bench-"))
    try:
        rows = []
        for label, path in (("without export", None), ("with export", base / "export")):
            audit = axon_audit.AuditLogger(max_events=every, auto_export_path=path,
                                           enable_rotation=path is not None)
            lat = np.zeros(n, np.int64)
            backlog: list[int] = []
            t0 = time.perf_counter()
            asyncio.run(_log(audit, n, lat, backlog))
            audit.close()
            s = time.perf_counter() - t0
            rows.append((label, n / s, np.percentile(lat, 99.99) / 1e6, lat.max() / 1e6, max(backlog, default=0)))
            if path is not None:
                result = axon_audit.verify(path)
                assert result.ok and result.events_checked == n, (result.events_checked, result.problems[:3])
        print(f"{n:,} await log_event, rotation every {every:,}")
        for label, rate, p9999, mx, peak in rows:
            print(f"  {label:15s} {rate / 1e3:7.1f} K events/s  p99.99 {p9999:6.2f} ms  max {mx:7.1f} ms  "
                  f"peak backlog {peak:,}")
        print(f"  ratio with/without export: {rows[1][1] / rows[0][1]:.2f}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("rotation", "sustained"))
    parser.add_argument("--events", type=int)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--every", type=int, default=100_000)
    args = parser.parse_args()
    pl.Config.set_tbl_rows(5)
    if args.what == "rotation":
        rotation(args.events or 1_000_000, args.runs)
    else:
        sustained(args.events or 5_000_000, args.every)


if __name__ == "__main__":
    main()
