"""Writers: the seed's JSON export format and date-partitioned Parquet, both atomic.

Every local file is written under a temporary name in its final folder, flushed,
fsynced and then renamed (or hard-linked, where an existing file must not be
replaced), so a reader sees a whole file or none. On object storage (a
`Location` from `_fs`) a file is one upload of the whole object under a unique
final name instead.
"""

from __future__ import annotations

import os
import secrets
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Callable

import polars as pl
import pyarrow.parquet as pq

from axon_audit.exceptions import ExportError
from axon_audit.io.location import Location, put_all
from axon_audit.model.event import format_us, now_us
from axon_audit.model.schema import to_arrow

JSON_PIECE_ROWS = 200_000
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


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not every platform opens folders
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def atomic_write(path: Path, write: Callable[[IO[bytes]], None], *, replace: bool = True) -> Path:
    """Write `path` whole or not at all. With `replace=False` an existing file is
    never overwritten: the name gets `_1`, `_2`, … before the suffix instead.
    Returns the path written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            path = _link_unique(tmp, path)
            os.unlink(tmp)
        _fsync_dir(path.parent)
        return path
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _link_unique(tmp: Path, path: Path) -> Path:
    candidate, n = path, 0
    while True:
        try:
            os.link(tmp, candidate)  # fails if the name exists: no overwrite, even across processes
            return candidate
        except FileExistsError:
            n += 1
            candidate = path.with_name(f"{path.stem}_{n}{path.suffix}")


# --------------------------------------------------------------------------- JSON


def event_objects(df: pl.DataFrame) -> pl.Series:
    """One JSON object text per event, the fixed keys in the export order
    (vectorized). This text is also what the integrity chain hashes."""
    head = pl.struct(
        "event_id",
        pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").alias("timestamp"),
        pl.col("operation").cast(pl.String),
        pl.col("user_id").cast(pl.String),
        pl.col("session_id").cast(pl.String),
        pl.col("entry_ids").fill_null([]),
    ).struct.json_encode()
    tail = pl.struct(
        pl.col("status").cast(pl.String), "error_message", "duration_ms"
    ).struct.json_encode()
    return df.select(
        pl.concat_str(
            head.str.strip_suffix("}"),
            pl.lit(',"metadata":'),
            pl.col("metadata").fill_null("{}"),
            pl.lit(","),
            tail.str.strip_prefix("{"),
        )
    ).to_series()


_event_objects = event_objects


def _with_chain(objects: pl.Series, chain: pl.Series) -> pl.Series:
    """Append the ``"chain"`` key after the fixed keys of each object."""
    return pl.select(
        pl.concat_str(objects.str.strip_suffix("}"), pl.lit(',"chain":"'), chain, pl.lit('"}'))
    ).to_series()


def write_json_stream(fh: IO[bytes], df: pl.DataFrame, exported_at_us: int | None = None,
                      objects: pl.Series | None = None) -> None:
    """The export document, written piece by piece to bound memory. One event
    object per line (`verify` relies on it). A ``chain`` column, if present, is
    written as an extra key after the fixed ones; `objects` may pass the fixed
    keys' texts when the caller already made them."""
    fh.write(b'{"events": [\n')
    chained = "chain" in df.columns
    n = df.height
    for start in range(0, n, JSON_PIECE_ROWS):
        piece = (event_objects(df.slice(start, JSON_PIECE_ROWS)) if objects is None
                 else objects.slice(start, JSON_PIECE_ROWS))
        if chained:
            piece = _with_chain(piece, df["chain"].slice(start, JSON_PIECE_ROWS))
        lines = piece.to_frame()
        if start + JSON_PIECE_ROWS >= n:  # the last object takes no comma
            lines, last = lines.head(-1), lines[-1, 0]
        else:
            last = None
        if lines.height:
            # polars writes the lines natively, each object followed by ",\n"; joining them
            # into one Python str and encoding it cost twice as much (measured).
            lines.write_csv(fh, include_header=False, quote_style="never", line_terminator=",\n")
        if last is not None:
            fh.write(last.encode() + b"\n")
    exported = format_us(now_us() if exported_at_us is None else exported_at_us)
    fh.write(f'], "total_events": {n}, "exported_at": "{exported}"}}\n'.encode())


def _unique_object(loc: Location) -> Location:
    """An object name no other writer picks: pyarrow exposes no create-if-absent
    upload, so a rotation on object storage never relies on a name being free."""
    stem, dot, suffix = loc.name.rpartition(".")
    return loc.sibling(f"{stem}_{secrets.token_hex(6)}{dot}{suffix}" if dot else f"{loc.name}_{secrets.token_hex(6)}")


def write_json_export(df: pl.DataFrame, path: Path | Location, *, replace: bool = True,
                      objects: pl.Series | None = None) -> Path | Location:
    """Write `df` as one export document at `path` (atomically). On object storage
    one upload of the whole document; `replace=False` there gives the name a
    random suffix (no overwrite across writers)."""
    try:
        if isinstance(path, Location) and not path.is_local:
            target = path if replace else _unique_object(path)
            target.put(lambda fh: write_json_stream(fh, df, objects=objects))
            return target
        if isinstance(path, Location):
            path = path.local_path()
        return atomic_write(Path(path), lambda fh: write_json_stream(fh, df, objects=objects), replace=replace)
    except OSError as exc:
        raise ExportError(exc.errno, f"cannot write JSON export {path}: {exc.strerror or exc}") from exc


def rotation_json_name(at: datetime | None = None) -> str:
    at = at or datetime.now(timezone.utc)
    return at.strftime("audit_%Y_%m_%d_%H%M%S.json")


def unique_json_path(root: Path | Location, at: datetime | None = None) -> Path | Location:
    """The rotation file's name, with ``_1``, ``_2``, … if taken (the caller holds
    the folder lock, so the name stays free until it writes). On object storage
    (no lock): the name with a random suffix."""
    if isinstance(root, Location):
        return _unique_object(root / rotation_json_name(at))
    path = Path(root) / rotation_json_name(at)
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}_{n}{path.suffix}")
    return candidate


# --------------------------------------------------------------------------- Parquet


def part_name() -> str:
    """Unique and sortable by write time: never collides across rotations or processes."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return f"part-{stamp}-{now_us() % 1_000_000:06d}-{os.getpid()}-{secrets.token_hex(4)}.parquet"


def plan_parquet(df: pl.DataFrame, root: Path | Location) -> list[tuple[Path | Location, int, int]]:
    """For `df` sorted by timestamp: (path, offset, length) of each UTC-date slice."""
    if df.height == 0:
        return []
    runs = (
        df.select(pl.col("timestamp").dt.date().alias("d"))
        .with_row_index("i")
        .group_by("d", maintain_order=True)
        .agg(pl.col("i").min().alias("start"), pl.len().alias("n"))
    )
    base = root if isinstance(root, Location) else Path(root)
    return [(base / f"date={d.isoformat()}" / part_name(), int(a), int(n))
            for d, a, n in runs.iter_rows()]


def _table_of(part: pl.DataFrame):  # type: ignore[no-untyped-def]
    table = to_arrow(part)
    if "chain" in part.columns:  # the integrity chain: an extra column after the fixed ones
        table = table.append_column("chain", part["chain"].to_arrow().cast("string"))
    return table


def _parquet_writer(table):  # type: ignore[no-untyped-def]
    return lambda fh: pq.write_table(table, fh, **PARQUET_OPTIONS)  # the same encoding as local files


def write_parquet_planned(df: pl.DataFrame, plan: list[tuple[Path | Location, int, int]]) -> list:
    """Write the slices of `plan` (from `plan_parquet`); all or nothing. On object
    storage the parts are uploaded side by side."""
    if plan and isinstance(plan[0][0], Location):
        try:
            put_all([(path, _parquet_writer(_table_of(df.slice(start, n)))) for path, start, n in plan])
        except OSError as exc:
            raise ExportError(exc.errno, f"cannot write Parquet under {plan[0][0].uri}: {exc.strerror or exc}") from exc
        return [path for path, _, _ in plan]
    written: list[Path] = []
    try:
        for path, start, n in plan:
            table = _table_of(df.slice(start, n))
            atomic_write(path, _parquet_writer(table))
            written.append(path)
    except OSError as exc:
        for done in written:
            done.unlink(missing_ok=True)
        raise ExportError(exc.errno, f"cannot write Parquet {path}: {exc.strerror or exc}") from exc
    return written


def put_export(df: pl.DataFrame, json_path: Location, plan: list[tuple[Path | Location, int, int]],
               objects: pl.Series | None = None) -> list[tuple[str, int]]:
    """Upload one export to object storage: the JSON document at `json_path` and the
    Parquet parts of `plan`, side by side, all or nothing. Returns each object's
    (SHA-256 hex, size), the JSON document's first."""
    uploads: list[tuple[Location, Callable[[IO[bytes]], None]]] = [
        (json_path, lambda fh: write_json_stream(fh, df, objects=objects))]
    uploads += [(path, _parquet_writer(_table_of(df.slice(a, n)))) for path, a, n in plan]  # type: ignore[misc]
    try:
        return put_all(uploads)
    except OSError as exc:
        raise ExportError(exc.errno, f"cannot upload the export under {json_path.uri.rpartition('/')[0]}: "
                                     f"{exc.strerror or exc}") from exc


def write_parquet_partitions(df: pl.DataFrame, root: Path) -> list[Path]:
    """Write `df` under `root/date=YYYY-MM-DD/part-….parquet`, by UTC event date
    (rows in time order; all or nothing)."""
    df = df.sort("timestamp", maintain_order=True)
    return write_parquet_planned(df, plan_parquet(df, Path(root)))
