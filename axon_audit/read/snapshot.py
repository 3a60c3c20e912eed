"""What a read sees: `Snapshot`, taken at one instant.

The live chunks, the chunks of older events held in memory (a rotation still
being written, or loaded JSON exports), and the Parquet files on disk. When a
rotation is being written, its files may be partly on disk already: rows of
files whose event id belongs to such an in-flight rotation are left out (its
chunks stand for them), so every event is seen once. Answers come newest first
(zone maps skip chunks, `date=` partitions skip files, the chunk index answers
id and entry lookups, `limit` stops early), as LazyFrames or Arrow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads

from axon_audit.io.location import Location
from axon_audit.model.schema import ARROW_SCHEMA, COLUMNS, EMPTY_FRAME, FRAME_SCHEMA, to_arrow
from axon_audit.query.filters import Filters
from axon_audit.query.row_compiler import SMALL_ROWS
from axon_audit.store.hot import CHUNK_ROWS, Chunk

__all__ = ["FileSource", "Snapshot", "files_dataset", "newest_first"]

_CAST = dict(FRAME_SCHEMA)
_T = TypeVar("_T")


class FileSource(Protocol):
    """The files behind a snapshot (an export folder): what a read needs of it."""

    def parquet_files(self, f: Filters | None = None, parts: list[Any] | None = None) -> list[Any]: ...

    def check_readable(self, files: list[Any]) -> bool: ...


def files_dataset(files: list) -> pads.Dataset:
    """Object-storage files (`Location`s on one filesystem) as one pyarrow dataset:
    polars and DuckDB read it through pyarrow's filesystem (no httpfs needed)."""
    return pads.dataset([f.path for f in files], schema=ARROW_SCHEMA, format="parquet", filesystem=files[0].fs)


def _scan_files(files: list) -> pl.LazyFrame:
    if files and isinstance(files[0], Location):
        return pl.scan_pyarrow_dataset(files_dataset(files)).select(COLUMNS).cast(_CAST)  # type: ignore[arg-type]
    # glob=False: the paths are listed files, read by name (a folder may be named `audit[eu]`).
    return pl.scan_parquet(files, hive_partitioning=False, glob=False).select(COLUMNS).cast(_CAST)  # type: ignore[arg-type]


def newest_first(lf: pl.LazyFrame, limit: int | None) -> pl.LazyFrame:
    """Newest first; ties: the later in source order (= the later logged) first."""
    lf = lf.with_row_index("__i").sort(["timestamp", "__i"], descending=True)
    if limit is not None:
        lf = lf.head(limit)
    return lf.drop("__i")


def _matches(df: pl.DataFrame, expr: pl.Expr | None) -> tuple[np.ndarray, np.ndarray]:
    """The rows of `df` matching `expr` (all, for None) and their times (µs): only the
    columns `expr` reads and the timestamp are touched."""
    if expr is None:
        return np.arange(df.height, dtype=np.int64), df["timestamp"].dt.epoch("us").to_numpy()
    hit = df.lazy().with_row_index("__i").filter(expr).select(
        pl.col("__i").cast(pl.Int64), pl.col("timestamp").dt.epoch("us")).collect()
    return hit["__i"].to_numpy(), hit["timestamp"].to_numpy()


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
    folder: FileSource | None = None
    parts: list[Any] | None = None  # listed at snapshot time; None: list when asked
    exclude: pl.Series | None = None  # event ids of in-flight rotations (their `old` chunks stand for them)
    stats_cache: Any = None  # `_stats.StatsCache` of the store `live` comes from, if any
    events_are_archived: bool = False  # an archive: the SQL view `events` shows every event
    rows: list[Any] | None = None  # a small logger's whole answer as buffered row tuples (`query_events` only)
    refresh: Callable[[], list[Chunk]] | None = None  # the store's live chunks now (a newer `live`)
    small: Any = None  # `row_statistics.SmallAnswers` of a small store's one chunk, made already (statistics only)

    @property
    def chunks(self) -> list[Chunk]:
        return self.old + self.live

    def small_rows(self) -> tuple[list[Any], list[str]] | None:
        """The row tuples and ids of every event, when all of them are in at most
        `SMALL_ROWS` events of memory chunks (no files, no rotation in flight), else None."""
        if self.folder is not None or self.old or self.exclude is not None or not self.live:
            return None
        if sum(c.height for c in self.live) > SMALL_ROWS:
            return None
        if len(self.live) == 1:
            return self.live[0].row_tuples
        rows: list[Any] = []
        ids: list[str] = []
        for c in self.live:
            r, i = c.row_tuples
            rows += r
            ids += i
        return rows, ids

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
        scan = getattr(self.folder, "scan", None)  # a Delta lake reads its version through delta-rs
        lf = scan(f, self.parts) if scan is not None else _scan_files(files)
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
        return newest_first(self.lazy(f), f.limit).collect()

    def _top_chunks(self, f: Filters) -> pl.DataFrame:
        """`limit` newest matches from the chunks, reading chunks newest-first and
        stopping once no unread chunk can hold a newer match (zone maps). Only the
        matches' positions and times are read until the answer is known: the other
        columns are gathered for its rows alone, already in its order."""
        assert f.limit is not None
        expr = f.expr()
        chunks = self.chunks
        order = sorted((i for i, c in enumerate(chunks) if _may_hold(f, c)),
                       key=lambda i: chunks[i].max_us, reverse=True)
        limit = f.limit
        cut: int | None = None  # the limit-th newest timestamp seen so far
        newest = np.empty(0, np.int64)
        sources: dict[int, pl.DataFrame] = {}
        found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (chunk position, row, µs) of matches
        for i in order:
            c = chunks[i]
            if cut is not None and c.max_us < cut:
                break
            src = self._candidates(c, f)
            rows, ts = _matches(src, expr)
            if len(rows):
                sources[i] = src
                found.append((np.full(len(rows), i, np.int64), rows, ts))
                newest = np.concatenate([newest, ts])
                if len(newest) >= limit:
                    cut = int(np.partition(newest, len(newest) - limit)[len(newest) - limit])
                    newest = newest[newest >= cut]
        if not found:
            return EMPTY_FRAME
        pos, rows, ts = (np.concatenate(a) for a in zip(*found, strict=True))
        if cut is not None:  # only rows at least as new as the limit-th newest can be in the answer
            keep = ts >= cut
            pos, rows, ts = pos[keep], rows[keep], ts[keep]
        # Newest first; ties: the later in source order (chunk, then row) first.
        top = np.lexsort((rows, pos, ts))[::-1][:limit]
        pos, rows = pos[top], rows[top]
        if (pos == pos[0]).all():
            return sources[int(pos[0])][rows]
        by_chunk = np.argsort(pos, kind="stable")  # one gather per chunk, then the answer's order
        pieces = pl.concat([sources[int(p)][rows[pos == p]] for p in np.unique(pos)], rechunk=True)
        back = np.empty(len(pos), np.int64)
        back[by_chunk] = np.arange(len(pos))
        return pieces[back]

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
