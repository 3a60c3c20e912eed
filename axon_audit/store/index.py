"""Lookup indexes of one sealed chunk: event id -> row and entry id -> rows.

Each index is a sorted array of 64-bit hashes of the keys with the row each came
from (12 bytes per key). A lookup is a binary search per key, then the rows found
are checked against the real filter, so a hash collision can never return a
wrong event. Built once per chunk (chunks never change) and shared by readers.
"""

from __future__ import annotations

import numpy as np
import polars as pl

__all__ = ["ChunkIndex", "hashes_of", "key_hashes"]

_SEED = 0x5EED


def key_hashes(keys: pl.Series) -> np.ndarray:
    """The 64-bit hashes the index is sorted by (same function at build and lookup)."""
    return keys.cast(pl.String).hash(seed=_SEED).to_numpy()


def hashes_of(keys: tuple[str, ...]) -> np.ndarray:
    return key_hashes(pl.Series(keys, dtype=pl.String))


class _Sorted:
    __slots__ = ("hashes", "rows")

    def __init__(self, keys: pl.Series, rows: np.ndarray) -> None:
        h = key_hashes(keys)
        order = np.argsort(h, kind="stable")
        self.hashes = h[order]
        self.rows = rows[order]

    def find(self, q: np.ndarray) -> np.ndarray:
        lo = np.searchsorted(self.hashes, q, "left")
        hi = np.searchsorted(self.hashes, q, "right")
        hits = [self.rows[a:b] for a, b in zip(lo.tolist(), hi.tolist(), strict=True) if b > a]
        if not hits:
            return np.empty(0, np.uint32)
        return np.unique(np.concatenate(hits))


class ChunkIndex:
    """Both indexes of one chunk frame.

    Example:
        >>> import polars as pl
        >>> from axon_audit.store.index import ChunkIndex
        >>> df = pl.DataFrame({"event_id": ["a", "b", "c"], "entry_ids": [["x"], [], ["x", "y"]]})
        >>> ix = ChunkIndex(df)
        >>> ix.rows_for_events(("c",)).tolist(), ix.rows_for_entries(("x", "z")).tolist()
        ([2], [0, 2])
    """

    __slots__ = ("_entries", "_ids")

    def __init__(self, df: pl.DataFrame) -> None:
        self._ids = _Sorted(df["event_id"], np.arange(df.height, dtype=np.uint32))
        exploded = (
            df.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("row"), "entry_ids")
            .explode("entry_ids")
            .drop_nulls("entry_ids")
        )
        self._entries = _Sorted(exploded["entry_ids"], exploded["row"].to_numpy())

    def rows_for_events(self, event_ids: tuple[str, ...]) -> np.ndarray:
        """Candidate rows (sorted) whose event id may be one of `event_ids`."""
        return self._ids.find(hashes_of(event_ids))

    def rows_for_entries(self, entry_ids: tuple[str, ...]) -> np.ndarray:
        """Candidate rows (sorted) that may touch one of `entry_ids`."""
        return self._entries.find(hashes_of(entry_ids))

    def rows_for_event_hashes(self, hashes: np.ndarray) -> np.ndarray:
        """`rows_for_events` with the keys hashed already (`hashes_of`), once per query."""
        return self._ids.find(hashes)

    def rows_for_entry_hashes(self, hashes: np.ndarray) -> np.ndarray:
        """`rows_for_entries` with the keys hashed already (`hashes_of`), once per query."""
        return self._entries.find(hashes)
