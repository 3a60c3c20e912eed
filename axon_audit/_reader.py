"""What a read sees (`Snapshot`) and the read API shared by the logger and archives.

A `Snapshot` is taken at one instant: the live chunks, the chunks of older events
held in memory (a rotation still being written, or loaded JSON exports), and the
Parquet files on disk. When a rotation is being written, its files may be partly
on disk already: rows of files whose event id belongs to such an in-flight
rotation are left out (its chunks stand for them), so every event is seen once.

`Reader` turns a snapshot and a `Filters` into answers: rows newest first (zone
maps skip chunks, `date=` partitions skip files, the chunk index answers id and
entry lookups, `limit` stops early), LazyFrames, Arrow, statistics, SQL, exports.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence, TypeVar

import numpy as np
import polars as pl
import pyarrow as pa

from ._errors import AuditTypeError
from ._models import AuditEvent, EventStatus, OperationType
from ._query import Filters
from ._schema import COLUMNS, EMPTY_FRAME, FRAME_SCHEMA, frame_to_events, to_arrow
from ._sinks import write_json_export
from ._store import CHUNK_ROWS, Chunk

if TYPE_CHECKING:
    import pyarrow.dataset as pads

    from ._archive import ExportFolder, _Part

__all__ = ["Snapshot", "Reader"]

_CAST = dict(FRAME_SCHEMA)
_T = TypeVar("_T")


def files_dataset(files: list) -> pads.Dataset:
    """Object-storage files (`Location`s on one filesystem) as one pyarrow dataset:
    polars and DuckDB read it through pyarrow's filesystem (no httpfs needed)."""
    import pyarrow.dataset as pads

    from ._schema import ARROW_SCHEMA

    return pads.dataset([f.path for f in files], schema=ARROW_SCHEMA, format="parquet", filesystem=files[0].fs)


def _scan_files(files: list) -> pl.LazyFrame:
    from ._fs import Location

    if files and isinstance(files[0], Location):
        return pl.scan_pyarrow_dataset(files_dataset(files)).select(COLUMNS).cast(_CAST)  # type: ignore[arg-type]
    return pl.scan_parquet(files, hive_partitioning=False).select(COLUMNS).cast(_CAST)  # type: ignore[arg-type]


def _newest_first(lf: pl.LazyFrame, limit: int | None) -> pl.LazyFrame:
    """Newest first; ties: the later in source order (= the later logged) first."""
    lf = lf.with_row_index("__i").sort(["timestamp", "__i"], descending=True)
    if limit is not None:
        lf = lf.head(limit)
    return lf.drop("__i")


def _may_hold(f: Filters, c: Chunk) -> bool:
    """Zone maps: can chunk `c` hold a match of `f` (by time, and by the times in
    wanted logger-made ids where the chunk's ids embed their times)?"""
    return f.overlaps(c.min_us, c.max_us, f.id_times is not None and c.ids_timed)


@dataclass
class Snapshot:
    """The events one read sees. Source order (oldest source first): Parquet
    files, then `old` chunks, then `live` chunks."""

    live: list[Chunk] = field(default_factory=list)
    old: list[Chunk] = field(default_factory=list)
    folder: "ExportFolder | None" = None
    parts: "list[_Part] | None" = None  # listed at snapshot time; None: list when asked
    exclude: pl.Series | None = None  # event ids of in-flight rotations (their `old` chunks stand for them)
    stats_cache: Any = None  # `_stats.StatsCache` of the store `live` comes from, if any
    events_are_archived: bool = False  # an archive: the SQL view `events` shows every event

    @property
    def chunks(self) -> list[Chunk]:
        return self.old + self.live

    def files(self, f: Filters | None) -> list[Path]:
        if self.folder is None:
            return []
        return self.folder.parquet_files(f, self.parts)

    # ------------------------------------------------------------------ chunks

    @staticmethod
    def _candidates(c: Chunk, f: Filters) -> pl.DataFrame:
        """The chunk's rows that can match: from its index for id and entry
        lookups (then still to be filtered), else the whole chunk."""
        # The growing last chunk changes at every flush: scanning it is cheaper than
        # indexing it again; a full (sealed for good) chunk keeps its index.
        if f.needs_index and (c.height >= CHUNK_ROWS or c.has("index")):
            ix = c.index
            if f.event_ids:
                rows = ix.rows_for_event_hashes(f.event_id_hashes)
            else:
                rows = ix.rows_for_entry_hashes(f.entry_id_hashes)
            return c.df[pl.Series(rows)] if len(rows) else c.df.clear()
        return c.df

    @classmethod
    def _chunk_piece(cls, c: Chunk, f: Filters, expr: pl.Expr | None) -> pl.DataFrame:
        df = cls._candidates(c, f)
        return df.filter(expr) if expr is not None and df.height else df

    def _chunks_lazy(self, f: Filters) -> pl.LazyFrame | None:
        chunks = [c for c in self.chunks if _may_hold(f, c)]
        if not chunks:
            return None
        # One filter over all candidates: polars splits the work, no per-chunk call overhead.
        lf = pl.concat([self._candidates(c, f) for c in chunks], rechunk=False).lazy()
        expr = f.expr()
        return lf.filter(expr) if expr is not None else lf

    def _files_lazy(self, f: Filters) -> pl.LazyFrame | None:
        files = self.files(f)
        if not files:
            return None
        lf = _scan_files(files)
        expr = f.expr()
        if expr is not None:
            lf = lf.filter(expr)
        if self.exclude is not None and self.exclude.len():
            lf = lf.filter(~pl.col("event_id").is_in(self.exclude.implode()))
        return lf

    # ------------------------------------------------------------------ answers

    def lazy(self, f: Filters) -> pl.LazyFrame:
        """Every matching event (no limit), in source order."""
        if f.is_empty:
            return EMPTY_FRAME.lazy()
        parts = [lf for lf in (self._files_lazy(f), self._chunks_lazy(f)) if lf is not None]
        if not parts:
            return EMPTY_FRAME.lazy()
        return parts[0] if len(parts) == 1 else pl.concat(parts, how="vertical")

    def select(self, f: Filters) -> pl.DataFrame:
        """Matching events, newest first, at most `f.limit`."""
        if f.is_empty:
            return EMPTY_FRAME
        if f.limit is not None and (self.folder is None or not self.files(f)):
            return self._top_chunks(f)
        return _newest_first(self.lazy(f), f.limit).collect()

    def _top_chunks(self, f: Filters) -> pl.DataFrame:
        """`limit` newest matches from the chunks, reading chunks newest-first and
        stopping once no unread chunk can hold a newer match (zone maps)."""
        assert f.limit is not None
        expr = f.expr()
        order = sorted(
            (i for i, c in enumerate(self.chunks) if _may_hold(f, c)),
            key=lambda i: self.chunks[i].max_us, reverse=True,
        )
        found: dict[int, pl.DataFrame] = {}
        limit = f.limit
        cut: int | None = None  # the limit-th newest timestamp seen so far
        newest = np.empty(0, np.int64)
        for i in order:
            c = self.chunks[i]
            if cut is not None and c.max_us < cut:
                break
            piece = self._chunk_piece(c, f, expr)
            if piece.height:
                found[i] = piece
                ts = piece["timestamp"].dt.epoch("us").to_numpy()
                newest = np.concatenate([newest, ts])
                if len(newest) >= limit:
                    cut = int(np.partition(newest, len(newest) - limit)[len(newest) - limit])
                    newest = newest[newest >= cut]
        if not found:
            return EMPTY_FRAME
        pieces = [found[i] for i in sorted(found)]  # back to source order for the tie-break
        if cut is not None:  # only rows at least as new as the limit-th newest can be in the answer
            pieces = [p.filter(pl.col("timestamp").dt.epoch("us") >= cut) for p in pieces]
        return _newest_first(pl.concat(pieces, rechunk=False).lazy(), f.limit).collect()

    def guard(self, f: Filters, run: Callable[[], _T]) -> _T:
        """`run()`, which reads this snapshot's files for `f`. A file whose data
        cannot be decoded (found by reading each in full, only after a failure)
        then raises `ArchiveError` naming it, or is skipped with a warning."""
        if self.folder is None:
            return run()
        for _ in range(8):  # each pass finds (at most) one more corrupt file
            try:
                return run()
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # polars may raise a panic on corrupt pages
                if not self.folder.check_readable(self.files(f)):
                    raise
                last = exc
        raise last

    def arrow(self, f: Filters) -> pa.Table:
        """Canonical Arrow, converted piece by piece (a whole-table conversion of
        10 M events would need several full copies at once)."""
        if f.is_empty:
            return to_arrow(EMPTY_FRAME)
        parts = []
        files = self._files_lazy(f)
        if files is not None:
            parts.append(to_arrow(files.collect()))
        expr = f.expr()
        for c in self.chunks:
            if _may_hold(f, c):
                # Per chunk, from the chunk's own buffers: converting slices of one big
                # frame would export the shared string buffers again for every slice.
                piece = self._chunk_piece(c, f, expr)
                if piece.height:
                    parts.append(to_arrow(piece))
        return pa.concat_tables(parts) if parts else to_arrow(EMPTY_FRAME)


class Reader:
    """The read API over a `Snapshot` (implemented by `_snapshot`)."""

    def _snapshot(self, include_archived: bool) -> Snapshot:  # pragma: no cover - abstract
        raise NotImplementedError

    def query_events(
        self,
        user_id: str | Iterable[str] | None = None,
        session_id: str | Iterable[str] | None = None,
        operation: OperationType | str | Iterable[OperationType | str] | None = None,
        status: EventStatus | str | Iterable[EventStatus | str] | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        entry_ids: Iterable[str] | None = None,
        limit: int | None = None,
        *,
        include_archived: bool = False,
        **more: Any,
    ) -> list[AuditEvent]:
        """Events matching every given filter, newest first.

        `operation`, `status`, `user_id` and `session_id` take one value or several;
        `entry_ids` matches events touching any of them; the time bounds are
        inclusive (a naive datetime is local time); `start_time` after `end_time`
        matches nothing. More filters: `event_id`, `metadata={"key": value}`
        (str/int/bool value), `error_contains`, `min_duration_ms`, `max_duration_ms`.
        `include_archived=True` also searches the rotated events (each event once).

        Example:
            >>> from axon_audit import AuditLogger, OperationType
            >>> audit = AuditLogger()
            >>> for op in ("store", "store", "recall"):
            ...     _ = audit.log(op, user_id="user_123", entry_ids=["entry_1"], metadata={"source": "api"})
            >>> len(audit.query_events(user_id="user_123", operation=OperationType.STORE))
            2
            >>> len(audit.query_events(entry_ids=["entry_1", "entry_9"], limit=1))
            1
            >>> len(audit.query_events(metadata={"source": "api"}, operation=["store", "recall"]))
            3
        """
        f = Filters.of(dict(user_id=user_id, session_id=session_id, operation=operation, status=status,
                            start_time=start_time, end_time=end_time, entry_ids=entry_ids, limit=limit, **more))
        _check_flag(include_archived)
        snap = self._snapshot(include_archived)
        return frame_to_events(snap.guard(f, lambda: snap.select(f)))

    async def get_events(self, **filters: Any) -> list[AuditEvent]:
        """`query_events` for async code (runs in a worker thread)."""
        return await asyncio.to_thread(self.query_events, **filters)

    def get_event(self, event_id: str, *, include_archived: bool = False) -> AuditEvent | None:
        """The event with this id, or None; answered from the chunk indexes (and,
        for archived events, from the Parquet row groups whose id range holds it).

        Example:
            >>> from axon_audit import AuditLogger
            >>> audit = AuditLogger()
            >>> e = audit.log("forget", user_id="u1", entry_ids=["e1"])
            >>> audit.get_event(e.event_id) == e, audit.get_event("evt_nope")
            (True, None)
        """
        if not isinstance(event_id, str):
            raise AuditTypeError(f"event_id must be a str, got {type(event_id).__name__}")
        _check_flag(include_archived)
        snap, f = self._snapshot(include_archived), Filters.build(event_id=event_id, limit=1)
        found = snap.guard(f, lambda: snap.select(f))
        return frame_to_events(found)[0] if found.height else None

    def scan(self, *, include_archived: bool = False, **filters: Any) -> pl.LazyFrame:
        """The events matching `filters` (as `query_events`, without `limit`) as a
        polars LazyFrame over the in-memory chunks (and the Parquet files), in
        logging order.

        Example:
            >>> import polars as pl
            >>> from axon_audit import AuditLogger
            >>> audit = AuditLogger()
            >>> _ = audit.log("store", user_id="u1"); _ = audit.log("recall", user_id="u2")
            >>> audit.scan(operation="store").select(pl.len()).collect().item()
            1
        """
        _check_flag(include_archived)
        return self._snapshot(include_archived).lazy(Filters.of(filters, allow_limit=False))

    def to_arrow(self, *, include_archived: bool = False, **filters: Any) -> pa.Table:
        """The events matching `filters` as a pyarrow Table in the canonical schema
        (`ARROW_SCHEMA`), in logging order.

        Example:
            >>> from axon_audit import AuditLogger
            >>> audit = AuditLogger()
            >>> _ = audit.log("store", user_id="u1")
            >>> audit.to_arrow(user_id="u1").num_rows
            1
        """
        _check_flag(include_archived)
        snap, f = self._snapshot(include_archived), Filters.of(filters, allow_limit=False)
        return snap.guard(f, lambda: snap.arrow(f))

    def sql(self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pl.DataFrame:
        """Run DuckDB SQL over the views `events` (in memory), `archived` (rotated:
        the Parquet files and rotations still being written) and `all_events`
        (both, each event once). Pass values as `params` (`?` or `$name`), never
        in the query text. Thread-safe. `sql_arrow` returns Arrow instead.

        Example:
            >>> from axon_audit import AuditLogger
            >>> audit = AuditLogger()
            >>> _ = audit.log("store", user_id="u1", duration_ms=5.0)
            >>> audit.sql("SELECT user_id, sum(duration_ms) AS ms FROM events WHERE operation = ? GROUP BY 1",
            ...           ["STORE"]).rows()
            [('u1', 5.0)]
        """
        from ._sql import run_sql

        return pl.from_arrow(run_sql(self._snapshot(True), query, params))  # type: ignore[return-value]

    def sql_arrow(self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pa.Table:
        """`sql`, returning a pyarrow Table.

        Example:
            >>> from axon_audit import AuditLogger
            >>> AuditLogger().sql_arrow("SELECT count(*) AS n FROM all_events").to_pylist()
            [{'n': 0}]
        """
        from ._sql import run_sql

        return run_sql(self._snapshot(True), query, params)

    def get_statistics(self, *, include_archived: bool = False) -> dict[str, Any]:
        """Statistics over the events in memory (and the rotated ones with
        `include_archived=True`).

        Example:
            >>> from axon_audit import AuditLogger
            >>> audit = AuditLogger()
            >>> _ = audit.log("store", duration_ms=10.0); _ = audit.log("recall", status="failure", duration_ms=30.0)
            >>> s = audit.get_statistics()
            >>> s["total_events"], s["success_rate"], s["avg_duration_ms"]
            (2, 0.5, 20.0)
        """
        from ._stats import snapshot_statistics

        _check_flag(include_archived)
        snap = self._snapshot(include_archived)
        return snap.guard(Filters(), lambda: snapshot_statistics(snap))

    def get_user_statistics(self, user_id: str, *, include_archived: bool = False) -> dict[str, Any]:
        """One user's activity over the events in memory (and the rotated ones with
        `include_archived=True`).

        Example:
            >>> from axon_audit import AuditLogger
            >>> audit = AuditLogger()
            >>> _ = audit.log("store", user_id="u1"); _ = audit.log("store", user_id="u1")
            >>> audit.get_user_statistics("u1")["most_common_operation"]
            'STORE'
        """
        from ._stats import user_statistics

        if not isinstance(user_id, str):
            raise AuditTypeError(f"user_id must be a str, got {type(user_id).__name__}")
        _check_flag(include_archived)
        # One pass picks the user's rows; the statistics then read only those.
        snap, f = self._snapshot(include_archived), Filters.build(user_id=user_id)
        rows = snap.guard(f, lambda: snap.lazy(f).collect())
        return user_statistics(rows.lazy(), user_id)

    def export_to_file(self, path: str | Path, *, include_archived: bool = False, **filters: Any) -> int:
        """Write the events matching `filters` (as `query_events`) to `path` in the
        export format, oldest first; return how many were written.

        Example:
            >>> import tempfile, pathlib
            >>> from axon_audit import AuditLogger
            >>> audit = AuditLogger()
            >>> _ = audit.log("store", user_id="user_123")
            >>> audit.export_to_file(pathlib.Path(tempfile.mkdtemp()) / "trail.json", user_id="user_123")
            1
        """
        path = _as_target(path, getattr(self, "_storage_options", None))
        _check_flag(include_archived)
        snap, f = self._snapshot(include_archived), Filters.of(filters)
        df = snap.guard(f, lambda: snap.select(f)).reverse()
        write_json_export(df, path)
        return df.height

    async def export_to_json(
        self, path: str | Path, start_time: datetime | None = None, end_time: datetime | None = None,
        *, include_archived: bool = False,
    ) -> int:
        """The older API's export (runs in a worker thread)."""
        return await asyncio.to_thread(self.export_to_file, path, start_time=start_time, end_time=end_time,
                                       include_archived=include_archived)


def _check_flag(value: Any) -> None:
    if not isinstance(value, bool):
        raise AuditTypeError(f"include_archived must be a bool, got {type(value).__name__}")


def _as_path(path: Any) -> Path:
    if not isinstance(path, (str, Path)):
        raise AuditTypeError(f"path must be a str or Path, got {type(path).__name__}")
    return Path(path)


def _as_target(path: Any, storage_options: Any = None) -> Any:
    """Where an export goes: a local path stays a `Path`; a URI (`file://`,
    `s3://`) becomes a `Location` (with the logger's `storage_options`)."""
    if isinstance(path, str) and "://" in path:
        from ._fs import resolve

        loc = resolve(path, storage_options=storage_options)
        return loc.local_path() if loc.is_local else loc
    return _as_path(path)

