"""DuckDB over a `Snapshot`: the views `events`, `archived` and `all_events`.

Each call gets its own cursor on one shared in-process database (registrations
and views are cursor-local, so concurrent calls never see each other's views).
In-memory chunks are handed to DuckDB as Arrow (kept per chunk, zero-copy from
polars); Parquet files are read by DuckDB itself. The caller's values go in as
bound parameters only.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from axon_audit.exceptions import AuditTypeError, AuditValueError
from axon_audit.io.location import Location
from axon_audit.model.schema import COLUMNS, EMPTY_FRAME
from axon_audit.read.snapshot import Snapshot, files_dataset
from axon_audit.store.hot import Chunk

if TYPE_CHECKING:
    import duckdb

__all__ = ["VIEWS", "run_sql"]

#: The views every `sql()` query can read.
VIEWS = ("events", "archived", "all_events")

_COLS = ", ".join(f'"{c}"' for c in COLUMNS)
_base: duckdb.DuckDBPyConnection | None = None
_base_lock = threading.Lock()


def _duckdb() -> Any:
    # DuckDB loads at the first query, not at `import axon_audit`: its ~13 K objects
    # would otherwise be walked by every cyclic-GC pass of a logging process
    # (+4 % CPU per `log_event`, measured: 2.75 -> 2.87 us with duckdb imported).
    import duckdb

    return duckdb


def _connection() -> duckdb.DuckDBPyConnection:
    global _base
    with _base_lock:
        if _base is None:
            _base = _duckdb().connect(":memory:")
        return _base.cursor()


def _chunk_arrow(df: pl.DataFrame) -> pa.Table:
    # The newest Arrow level (string views) shares polars' buffers: no copy. The
    # default level would copy every string (~200 B/event).
    return df.to_arrow(compat_level=pl.CompatLevel.newest())


def _arrow_of(chunks: list[Chunk]) -> pa.Table:
    if not chunks:
        return _chunk_arrow(EMPTY_FRAME)
    tables = [c.derived("arrow", _chunk_arrow) for c in chunks]
    try:
        return pa.concat_tables(tables)
    except pa.ArrowInvalid:  # differing field metadata: unify (copies only what differs)
        return pa.concat_tables(tables, promote_options="permissive")


def run_sql(snap: Snapshot, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pa.Table:
    """Run `query` with `params` over the snapshot's views; the result as Arrow."""
    if not isinstance(query, str):
        raise AuditTypeError(f"query must be a str, got {type(query).__name__}")
    if params is not None and (isinstance(params, (str, bytes)) or not isinstance(params, (Sequence, Mapping))):
        raise AuditTypeError(f"params must be a list, tuple or dict, got {type(params).__name__}")
    duckdb = _duckdb()
    con = _connection()
    try:
        con.register("__live", _arrow_of(snap.live))
        con.register("__old", _arrow_of(snap.old))
        listed_files = snap.files(None)
        files = [str(p) for p in listed_files]
        if listed_files and isinstance(listed_files[0], Location):
            con.register("__files", files_dataset(listed_files))  # object storage: through pyarrow's filesystem
        elif files:
            # A view cannot take parameters: the paths (ours, listed from disk) are quoted literals.
            listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
            con.execute(f"CREATE TEMP VIEW __files AS SELECT * FROM read_parquet([{listed}], "
                        "hive_partitioning = false)")
        else:
            con.register("__files", EMPTY_FRAME.to_arrow())
        exclude = ""
        if snap.exclude is not None and snap.exclude.len():
            con.register("__exclude", snap.exclude.to_frame("event_id").to_arrow())
            exclude = " WHERE event_id NOT IN (SELECT event_id FROM __exclude)"
        con.execute(
            f"CREATE TEMP VIEW archived AS SELECT {_COLS} FROM __files{exclude} UNION ALL SELECT {_COLS} FROM __old"
        )
        if snap.events_are_archived:
            con.execute(f"CREATE TEMP VIEW all_events AS SELECT {_COLS} FROM archived")
            con.execute("CREATE TEMP VIEW events AS SELECT * FROM all_events")
        else:
            con.execute(f"CREATE TEMP VIEW events AS SELECT {_COLS} FROM __live")
            con.execute(f"CREATE TEMP VIEW all_events AS SELECT {_COLS} FROM archived "
                        f"UNION ALL SELECT {_COLS} FROM events")
        try:
            return con.sql(query, params=params).to_arrow_table()
        except (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException) as exc:
            raise AuditValueError(f"query cannot run: {exc}") from exc
        except duckdb.InvalidInputException as exc:
            raise AuditValueError(f"query or params are invalid: {exc}") from exc
    finally:
        con.close()
