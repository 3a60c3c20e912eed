"""The Parquet lake on any filesystem: listing, date-partition pruning, filter pushdown.

A lake is what rotation writes under an export folder:
`parquet/date=YYYY-MM-DD/part-….parquet` (hive partitions by UTC event date,
as `io.layout.ExportLayout` names and lists them), in a local folder or under
an `s3://` prefix, from any number of writers.
A query lists the partition folders once, opens only the files of the days its
time bounds allow, and hands the remaining filters to pyarrow's dataset scanner
so row groups are skipped by their statistics and only the columns asked for
are fetched.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

import polars as pl
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from axon_audit.io.layout import ExportLayout
from axon_audit.io.location import Location, StorageOptions, resolve
from axon_audit.model.schema import ARROW_SCHEMA, COLUMNS, EMPTY_FRAME, FRAME_SCHEMA
from axon_audit.query.arrow_compiler import ArrowCompiler
from axon_audit.query.filters import Filters

__all__ = ["lake_dataset", "lake_files", "scan_lake"]

_PUSHDOWN = ArrowCompiler()


def _day_bounds(f: Filters | None) -> tuple[date | None, date | None]:
    if f is None:
        return None, None

    def day(us: int | None) -> date | None:
        return None if us is None else datetime.fromtimestamp(us / 1e6, timezone.utc).date()

    return day(f.start_us), day(f.end_us)


def lake_files(
    path: str | Location, f: Filters | None = None, *, storage_options: StorageOptions | None = None
) -> list[pafs.FileInfo]:
    """The Parquet files of the lake at `path` that a query with filters `f` must
    read: whole `date=` partitions outside the time bounds are left out unopened.

    Example:
        >>> import tempfile
        >>> from datetime import datetime, timezone
        >>> from axon_audit import AuditLogger
        >>> from axon_audit.read.lake import lake_files
        >>> from axon_audit.workload import generate_events
        >>> folder = tempfile.mkdtemp()
        >>> with AuditLogger(auto_export_path=folder) as audit:
        ...     _ = audit.log_batch(generate_events(100, days=3, start=datetime(2025, 1, 1, tzinfo=timezone.utc)))
        >>> [f.path.rsplit("/", 2)[1] for f in lake_files(folder)]
        ['date=2025-01-01', 'date=2025-01-02', 'date=2025-01-03']
    """
    loc = resolve(path, storage_options=storage_options)
    lo, hi = _day_bounds(f)
    out = []
    layout = ExportLayout(loc)
    for part in layout.served(layout.parts()):  # listed by a manifest, if there is one
        day = part.day
        if day is not None and ((lo and day < lo) or (hi and day > hi)):
            continue
        assert part.info is not None  # a Location's listing carries each file's info
        out.append(part.info)
    return out


def lake_dataset(
    path: str | Location, f: Filters | None = None, *, storage_options: StorageOptions | None = None
) -> pads.Dataset:
    """A pyarrow dataset over the files `lake_files` keeps, filtered by what pyarrow
    can push down (`query.arrow_compiler`; the rest of `f` is left to `f.expr()`).
    DuckDB reads it directly (`duckdb.sql("... FROM ds")`).

    Example:
        >>> import tempfile
        >>> from axon_audit import AuditLogger
        >>> from axon_audit.query.filters import Filters
        >>> from axon_audit.read.lake import lake_dataset
        >>> folder = tempfile.mkdtemp()
        >>> with AuditLogger(auto_export_path=folder) as audit:
        ...     _ = audit.log("store", user_id="u1"); _ = audit.log("recall", user_id="u2")
        >>> lake_dataset(folder, Filters.build(user_id="u2")).to_table()["operation"].to_pylist()
        ['RECALL']
    """
    loc = resolve(path, storage_options=storage_options)
    files = [i.path for i in lake_files(loc, f)]
    dataset = pads.dataset(files, schema=ARROW_SCHEMA, format="parquet", filesystem=loc.fs)
    expr = _PUSHDOWN.compile(f) if f is not None else None
    return dataset.filter(expr) if expr is not None else dataset


def scan_lake(
    path: str | Location, *, storage_options: StorageOptions | None = None, **filters: Any
) -> pl.LazyFrame:
    """The lake's events matching `filters` (the `query_events` arguments, without
    `limit`) as a polars LazyFrame, from a local folder, `file://` or `s3://` URI.

    Only the days inside `start_time`/`end_time` are listed and opened; the other
    filters are pushed into the Parquet scan, and only the selected columns are read.

    Example:
        >>> import tempfile
        >>> import polars as pl
        >>> from axon_audit import AuditLogger, scan_lake
        >>> folder = tempfile.mkdtemp()
        >>> with AuditLogger(auto_export_path=folder) as audit:
        ...     _ = audit.log("store", user_id="u1"); _ = audit.log("recall", user_id="u2")
        >>> scan_lake(folder, user_id="u1").select(pl.len()).collect().item()
        1
    """
    f = Filters.build(**filters)
    if f.is_empty:
        return EMPTY_FRAME.lazy()
    dataset = lake_dataset(path, f, storage_options=storage_options)
    lf = pl.scan_pyarrow_dataset(dataset).select(COLUMNS).cast(dict(FRAME_SCHEMA))  # type: ignore[arg-type]
    expr = f.expr()
    return lf.filter(expr) if expr is not None else lf
