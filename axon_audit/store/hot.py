"""The hot store: sealed polars frames (chunks) with per-chunk time bounds.

Chunks are immutable once sealed, so a reader can hold a snapshot of the list and
filter it with no lock while logging goes on; whatever a reader derives from a
chunk (its lookup index, its statistics aggregate, its Arrow form) is computed
once and kept on the chunk. Small appends (a read flushes whatever the buffer
holds) are merged into the last chunk up to `CHUNK_ROWS`; big batches are cut
into chunks of `CHUNK_ROWS`, so time bounds keep pruning.

When a chunk is full, the background sealer stores its texts once per distinct
value (`compact`), derives its lookup index and its per-user summary
(`user_summary`), then hands the store's chunks up to it to `HotStore.on_seal`
(the logger's running statistics, `statistics.StatsCache`), so statistics calls
find only the growing last chunk left to summarize. While the store is small
(`row_statistics.SMALL_STATS` events), each chunk appended by a batch or a size
flush (not a read's flush: that read derives what it needs) gets its statistics
answers made on the same thread (`Chunk.small`), and a chunk of at most
`row_compiler.SMALL_ROWS` events its row tuples for queries (`Chunk.row_tuples`).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import polars as pl

from axon_audit.model.frame_rows import rows_of
from axon_audit.query.row_compiler import SMALL_ROWS
from axon_audit.store.compact import compact
from axon_audit.store.index import ChunkIndex
from axon_audit.store.row_statistics import SMALL_STATS, RowColumns, SmallAnswers
from axon_audit.store.user_summary import UserSummary

CHUNK_ROWS = 131_072
MAX_PIECES = 16  # Arrow chunks per store chunk before they are merged into one

_derive_lock = threading.Lock()
_sealer: ThreadPoolExecutor | None = None


_sealing: list[Any] = []


def wait_sealed() -> None:
    """Wait until every chunk handed to the background sealer is sealed (benchmarks)."""
    from concurrent.futures import wait

    with _derive_lock:
        pending = list(_sealing)
        _sealing.clear()
    wait(pending)


def _seal_then(chunk: Chunk | None, on_seal: Callable[[list[Chunk]], None] | None,
               prefix: list[weakref.ref[Chunk]]) -> None:
    if chunk is not None:
        chunk.seal()
    chunks = [r() for r in prefix]
    if on_seal is not None and all(c is not None for c in chunks):  # else: rotated or trimmed away meanwhile
        on_seal(chunks)  # type: ignore[arg-type]


def _seal_in_background(chunk: Chunk | None, on_seal: Callable[[list[Chunk]], None] | None = None,
                        prefix: Sequence[Chunk] = ()) -> None:
    """Derive what readers need of a full chunk (lookup index, per-user summary) off
    the logging path, then hand `prefix` (the store's chunks up to it) to `on_seal`
    (the running statistics): one background thread, in sealing order; polars and
    numpy do the work outside the GIL. `chunk` None: only `on_seal` (after a trim)."""
    # Weak references: a rotation frees its chunks at once, the pending seal does not hold them.
    _submit(_seal_then, chunk, on_seal, [weakref.ref(c) for c in prefix])


def _submit(fn: Callable[..., None], *args: Any) -> None:
    """Run `fn(*args)` on the sealer's thread (started on first use), after what is queued there."""
    global _sealer
    with _derive_lock:
        if _sealer is None:
            _sealer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="axon-audit-seal")
    try:
        future = _sealer.submit(fn, *args)
        with _derive_lock:
            _sealing[:] = [f for f in _sealing if not f.done()] + [future]
    except RuntimeError:  # interpreter shutdown: readers will build what they need
        pass


def _rows_and_ids(df: pl.DataFrame) -> tuple[list[Any], list[str]]:
    return rows_of(df), df["event_id"].to_list()


def _answer_small(ref: weakref.ref[Chunk]) -> None:
    chunk = ref()
    if chunk is not None:
        chunk.small  # noqa: B018 - derived and kept on the chunk
        if chunk.height <= SMALL_ROWS:  # a query's answer from rows, no polars plan
            chunk.row_tuples  # noqa: B018 - derived and kept on the chunk


def _small_in_background(chunk: Chunk) -> None:
    """Make a small store's new chunk's statistics answers (`Chunk.small`) off the
    logging path, on the sealer's thread: a first read then finds them made."""
    _submit(_answer_small, weakref.ref(chunk))  # weak: a chunk merged into a newer one meanwhile is not kept


def _ids_timed(df: pl.DataFrame) -> bool:
    eid = pl.col("event_id")
    ts = pl.col("timestamp").dt.epoch("us").cast(pl.String).str.zfill(16)
    ok = eid.str.starts_with("evt_") & (eid.str.slice(4, 16) == ts) & eid.str.slice(4, 16).str.contains(r"^\d{16}$")
    return bool(df.select(ok.all()).item())


class Chunk:
    """One sealed frame, its time bounds ([min_us, max_us], UTC microseconds) and
    what readers derived from it."""

    __slots__ = ("__weakref__", "_derived", "df", "max_us", "min_us")

    def __init__(self, df: pl.DataFrame, min_us: int, max_us: int) -> None:
        self.df = df
        self.min_us = min_us
        self.max_us = max_us
        self._derived: dict[str, Any] = {}

    @classmethod
    def of(cls, df: pl.DataFrame) -> Chunk:
        ts = df["timestamp"].dt.epoch("us")
        return cls(df, int(ts.min()), int(ts.max()))  # type: ignore[arg-type]

    @property
    def height(self) -> int:
        return self.df.height

    def derived(self, name: str, make: Callable[[pl.DataFrame], Any]) -> Any:
        """`make(df)`, computed once per chunk (two racing readers may both compute it)."""
        got = self._derived.get(name)
        if got is None:
            got = make(self.df)
            with _derive_lock:
                got = self._derived.setdefault(name, got)
        return got

    def has(self, name: str) -> bool:
        """Has `name` been derived already?"""
        return name in self._derived

    @property
    def index(self) -> Any:
        return self.derived("index", ChunkIndex)

    @property
    def ids_timed(self) -> bool:
        """Does every event id here embed its event's own timestamp (as the
        logger's ids do)? Then an id lookup can skip chunks by time."""
        return self.derived("ids_timed", _ids_timed)

    @property
    def rows(self) -> RowColumns:
        """The columns statistics read, as Python lists (small stores only: see `row_statistics`)."""
        return self.derived("rows", RowColumns)

    @property
    def small(self) -> SmallAnswers:
        """Its statistics answers in plain Python (small stores only: see `row_statistics`)."""
        return self.derived("small", lambda df: SmallAnswers(self.rows))

    @property
    def answers(self) -> SmallAnswers | None:
        """`small` if made already, else None."""
        return self._derived.get("small")

    @property
    def row_tuples(self) -> tuple[list[Any], list[str]]:
        """The chunk's rows as row tuples and their ids (small stores' queries: see
        `query.row_compiler`); kept on the chunk, so only asked of chunks of at most
        `row_compiler.SMALL_ROWS` events."""
        return self.derived("row_tuples", _rows_and_ids)

    @property
    def users(self) -> UserSummary:
        """Per-user counts, durations, times and sessions (`get_user_statistics`)."""
        return self.derived("users", UserSummary.of)

    def compact(self) -> None:
        """Store the chunk's texts once per distinct value (`store.compact`), once."""
        if "compact" not in self._derived:
            self.df = compact(self.df)
            self._derived["compact"] = True

    def seal(self) -> None:
        """Store the full chunk's texts once per distinct value (`compact`: the same
        values, in the same rows), then derive what its readers need: its lookup index
        and user summary. A reader holding the frame from before keeps an equal one."""
        self.compact()
        self.derived("index", ChunkIndex)
        self.derived("ids_timed", _ids_timed)
        self.derived("users", UserSummary.of)


class HotStore:
    """Not thread-safe by itself: the logger serializes writers with its store lock."""

    def __init__(self) -> None:
        self.chunks: list[Chunk] = []
        self.count = 0
        # Called by the background sealer with the store's chunks up to one just sealed.
        self.on_seal: Callable[[list[Chunk]], None] | None = None

    def append(self, df: pl.DataFrame, for_read: bool = False) -> None:
        """Add `df`'s events. `for_read`: a read's flush (that read will derive what it
        needs itself); else a small store's new chunk gets its statistics answers made
        in the background (`Chunk.small`)."""
        if df.height == 0:
            return
        chunks = self.chunks
        self.count += df.height
        if chunks and chunks[-1].height + df.height <= CHUNK_ROWS:
            last = chunks[-1]
            new = Chunk.of(df)
            # Appending Arrow chunks is zero-copy; copying the whole chunk on every flush
            # cost O(CHUNK_ROWS) per flush (measured: ~15% of the logging path). Copy only
            # when many small pieces (reads flush whatever is buffered) have gathered.
            merged = pl.concat([last.df, df], rechunk=last.df.n_chunks() >= MAX_PIECES)
            chunks[-1] = Chunk(merged, min(last.min_us, new.min_us), max(last.max_us, new.max_us))
        else:
            first = len(chunks)
            for start in range(0, df.height, CHUNK_ROWS):
                chunks.append(Chunk.of(df.slice(start, CHUNK_ROWS).rechunk()))
            # Sealed once the batch is in: a sealer running beside the loop above takes the GIL
            # from it at every step.
            for i in range(max(first - 1, 0), len(chunks) - 1):  # these will not grow any more
                _seal_in_background(chunks[i], self.on_seal, chunks[: i + 1])
            if df.height > CHUNK_ROWS:  # a slice of the batch's buffers: compacted, it no longer holds them all
                _submit(Chunk.compact, chunks[-1])
        if self.count <= SMALL_STATS and not for_read:
            _small_in_background(chunks[-1])

    def take_all(self) -> list[Chunk]:
        chunks, self.chunks, self.count = self.chunks, [], 0
        return chunks

    def keep_newest(self, n: int) -> int:
        """Drop all but the `n` most recently logged events; return how many went."""
        drop = self.count - n
        if drop <= 0:
            return 0
        left = drop
        while left and self.chunks:
            first = self.chunks[0]
            if first.height <= left:
                self.chunks.pop(0)
                left -= first.height
            else:
                self.chunks[0] = Chunk.of(first.df.slice(left))
                left = 0
        self.count = n
        if len(self.chunks) > 1 and self.on_seal is not None:  # rebuild the running statistics off the logging path
            _seal_in_background(self.chunks[0], self.on_seal, self.chunks[:-1])
        return drop
