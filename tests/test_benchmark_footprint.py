"""The benchmark's footprint figures count what is really there: every Arrow
buffer once (views, data, validity, offsets, shared slices not twice), and the
Parquet files a real rotation wrote."""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import axon_audit  # noqa: E402 - after sys.path holds the repository root
from axon_audit.workload import generate_events  # noqa: E402 - after sys.path holds the repository root
from benchmarks.footprint import arrow_buffer_bytes, rotation_run  # noqa: E402 - after sys.path holds the repository root


def test_fixed_width_column_is_counted_once_across_slices_and_clones() -> None:
    df = pl.DataFrame({"x": pl.Series(range(1000), dtype=pl.Int64)})
    assert arrow_buffer_bytes([df]) == 8000
    assert arrow_buffer_bytes([df.slice(0, 500), df.slice(500, 500)]) == 8000
    assert arrow_buffer_bytes([df, df.clone()]) == 8000  # a clone shares its buffers


def test_string_views_count_the_view_and_the_data() -> None:
    long = pl.DataFrame({"s": [f"{i:020d}" for i in range(1000)]})  # 20 B: not inlined in the view
    assert long.estimated_size() == 20_000
    assert arrow_buffer_bytes([long]) == 1000 * 16 + 20_000
    nulls = pl.DataFrame({"s": [None] * 999 + ["a"]})  # a view per row even when null, plus validity
    assert arrow_buffer_bytes([nulls]) == 1000 * 16 + 125


def test_lists_and_categoricals() -> None:
    lists = pl.DataFrame({"l": [[f"{i:013d}", f"{i + 1:013d}"] for i in range(1000)]})
    assert arrow_buffer_bytes([lists]) == 1001 * 8 + 2000 * 16 + 2000 * 13  # offsets, views, data
    cats = pl.DataFrame({"c": pl.Series(["a", "b"] * 500, dtype=pl.Categorical)})
    # u32 codes, and the two categories (inline views) once, not once per slice
    assert arrow_buffer_bytes([cats]) == arrow_buffer_bytes([cats.slice(0, 500), cats.slice(500, 500)]) == 4000 + 32


def test_rotation_run_reports_the_files_it_wrote(tmp_path: Path) -> None:
    data = generate_events(2500, seed=7).to_arrow()
    folder = tmp_path / "export"
    seconds, exported, size = rotation_run(data, folder, every=1000)
    assert seconds > 0 and exported == 2500
    parts = sorted((folder / "parquet").rglob("*.parquet"))
    assert size == sum(p.stat().st_size for p in parts) > 0
    assert sum(pq.read_metadata(p).num_rows for p in parts) == 2500
    assert set(pq.read_schema(parts[0]).names) >= set(data.column_names)  # every column the events have
    assert axon_audit.verify(folder).ok
