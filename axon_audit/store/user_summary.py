"""Per-user summaries of one chunk, and `get_user_statistics` from them.

A chunk's `UserSummary` (built by the background sealer when the chunk is full,
else on the first read; chunks never change) holds, per distinct user, what a
user's statistics need: counts by operation x status, the sum and count of the
known durations, first and last timestamp, and the 64-bit hashes of the user's
distinct sessions (one flat array with offsets). A user's statistics then add up
one row per chunk instead of filtering every event (`user_statistics_of`).

Users are found exactly: by name in a dict while a chunk has few distinct users
(`_DICT_USERS`), else by a binary search over hashes of the names, checked
against the name itself. Distinct sessions are counted by hash, as in
`statistics` (a collision would undercount by one). Cost: a few bytes per event
(`nbytes`), e.g. ~1 B/event with 1 000 users over a 131 072-event chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from axon_audit.model.enums import OPERATIONS, STATUSES
from axon_audit.model.timestamps import from_us
from axon_audit.store.index import hashes_of, key_hashes

__all__ = ["UserSummary", "user_statistics_of"]

_NOP, _NST = len(OPERATIONS), len(STATUSES)
_DICT_USERS = 4096  # a name -> row dict up to this many distinct users per chunk (~100 B per user)
_CODE = (pl.col("operation").to_physical().cast(pl.Int32) * _NST + pl.col("status").to_physical().cast(pl.Int32))


class UserSummary:
    """One chunk's per-user rows (row i: one distinct non-null user)."""

    __slots__ = ("by_name", "counts", "dcnt", "dsum", "first", "hashes", "last", "names", "sessions", "soff")

    def __init__(self, names: pl.Series, counts: np.ndarray, dsum: np.ndarray, dcnt: np.ndarray,
                 first: np.ndarray, last: np.ndarray, soff: np.ndarray, sessions: np.ndarray) -> None:
        self.names = names  # String, row order
        self.counts = counts  # int32[users, operations x statuses]
        self.dsum = dsum  # float64: sum of the user's known durations
        self.dcnt = dcnt  # int64: how many are known
        self.first = first  # int64 UTC microseconds
        self.last = last
        self.soff = soff  # int64[users + 1]: row i's sessions are sessions[soff[i]:soff[i + 1]]
        self.sessions = sessions  # uint64 hashes, unique per row
        self.by_name: dict[str, int] | None = None
        self.hashes: np.ndarray | None = None  # uint64, ascending (rows are sorted by it), when no dict
        if names.len() <= _DICT_USERS:
            self.by_name = {name: i for i, name in enumerate(names.to_list())}

    @classmethod
    def of(cls, df: pl.DataFrame) -> UserSummary:
        """Summarize the events of `df` (hot-frame columns) by user.

        Example:
            >>> from axon_audit.workload import generate_events
            >>> from axon_audit.model.schema import normalize_batch
            >>> s = UserSummary.of(normalize_batch(generate_events(100, seed=1, n_users=3)))
            >>> s.names.len(), int(s.counts.sum())
            (3, 100)
        """
        user = pl.col("user_id")
        lf = df.lazy().filter(user.is_not_null())
        ts = pl.col("timestamp").dt.epoch("us")
        g = (lf.with_columns(_CODE.alias("__c")).group_by("user_id").agg(
            *[(pl.col("__c") == k).sum().alias(f"c{k}") for k in range(_NOP * _NST)],
            pl.col("duration_ms").sum().alias("dsum"),
            pl.col("duration_ms").count().alias("dcnt"),
            ts.min().alias("first"), ts.max().alias("last"),
        ).collect())
        names = g["user_id"].cast(pl.String)
        h = key_hashes(names)
        order = np.argsort(h, kind="stable")
        g, names, h = g[order], names.gather(order), h[order]
        pairs = lf.filter(pl.col("session_id").is_not_null()).select("user_id", "session_id").unique().collect()
        row = np.searchsorted(h, key_hashes(pairs["user_id"]))
        if len(h) and np.any(h[1:] == h[:-1]):  # two users, one hash: map by name instead (never seen)
            row = pairs.select(pl.col("user_id").cast(pl.String).replace_strict(
                names, pl.int_range(names.len(), eager=True), return_dtype=pl.Int64))["user_id"].to_numpy()
        sh = key_hashes(pairs["session_id"])
        o = np.lexsort((sh, row))
        row, sh = row[o], sh[o]
        summary = cls(
            names,
            g.select(f"c{k}" for k in range(_NOP * _NST)).to_numpy().astype(np.int32).reshape(-1, _NOP * _NST),
            g["dsum"].to_numpy().astype(np.float64), g["dcnt"].to_numpy().astype(np.int64),
            g["first"].to_numpy().astype(np.int64), g["last"].to_numpy().astype(np.int64),
            np.searchsorted(row, np.arange(len(h) + 1)).astype(np.int64), sh,
        )
        if summary.by_name is None:
            summary.hashes = h
        return summary

    def find(self, user_id: str, h: int | None) -> int | None:
        """The row of `user_id` (h: its `key_hashes` value, needed without the dict), if here."""
        if self.by_name is not None:
            return self.by_name.get(user_id)
        assert self.hashes is not None and h is not None
        hashes = self.hashes
        i = int(np.searchsorted(hashes, h))
        while i < len(hashes) and hashes[i] == h:  # equal hashes: the name decides
            if self.names[i] == user_id:
                return i
            i += 1
        return None

    @property
    def nbytes(self) -> int:
        """Bytes held (numpy buffers, the names' Arrow buffers, the dict's estimated size)."""
        arrays = (self.counts, self.dsum, self.dcnt, self.first, self.last, self.soff, self.sessions, self.hashes)
        total = sum(a.nbytes for a in arrays if a is not None) + int(self.names.estimated_size())
        if self.by_name is not None:
            total += 100 * len(self.by_name)  # dict slot + str object, measured ~90-110 B
        return total


def user_statistics_of(summaries: Sequence[UserSummary], user_id: str) -> dict[str, Any]:
    """`statistics.user_statistics` of `user_id` from the summaries of every chunk.

    Example:
        >>> from axon_audit.workload import generate_events
        >>> from axon_audit.model.schema import normalize_batch
        >>> s = UserSummary.of(normalize_batch(generate_events(10, seed=1, n_users=1)))
        >>> user_statistics_of([s, s], s.names[0])["total_operations"]
        20
    """
    h = None if all(s.by_name is not None for s in summaries) else int(hashes_of((user_id,))[0])
    counts = np.zeros(_NOP * _NST, np.int64)
    dsum, dcnt = 0.0, 0
    first: int | None = None
    last: int | None = None
    sessions = []
    for s in summaries:  # one step per chunk, not per event
        i = s.find(user_id, h)
        if i is None:
            continue
        counts += s.counts[i]
        dsum += float(s.dsum[i])
        dcnt += int(s.dcnt[i])
        f, la = int(s.first[i]), int(s.last[i])
        first = f if first is None else min(first, f)
        last = la if last is None else max(last, la)
        sessions.append(s.sessions[s.soff[i]:s.soff[i + 1]])
    grid = counts.reshape(_NOP, _NST)
    by_op = dict(zip(OPERATIONS, grid.sum(axis=1).tolist(), strict=True))
    by_status = dict(zip(STATUSES, grid.sum(axis=0).tolist(), strict=True))
    total = int(counts.sum())
    if len(sessions) == 1:
        n_sessions = len(sessions[0])  # unique within a chunk already
    else:
        n_sessions = len(np.unique(np.concatenate(sessions))) if sessions else 0
    # Ties go to the operation listed first in OperationType: deterministic.
    most_common = max(OPERATIONS, key=lambda op: (by_op[op], -OPERATIONS.index(op))) if total else None
    return {
        "user_id": user_id,
        "total_operations": total,
        "first_activity": None if first is None else from_us(first),
        "last_activity": None if last is None else from_us(last),
        "most_common_operation": most_common,
        "by_operation": by_op,
        "by_status": by_status,
        "success_rate": by_status["SUCCESS"] / total if total else 1.0,
        "failure_count": by_status["FAILURE"],
        "avg_duration_ms": dsum / dcnt if dcnt else 0.0,
        "unique_sessions": n_sessions,
    }
