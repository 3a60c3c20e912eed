"""What axon_audit's events really take: the Arrow buffers of the hot store, and
the Parquet files a real rotation writes. ``python -m benchmarks.footprint
[--events N] [--path arrow|log|both]`` prints both, column by column, for events
logged with `log_batch` from Arrow and with `log()` one by one.

`arrow_buffer_bytes` is the memory figure the benchmark reports (`memory_own`);
polars' `estimated_size` (`memory_estimated`) is printed beside it only for
comparison: it counts a string's bytes but not the 16-byte view polars keeps
per string (and per list item), nor validity bitmaps of mostly-null columns.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import polars as pl
import pyarrow as pa

from axon_audit import AuditLogger
from axon_audit.store.hot import wait_sealed

#: Rotation as the demo runs it: `log_batch` pieces of this many events...
ROTATION_BATCH = 5_000
#: ...and a rotation every this many events.
ROTATION_EVERY = 100_000


def _spans(arr: pa.Array, spans: list[tuple[int, int]], dictionaries: dict[str, int], column: str) -> None:
    """Collect the (address, size) of every buffer under `arr`, children and
    string-view data buffers included (`Array.buffers()` lists them all)."""
    if isinstance(arr, pa.DictionaryArray):
        # Polars keeps a categorical's strings once (one mapping shared by every
        # chunk) but exports a dictionary with each chunk: count it once per column.
        _spans(arr.indices, spans, dictionaries, column)
        values: list[tuple[int, int]] = []
        _spans(arr.dictionary, values, {}, column)
        dictionaries[column] = max(dictionaries.get(column, 0), _union(values))
        return
    spans.extend((b.address, b.size) for b in arr.buffers() if b is not None)


def _union(spans: Iterable[tuple[int, int]]) -> int:
    """Bytes covered by the spans: chunks and slices of one frame share buffers,
    and an exported array reports its whole buffer, not just its slice."""
    total, end = 0, -1
    for start, size in sorted(spans):
        stop = start + size
        if start > end:
            total += size
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total


def arrow_buffer_bytes(frames: Iterable[pl.DataFrame]) -> int:
    """Distinct bytes of every Arrow buffer of every array of every frame,
    exported without conversion (string views stay views)."""
    tables = [f.to_arrow(compat_level=pl.CompatLevel.newest()) for f in frames]
    # `tables` stays alive until the sum is done: a freed export's addresses
    # could be reused by the next one and hide its bytes in the union.
    spans: list[tuple[int, int]] = []
    dictionaries: dict[str, int] = {}
    for table in tables:
        for name, column in zip(table.column_names, table.columns, strict=True):
            for chunk in column.chunks:
                _spans(chunk, spans, dictionaries, name)
    return _union(spans) + sum(dictionaries.values())


def rotation_run(data: pl.DataFrame | pa.Table, folder: Path, every: int = ROTATION_EVERY) -> tuple[float, int, int]:
    """Log `data` as the demo does (`log_batch` pieces with their timestamps,
    rotation every `every` events into `folder`), close (the last
    rotation, every write waited for); return (seconds, events exported, bytes
    of the Parquet files the rotations wrote, every column they carry).

    The demo logs polars pieces; Arrow pieces cost more (each is converted on
    the way in: ~1.4x the time per event at 1 M, measured 2026-12-03)."""
    t0 = time.perf_counter()
    audit = AuditLogger(max_events=every, auto_export_path=folder)
    for offset in range(0, len(data), ROTATION_BATCH):
        audit.log_batch(data.slice(offset, ROTATION_BATCH))
    audit.close()
    seconds = time.perf_counter() - t0
    exported = audit.get_stats()["exported_events"]
    size = sum(p.stat().st_size for p in (folder / "parquet").rglob("*.parquet"))
    return seconds, exported, size


def by_column(frames: list[pl.DataFrame]) -> dict[str, tuple[int, int]]:
    """(Arrow buffer bytes, polars estimated_size) of each column over `frames`."""
    return {name: (arrow_buffer_bytes([f.select(name) for f in frames]),
                   int(sum(f[name].estimated_size() for f in frames)))
            for name in frames[0].columns}


def _log_rows(audit: AuditLogger, df: pl.DataFrame) -> None:
    """`df`'s events through `log()`, one call each, as a service logs them."""
    # Here, not at the top: only this path needs it.
    import orjson

    text = df.with_columns(pl.col("operation").cast(pl.String), pl.col("status").cast(pl.String))
    for offset in range(0, text.height, 100_000):  # dicts a slice at a time: 10 M at once would not fit
        for r in text.slice(offset, 100_000).iter_rows(named=True):
            audit.log(r["operation"], user_id=r["user_id"], session_id=r["session_id"], entry_ids=r["entry_ids"],
                      metadata=orjson.loads(r["metadata"]) if r["metadata"] else None, status=r["status"],
                      error_message=r["error_message"], duration_ms=r["duration_ms"])


def hot_store(df: pl.DataFrame, path: str) -> list[pl.DataFrame]:
    """The hot store's frames after `df` was logged by `path` ("arrow": one
    `log_batch` of `df.to_arrow()`; "log": one `log()` per event) and the
    background sealer has compacted every full chunk."""
    audit = AuditLogger(max_events=1 << 40)
    if path == "arrow":
        audit.log_batch(df.to_arrow())
    else:
        _log_rows(audit, df)
    audit.flush()
    wait_sealed()
    return [c.df for c in audit._hot.store.chunks]


def main(argv: list[str] | None = None) -> None:
    """`python -m benchmarks.footprint [--events N] [--path arrow|log|both]`: the
    hot store's bytes per event by column (Arrow buffers against estimated_size),
    once the background sealer compacted the full chunks, for each way in; and the
    Parquet a rotation writes, on the benchmark's workload."""
    # Here, not at the top: only this command needs them (the harness imports the module).
    import argparse
    import tempfile

    from axon_audit.workload import generate_events

    from .case import DAYS, SEED, START

    parser = argparse.ArgumentParser(prog="python -m benchmarks.footprint", description=main.__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--path", choices=("arrow", "log", "both"), default="both")
    parser.add_argument("--no-rotation", action="store_true", help="skip the rotation's Parquet figure")
    args = parser.parse_args(argv)
    n = args.events
    df = generate_events(n, seed=SEED, start=START, days=DAYS)
    for path in ("arrow", "log") if args.path == "both" else (args.path,):
        frames = hot_store(df, path)
        way = "log_batch(Arrow)" if path == "arrow" else "log() per event"
        print(f"{n:,} events in the hot store by {way} ({len(frames)} chunks, the last one growing), "
              f"bytes per event:")
        print(f"  {'column':14s} {'Arrow buffers':>13s} {'estimated_size':>14s}")
        for name, (real, est) in by_column(frames).items():
            print(f"  {name:14s} {real / n:13.1f} {est / n:14.1f}")
        total = arrow_buffer_bytes(frames)
        est = sum(f.estimated_size() for f in frames)
        print(f"  {'all':14s} {total / n:13.1f} {est / n:14.1f}")
        del frames
    if args.no_rotation:
        return
    with tempfile.TemporaryDirectory(prefix="axon-footprint-") as tmp:
        seconds, exported, size = rotation_run(df, Path(tmp) / "export")
    print(f"rotation every {ROTATION_EVERY:,} ({exported:,} events exported, {seconds:.1f} s, "
          f"{exported / seconds / 1e3:,.0f} K events/s end to end): Parquet {size / exported:.1f} B/event")


if __name__ == "__main__":
    main()
