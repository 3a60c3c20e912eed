"""Opening an export folder for reading: the one place the CLI and the demo get a reader.

`open_source(path)` returns an object with the read API of `AuditArchive`
(`scan`, `query_events`, `sql`, `get_statistics`, `get_user_statistics`,
`export_to_file`, `files`); callers use nothing else, plus `newest` below.
Until the query engine's `open_archive` is on main the reader is
`_ParquetFolder`, a small read-only view of `path/parquet/**/*.parquet`;
swapping the reader means changing `open_source`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from ._errors import ArchiveError, AuditValueError
from ._models import AuditEvent
from ._query import Filters
from ._schema import COLUMNS, EMPTY_FRAME, FRAME_SCHEMA, frame_to_events
from ._sinks import write_json_export
from ._stats import statistics, user_statistics

__all__ = ["newest", "open_source"]


class _ParquetFolder:
    """Read-only queries over the Parquet of an export folder (written by any process).

    Example:
        >>> import tempfile
        >>> from axon_audit import AuditLogger
        >>> from axon_audit._source import open_source
        >>> folder = tempfile.mkdtemp()
        >>> with AuditLogger(auto_export_path=folder) as audit:
        ...     _ = audit.log("store", user_id="u1"); _ = audit.log("recall", user_id="u2")
        >>> src = open_source(folder)
        >>> len(src.query_events(user_id="u1")), src.get_statistics()["total_events"]
        (1, 2)
        >>> src.sql("SELECT count(*) AS n FROM events WHERE operation = 'RECALL'")["n"][0]
        1
    """

    def __init__(self, path: str | Path) -> None:
        root = Path(path)
        if not root.exists():
            raise AuditValueError(f"path {str(root)!r} does not exist (expected an export folder)")
        if not root.is_dir():
            raise AuditValueError(f"path {str(root)!r} is not a folder (expected an export folder)")
        self.path = root
        self._glob = str(root / "parquet" / "**" / "*.parquet")

    def files(self) -> list[Path]:
        """The Parquet files now in the folder, in name order."""
        return sorted((self.path / "parquet").glob("**/*.parquet"))

    def _raw(self) -> pl.LazyFrame:
        if not self.files():
            return EMPTY_FRAME.lazy()
        try:
            lf = pl.scan_parquet(self._glob, hive_partitioning=True)
            schema = lf.collect_schema()
        except Exception as exc:  # noqa: BLE001 - polars raises several kinds for a bad file
            raise ArchiveError(f"cannot read the Parquet under {self.path}: {exc}") from None
        if any(c not in schema for c in COLUMNS):
            import pyarrow.parquet as pq

            for f in self.files():  # name the file at fault
                names = pq.read_schema(f).names
                missing = [c for c in COLUMNS if c not in names]
                if missing:
                    raise ArchiveError(f"{f}: not audit data (no column {missing[0]!r})")
        return lf.select(COLUMNS).cast(dict(FRAME_SCHEMA))  # type: ignore[arg-type]

    def scan(self, **filters: Any) -> pl.LazyFrame:
        """Events matching `filters` (as `query_events`, without `limit`) as a LazyFrame."""
        f = Filters.build(**filters)
        if f.is_empty:
            return EMPTY_FRAME.lazy()
        lf = self._raw()
        expr = f.expr()
        return lf if expr is None else lf.filter(expr)

    def query_events(self, **filters: Any) -> list[AuditEvent]:
        """The seed's `query_events` over the folder, newest first."""
        return frame_to_events(newest(self, **filters))

    def sql(self, query: str) -> pl.DataFrame:
        """DuckDB SQL over the view `events` (the folder's Parquet)."""
        import duckdb

        con = duckdb.connect()
        try:
            if self.files():
                con.execute(
                    "CREATE VIEW events AS SELECT * EXCLUDE (date) "
                    f"FROM read_parquet('{_sql_literal(self._glob)}', hive_partitioning = true)"
                )
            else:
                con.register("events", EMPTY_FRAME.to_arrow())
            return con.sql(query).pl()
        finally:
            con.close()

    def get_statistics(self) -> dict[str, Any]:
        """The seed's statistics over every event in the folder."""
        return statistics(self._raw())

    def get_user_statistics(self, user_id: str) -> dict[str, Any]:
        """The seed's user statistics over every event in the folder."""
        return user_statistics(self._raw(), user_id)

    def export_to_file(self, path: str | Path, **filters: Any) -> int:
        """Write the matching events, oldest first, in the JSON export format."""
        df = newest(self, **filters).reverse()
        write_json_export(df, Path(path))
        return df.height


def _sql_literal(text: str) -> str:
    return text.replace("'", "''")


def newest(source: Any, *, limit: int | None = None, **filters: Any) -> pl.DataFrame:
    """The events of `source` matching `filters` as a frame, newest first, at most `limit`.

    Example:
        >>> import tempfile
        >>> from axon_audit import AuditLogger
        >>> from axon_audit._source import newest, open_source
        >>> folder = tempfile.mkdtemp()
        >>> with AuditLogger(auto_export_path=folder) as audit:
        ...     for op in ("store", "recall", "forget"):
        ...         _ = audit.log(op)
        >>> newest(open_source(folder), limit=2)["operation"].to_list()
        ['FORGET', 'RECALL']
    """
    Filters.build(limit=limit)  # checks it
    lf = source.scan(**filters).sort(["timestamp", "event_id"], descending=True)
    if limit is not None:
        lf = lf.head(limit)
    try:
        return lf.collect()
    except (pl.exceptions.ComputeError, OSError) as exc:
        raise ArchiveError(f"cannot read the events under {getattr(source, 'path', source)}: {exc}") from None


def open_source(path: str | Path) -> _ParquetFolder:
    """A reader for the export folder at `path` (the swap point for `open_archive`).

    Example:
        >>> from axon_audit._source import open_source
        >>> open_source("/no/such/folder")
        Traceback (most recent call last):
        ...
        axon_audit._errors.AuditValueError: path '/no/such/folder' does not exist (expected an export folder)
    """
    return _ParquetFolder(path)
