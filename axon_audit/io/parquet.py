"""Date-partitioned Parquet: the encoding every writer uses, and the writers.

`PARQUET_OPTIONS` is the one encoding of rotation parts (and of files rewritten
by erasure). `plan_parquet` cuts a time-sorted frame into its UTC-day slices
and names their parts (names from `io.layout.ExportLayout`);
`write_parquet_planned` writes them all or nothing, locally through
`io.atomic.atomic_write`, on object storage as side-by-side uploads.
`put_export` uploads one whole rotation (JSON document and parts) at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, overload

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from axon_audit.exceptions import ExportError
from axon_audit.io.atomic import atomic_write_hashed
from axon_audit.io.json_export import ObjectLines, write_json_stream
from axon_audit.io.layout import ExportLayout
from axon_audit.io.location import Location, put_all
from axon_audit.io.threads import CORES
from axon_audit.model.schema import ARROW_SCHEMA, COLUMNS, to_arrow

__all__ = ["PARQUET_COMPRESSION", "PARQUET_OPTIONS", "parquet_table", "parquet_writer", "part_tables", "plan_parquet",
           "put_export", "write_parquet_partitions", "write_parquet_planned"]

PARQUET_COMPRESSION = "zstd"
# Measured on 1 M workload events over 30 days (date partitions of ~33 K events):
# zstd level 6 took 1.9 s of CPU for 28.6 B/event; level 1 with delta encodings
# for the two near-unique, sorted columns (ids share long prefixes, times grow)
# takes 0.7 s for 23.9 B/event. Everything else keeps dictionary encoding.
_DELTA_COLUMNS = {"event_id": "DELTA_BYTE_ARRAY", "timestamp": "DELTA_BINARY_PACKED"}
PARQUET_OPTIONS: dict = {
    "compression": PARQUET_COMPRESSION,
    "compression_level": 1,
    "use_dictionary": ["operation", "user_id", "session_id", "entry_ids", "metadata", "status", "error_message",
                       "duration_ms"],
    "column_encoding": _DELTA_COLUMNS,
}

Plan = Sequence[tuple[Path | Location, int, int]]
#: Parts written at once by a local rotation unless the caller says: the cores, at most 4.
PART_THREADS = max(1, min(4, CORES))


def parquet_table(part: pl.DataFrame) -> pa.Table:
    """The Arrow table of a part: the fixed columns in the canonical schema
    (integrity needs no column of its own: see `integrity.log`).

    Example:
        >>> from axon_audit.io.parquet import parquet_table
        >>> from axon_audit.model.schema import normalize_batch
        >>> parquet_table(normalize_batch([{"operation": "store"}])).column_names[-2:]
        ['error_message', 'duration_ms']
    """
    return to_arrow(part)


def part_tables(df: pl.DataFrame, plan: Plan) -> list[pa.Table]:
    """The Arrow table of each slice of `plan`: the frame converted to Arrow once,
    then each slice cast to the canonical schema. Converting each polars slice on
    its own cost 1.05 s per 1 M events in 31 day-parts (a sliced list-of-strings
    column converts its whole child array every time); this takes 0.33 s, and
    casting after slicing keeps each part's dictionaries its own (24.1 B/event;
    slicing one cast table carried whole dictionaries into every part: 28.0, and
    each part's bytes then named every user of the rotation).

    Example:
        >>> from pathlib import Path
        >>> from axon_audit.io.parquet import part_tables, plan_parquet
        >>> from axon_audit.model.schema import normalize_batch
        >>> df = normalize_batch([{"operation": "store", "user_id": u, "timestamp": f"2025-01-{d:02d}T10:00:00Z"}
        ...                       for u, d in (("alice", 1), ("bob", 2))])
        >>> [t.column("user_id").combine_chunks().dictionary.to_pylist()
        ...  for t in part_tables(df, plan_parquet(df, Path("/srv/audit/parquet")))]
        [['alice'], ['bob']]
    """
    # user_id goes over as plain text and is dictionary-encoded per part by the cast: a part's
    # dictionary must hold only its own values (the frame's whole dictionary would put every
    # user of the rotation, an erased subject's old id among them, into each part's bytes).
    raw = df.select(COLUMNS).with_columns(pl.col("user_id").cast(pl.String)).to_arrow()
    return [raw.slice(a, n).cast(ARROW_SCHEMA) for _, a, n in plan]


def parquet_writer(table: pa.Table) -> Callable[[IO[bytes]], None]:
    """A writer of `table` in `PARQUET_OPTIONS`, for `atomic_write` or `Location.put`.

    Example:
        >>> import io
        >>> import pyarrow.parquet as pq
        >>> from axon_audit.io.parquet import parquet_table, parquet_writer
        >>> from axon_audit.model.schema import normalize_batch
        >>> buf = io.BytesIO()
        >>> parquet_writer(parquet_table(normalize_batch([{"operation": "store"}])))(buf)
        >>> pq.read_metadata(io.BytesIO(buf.getvalue())).num_rows
        1
    """
    def write(fh: IO[bytes]) -> None:
        # Encoded into an Arrow buffer first, then handed over in one write: the encoder then
        # never calls back into Python. Writing into the (Python) file object directly made
        # ~120 calls per part, each waiting for the GIL behind a busy logging thread
        # (92 ms -> 820 ms per 100 K events beside one, measured).
        sink = pa.BufferOutputStream()
        # pq is looked up at call time, so a test can patch pq.write_table to inject faults.
        pq.write_table(table, sink, **PARQUET_OPTIONS)  # the same encoding as local files
        fh.write(sink.getvalue())

    return write


@overload
def plan_parquet(df: pl.DataFrame, root: Path) -> list[tuple[Path, int, int]]: ...
@overload
def plan_parquet(df: pl.DataFrame, root: Location) -> list[tuple[Location, int, int]]: ...
def plan_parquet(df: pl.DataFrame, root: Path | Location) -> list[tuple[Any, int, int]]:
    """For `df` sorted by timestamp: (path, offset, length) of each UTC-date slice,
    each path a new part under `root` (a Parquet folder, usually ``<export>/parquet``).

    Example:
        >>> from pathlib import Path
        >>> from axon_audit.io.parquet import plan_parquet
        >>> from axon_audit.model.schema import normalize_batch
        >>> df = normalize_batch([{"operation": "store", "timestamp": f"2025-01-{d:02d}T10:00:00Z"} for d in (1, 1, 2)])
        >>> [(p.parent.as_posix(), a, n) for p, a, n in plan_parquet(df, Path("/srv/audit/parquet"))]
        [('/srv/audit/parquet/date=2025-01-01', 0, 2), ('/srv/audit/parquet/date=2025-01-02', 2, 1)]
    """
    if df.height == 0:
        return []
    runs = (
        df.select(pl.col("timestamp").dt.date().alias("d"))
        .with_row_index("i")
        .group_by("d", maintain_order=True)
        .agg(pl.col("i").min().alias("start"), pl.len().alias("n"))
    )
    base = root if isinstance(root, Location) else Path(root)
    return [(ExportLayout.part_in(base, d), int(a), int(n)) for d, a, n in runs.iter_rows()]


def write_parquet_planned(df: pl.DataFrame, plan: Plan, digests: list[tuple[str, int]] | None = None,
                          threads: int | None = None) -> list:
    """Write the slices of `plan` (from `plan_parquet`); all or nothing. On object
    storage the parts are uploaded side by side; locally `threads` at a time
    (default `PART_THREADS`). Returns the paths written; `digests`, if given,
    receives each part's (SHA-256 hex, size), hashed as written.

    Example:
        >>> import pathlib, tempfile
        >>> from axon_audit.io.parquet import plan_parquet, write_parquet_planned
        >>> from axon_audit.model.schema import normalize_batch
        >>> df = normalize_batch([{"operation": "store"}])
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> [p.exists() for p in write_parquet_planned(df, plan_parquet(df, root))]
        [True]
    """
    if plan and isinstance(plan[0][0], Location):
        try:
            uploaded = put_all([(path, parquet_writer(table))  # type: ignore[misc]
                                for (path, _, _), table in zip(plan, part_tables(df, plan), strict=True)])
        except OSError as exc:
            raise ExportError(exc.errno, f"cannot write Parquet under {plan[0][0].uri}: {exc.strerror or exc}") from exc
        if digests is not None:
            digests += uploaded
        return [path for path, _, _ in plan]
    paths = [Path(path) for path, _, _ in plan]  # type: ignore[arg-type]
    tables = part_tables(df, plan)

    def write(i: int) -> tuple[str, int]:
        return atomic_write_hashed(paths[i], parquet_writer(tables[i]))[1]

    # Parts side by side: Arrow's encoder runs without the GIL, one part per thread (a
    # 1 M-event rotation's 31 parts: 0.84 s one after another, measured in benchmarks/).
    futures: list[Future[tuple[str, int]]] = []
    if (threads or PART_THREADS) > 1 and len(paths) > 1:
        with ThreadPoolExecutor(max_workers=threads or PART_THREADS, thread_name_prefix="axon-audit-parquet") as pool:
            futures = [pool.submit(write, i) for i in range(len(paths))]
    else:
        for i in range(len(paths)):
            futures.append(Future())
            try:
                futures[-1].set_result(write(i))
            except BaseException as exc:  # noqa: BLE001 - undone below, as a thread's error is
                futures[-1].set_exception(exc)
                break
    done = [f.exception() is None for f in futures]
    failed = [error for f in futures if (error := f.exception()) is not None]
    if failed:
        for path, ok in zip(paths, done, strict=False):
            if ok:
                path.unlink(missing_ok=True)
        first = failed[0]
        if isinstance(first, OSError):
            raise ExportError(first.errno, f"cannot write Parquet under {paths[0].parent.parent}: "
                                           f"{first.strerror or first}") from first
        raise first
    if digests is not None:
        digests += [f.result() for f in futures]
    return paths


def put_export(df: pl.DataFrame, json_path: Location, plan: Plan,
               objects: pl.Series | ObjectLines | None = None) -> list[tuple[str, int]]:
    """Upload one export to object storage: the JSON document at `json_path` and the
    Parquet parts of `plan`, side by side, all or nothing. Returns each object's
    (SHA-256 hex, size), the JSON document's first."""
    uploads: list[tuple[Location, Callable[[IO[bytes]], object]]] = [
        (json_path, lambda fh: write_json_stream(fh, df, objects=objects))]
    uploads += [(path, parquet_writer(table))  # type: ignore[misc]
                for (path, _, _), table in zip(plan, part_tables(df, plan), strict=True)]
    try:
        return put_all(uploads)
    except OSError as exc:
        raise ExportError(exc.errno, f"cannot upload the export under {json_path.uri.rpartition('/')[0]}: "
                                     f"{exc.strerror or exc}") from exc


def write_parquet_partitions(df: pl.DataFrame, root: Path) -> list[Path]:
    """Write `df` under `root/date=YYYY-MM-DD/part-….parquet`, by UTC event date
    (rows in time order; all or nothing).

    Example:
        >>> import pathlib, tempfile
        >>> from axon_audit.io.parquet import write_parquet_partitions
        >>> from axon_audit.model.schema import normalize_batch
        >>> df = normalize_batch([{"operation": "store", "timestamp": "2025-01-02T00:00:00Z"}])
        >>> [p.parent.name for p in write_parquet_partitions(df, pathlib.Path(tempfile.mkdtemp()))]
        ['date=2025-01-02']
    """
    df = df.sort("timestamp", maintain_order=True)
    return write_parquet_planned(df, plan_parquet(df, Path(root)))
