"""DuckDB over a `Snapshot`: the views `events`, `archived` and `all_events`.

By default a call is read-only: every statement must be a query (SELECT, or an
EXPLAIN of one; no COPY, ATTACH, INSTALL/LOAD, SET, CREATE, PRAGMA), and it runs
on a cursor of a locked database: no file access but reading under the
snapshot's Parquet folder, configuration locked (`enable_external_access=false` with
`allowed_directories`, then `lock_configuration=true`). One such database per
export folder is kept (a fresh DuckDB costs ~18 ms of CPU, a cursor ~10 us);
since no query can create anything in it, and a cursor's registrations and
temporary views are its own, no call sees another's. `read_only=False` is the
trusted opt-in: any statement, full file access, on a fresh database of its own
(dropped after the call, so nothing it creates reaches a later call).

In-memory chunks are handed to DuckDB as Arrow (kept per chunk, zero-copy from
polars); Parquet files are read by DuckDB itself, by their literal names (glob
characters in a folder's name are escaped). The caller's values go in as bound
parameters only.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from axon_audit.exceptions import AuditTypeError, AuditValueError
from axon_audit.io.layout import ExportLayout
from axon_audit.io.location import Location, duckdb_literal_path
from axon_audit.model.schema import COLUMNS, EMPTY_FRAME
from axon_audit.model.timestamps import from_us, to_us
from axon_audit.read.snapshot import Snapshot, files_dataset
from axon_audit.store.hot import Chunk

if TYPE_CHECKING:
    import duckdb

__all__ = ["VIEWS", "polars_safe", "run_sql"]

#: The views every `sql()` query can read.
VIEWS = ("events", "archived", "all_events")

_COLS = ", ".join(f'"{c}"' for c in COLUMNS)
# Extensions are never fetched or loaded behind the caller's back (a query naming
# an extension's function would otherwise download and run code).
_CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
_EXPLAIN = re.compile(r"\s*explain(\s+analy[sz]e)?\s+", re.IGNORECASE)
_LOCKED_MAX = 8  # locked databases kept (one per export folder read, least recently used dropped)
_locked: OrderedDict[tuple[str, str], duckdb.DuckDBPyConnection] = OrderedDict()
_locked_guard = threading.Lock()


def _duckdb() -> Any:
    # DuckDB loads at the first query, not at `import axon_audit`: its ~13 K objects
    # would otherwise be walked by every cyclic-GC pass of a logging process
    # (+4 % CPU per `log_event`, measured: 2.75 -> 2.87 us with duckdb imported).
    import duckdb

    return duckdb


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


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_EMPTY = "query is empty: expected a SQL statement such as SELECT count(*) FROM events"


def _check_read_only(con: duckdb.DuckDBPyConnection, query: str) -> None:
    """Refuse any statement of `query` that is not a query (an EXPLAIN ANALYZE runs
    the statement it explains, so an EXPLAIN passes only when that one is a query)."""
    duckdb = _duckdb()
    try:
        statements = con.extract_statements(query)
    except duckdb.Error as exc:
        raise AuditValueError(f"query cannot run: {exc}") from None
    if not statements:
        raise AuditValueError(_EMPTY)
    for st in statements:
        kind = st.type
        if kind == duckdb.StatementType.EXPLAIN:
            m = _EXPLAIN.match(st.query)
            inner = con.extract_statements(st.query[m.end():]) if m else []
            if len(inner) == 1 and inner[0].type == duckdb.StatementType.SELECT:
                continue
        elif kind == duckdb.StatementType.SELECT:
            continue
        raise AuditValueError(
            f"query: sql() is read-only and runs queries only (SELECT); got a statement of type {kind.name} "
            f"({' '.join(st.query.split())[:80]!r}); pass read_only=False for trusted statements"
        )


def _locked_db(directories: Sequence[str] = (), paths: Sequence[str] = ()) -> duckdb.DuckDBPyConnection:
    """A locked database that can read only under `directories` and the files
    `paths`. DuckDB checks the name it was given, so each glob-escaped spelling
    (what the views name) is allowed too."""
    con = _duckdb().connect(":memory:", config=_CONFIG)
    try:
        for setting, names in (("allowed_directories", [d + "/" for d in directories]), ("allowed_paths", paths)):
            spelled = sorted({*names, *map(duckdb_literal_path, names)})
            if spelled:
                con.execute(f"SET {setting} = [{', '.join(map(_quoted, spelled))}]")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def _read_only_cursor(snap: Snapshot, files: list[str]) -> duckdb.DuckDBPyConnection:
    """A cursor on the locked database of the snapshot's export folder, that can read `files`."""
    where = getattr(snap.folder, "path", None)
    key = ("none", "")
    if files and where is not None:
        root = os.path.abspath(where)
        parts = os.path.join(root, ExportLayout.PARQUET_DIR)
        if os.path.isfile(root):
            key = ("file", root)
        else:  # the Parquet folder when every file lies in it (the manifest stays out of reach)
            key = ("dir", parts if all(f.startswith(parts + os.sep) for f in files) else root)
        if not all(f == key[1] if key[0] == "file" else f.startswith(key[1] + os.sep) for f in files):
            return _locked_db(paths=files)  # not expected: a database for exactly these files
    with _locked_guard:
        base = _locked.get(key)
        if base is None:
            kind, path = key
            base = _locked[key] = _locked_db(directories=[path] if kind == "dir" else [],
                                             paths=[path] if kind == "file" else [])
            while len(_locked) > _LOCKED_MAX:
                # Dropped, not closed: closing would close the cursors other threads are using;
                # the database goes when its last cursor does.
                _locked.popitem(last=False)
        _locked.move_to_end(key)
        return base.cursor()


def _has_unimportable(t: pa.DataType) -> bool:
    """Whether polars cannot import Arrow type `t` (intervals and unions, at any depth)."""
    if pa.types.is_interval(t) or pa.types.is_union(t):
        return True
    if pa.types.is_dictionary(t):
        return _has_unimportable(t.value_type)
    return any(_has_unimportable(t.field(i).type) for i in range(t.num_fields))


def polars_safe(table: pa.Table) -> pa.Table:
    """`table` with every column polars cannot import (an INTERVAL, a UNION, or a
    nesting of them) as DuckDB's text of it; the other columns untouched.

    Example:
        >>> import duckdb
        >>> from axon_audit.read.sql import polars_safe
        >>> t = duckdb.connect().sql("SELECT INTERVAL 90 MINUTE AS i, 1 AS n").to_arrow_table()
        >>> polars_safe(t).to_pylist()
        [{'i': '01:30:00', 'n': 1}]
    """
    bad = [i for i, f in enumerate(table.schema) if _has_unimportable(f.type)]
    if not bad:
        return table
    con = _duckdb().connect(":memory:", config=_CONFIG)
    try:
        for i in bad:
            con.register("one", pa.table({"v": table.column(i)}))
            text = con.sql("SELECT CAST(v AS VARCHAR) AS v FROM one").to_arrow_table().column(0)
            con.unregister("one")
            table = table.set_column(i, pa.field(table.schema.field(i).name, pa.string()), text)
    finally:
        con.close()
    return table


def _aware(value: Any, naive_time: str | None) -> Any:
    """A naive datetime parameter as aware UTC by the naive-time rule (DuckDB would
    read it in its own TimeZone setting against the TIMESTAMPTZ column)."""
    if isinstance(value, datetime) and (value.tzinfo is None or value.utcoffset() is None):
        return from_us(to_us(value, "params", naive_time, bound="start"))
    return value


def run_sql(snap: Snapshot, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None, *,
            read_only: bool = True, naive_time: str | None = None) -> pa.Table:
    """Run `query` with `params` over the snapshot's views, in a database of its own;
    the result as Arrow (an empty table when the last statement returns no rows).
    Naive datetime params follow `naive_time` (`axon_audit.model.timestamps`)."""
    if not isinstance(query, str):
        raise AuditTypeError(f"query must be a str, got {type(query).__name__}")
    if not query.strip():
        raise AuditValueError(_EMPTY)
    if params is not None and (isinstance(params, (str, bytes)) or not isinstance(params, (Sequence, Mapping))):
        raise AuditTypeError(f"params must be a list, tuple or dict, got {type(params).__name__}")
    if not isinstance(read_only, bool):
        raise AuditTypeError(f"read_only must be a bool, got {type(read_only).__name__}")
    if isinstance(params, Mapping):
        params = {k: _aware(v, naive_time) for k, v in params.items()}
    elif params is not None:
        params = [_aware(v, naive_time) for v in params]
    duckdb = _duckdb()
    listed_files = snap.files(None)
    local = not (listed_files and isinstance(listed_files[0], Location))
    # Absolute: DuckDB's file-access check compares the names it is given.
    files = [os.path.abspath(p) for p in listed_files] if local else []
    con = _read_only_cursor(snap, files) if read_only else duckdb.connect(":memory:", config=_CONFIG)
    try:
        if read_only:
            _check_read_only(con, query)
        con.register("__live", _arrow_of(snap.live))
        con.register("__old", _arrow_of(snap.old))
        if not local:
            con.register("__files", files_dataset(listed_files))  # object storage: through pyarrow's filesystem
        elif files:
            # A view cannot take parameters: the paths (ours, listed from disk) are quoted literals.
            listed = ", ".join(_quoted(duckdb_literal_path(f)) for f in files)
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
            rel = con.sql(query, params=params)
            return pa.table({}) if rel is None else rel.to_arrow_table()
        except (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException) as exc:
            raise AuditValueError(f"query cannot run: {exc}") from exc
        except duckdb.PermissionException as exc:
            raise AuditValueError(f"query: sql() reads only the views {', '.join(VIEWS)} "
                                  f"(pass read_only=False for trusted use): {exc}") from exc
        except duckdb.InvalidInputException as exc:
            raise AuditValueError(f"query or params are invalid: {exc}") from exc
    finally:
        con.close()
