"""The hot store: sealed polars frames (chunks) with per-chunk time bounds.

Chunks are immutable once sealed, so a reader can hold a snapshot of the list and
filter it with no lock while logging goes on. Small chunks (a read flushes
whatever the buffer holds) are merged into the last one up to `CHUNK_ROWS`.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

CHUNK_ROWS = 131_072


@dataclass(frozen=True, slots=True)
class Chunk:
    df: pl.DataFrame
    min_us: int
    max_us: int

    @classmethod
    def of(cls, df: pl.DataFrame) -> "Chunk":
        ts = df["timestamp"].dt.epoch("us")
        return cls(df, int(ts.min()), int(ts.max()))  # type: ignore[arg-type]

    @property
    def height(self) -> int:
        return self.df.height


class HotStore:
    """Not thread-safe by itself: the logger serializes writers with its store lock."""

    def __init__(self) -> None:
        self.chunks: list[Chunk] = []
        self.count = 0

    def append(self, df: pl.DataFrame) -> None:
        if df.height == 0:
            return
        chunks = self.chunks
        if chunks and chunks[-1].height + df.height <= CHUNK_ROWS:
            last = chunks[-1]
            merged = pl.concat([last.df, df], rechunk=True)
            chunks[-1] = Chunk(merged, min(last.min_us, Chunk.of(df).min_us), max(last.max_us, Chunk.of(df).max_us))
        else:
            chunks.append(Chunk.of(df.rechunk()))
        self.count += df.height

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
        return drop
