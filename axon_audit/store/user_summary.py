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
(`nbytes`): see benchmarks/stats_sizes.py.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from axon_audit.model.enums import OPERATIONS, STATUSES
from axon_audit.model.timestamps import from_us
from axon_audit.store.index import hashes_of, key_hashes
from axon_audit.store.row_statistics import SMALL_STATS, RowColumns

__all__ = ["UserSummary", "one_user", "user_statistics_of"]

_NOP, _NST = len(OPERATIONS), len(STATUSES)
_DICT_USERS = 256  # a name -> row dict up to this many distinct users per chunk (~100 B per user)
_OP_CODE = {op: i for i, op in enumerate(OPERATIONS)}
_STATUS_CODE = {st: i for i, st in enumerate(STATUSES)}
_CODE = (pl.col("operation").to_physical().cast(pl.Int32) * _NST + pl.col("status").to_physical().cast(pl.Int32))


class UserSummary:
    """One chunk's per-user rows (row i: one distinct non-null user)."""

    __slots__ = ("by_name", "codes", "coff", "dcnt", "dsum", "first", "hashes", "last", "names", "ns", "sessions",
                 "soff")

    def __init__(self, names: pl.Series, coff: np.ndarray, codes: np.ndarray, ns: np.ndarray, dsum: np.ndarray,
                 dcnt: np.ndarray, first: np.ndarray, last: np.ndarray, soff: np.ndarray,
                 sessions: np.ndarray) -> None:
        self.names = names  # String, row order
        # Counts by operation x status, sparse (a user has few of the 24 kinds): row i's
        # are codes[coff[i]:coff[i + 1]] (operation * n_statuses + status) and their ns.
        self.coff = coff  # int32[users + 1] (a chunk holds at most CHUNK_ROWS events)
        self.codes = codes  # uint8
        self.ns = ns  # int32
        self.dsum = dsum  # float64: sum of the user's known durations
        self.dcnt = dcnt  # int32: how many are known
        self.first = first  # int64 UTC microseconds
        self.last = last
        self.soff = soff  # int32[users + 1]: row i's sessions are sessions[soff[i]:soff[i + 1]]
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
            >>> s.names.len(), int(s.ns.sum())
            (3, 100)
        """
        user = pl.col("user_id")
        lf = df.lazy().filter(user.is_not_null()).with_columns(_CODE.alias("__c"))
        ts = pl.col("timestamp").dt.epoch("us")
        # Three small plans run together: per user; per user x (operation, status); the
        # distinct (user, session) pairs. (One plan with a sum per code was 1.5-3x slower.)
        g, long, pairs = pl.collect_all([
            lf.group_by("user_id").agg(
                pl.col("duration_ms").sum().alias("dsum"), pl.col("duration_ms").count().alias("dcnt"),
                ts.min().alias("first"), ts.max().alias("last")),
            lf.group_by("user_id", "__c").agg(pl.len().alias("n")),
            lf.filter(pl.col("session_id").is_not_null()).select("user_id", "session_id").unique(),
        ])
        names = g["user_id"].cast(pl.String)
        h = key_hashes(names)
        order = np.argsort(h, kind="stable")
        g, names, h = g[order], names.gather(order), h[order]
        collided = bool(len(h) and np.any(h[1:] == h[:-1]))

        def rows_of(users: pl.Series) -> np.ndarray:
            if collided:  # two users, one hash: map by name instead (never seen)
                return users.cast(pl.String).replace_strict(
                    names, pl.int_range(names.len(), eager=True), return_dtype=pl.Int64).to_numpy()
            return np.searchsorted(h, key_hashes(users))

        crow, codes = rows_of(long["user_id"]), long["__c"].to_numpy()
        o = np.lexsort((codes, crow))
        crow, codes, ns = crow[o], codes[o].astype(np.uint8), long["n"].to_numpy()[o].astype(np.int32)
        row, sh = rows_of(pairs["user_id"]), key_hashes(pairs["session_id"])
        o = np.lexsort((sh, row))
        row, sh = row[o], sh[o]
        summary = cls(
            names, np.searchsorted(crow, np.arange(len(h) + 1)).astype(np.int32), codes, ns,
            g["dsum"].to_numpy().astype(np.float64), g["dcnt"].to_numpy().astype(np.int32),
            g["first"].to_numpy().astype(np.int64), g["last"].to_numpy().astype(np.int64),
            np.searchsorted(row, np.arange(len(h) + 1)).astype(np.int32), sh,
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
        arrays = (self.coff, self.codes, self.ns, self.dsum, self.dcnt, self.first, self.last, self.soff,
                  self.sessions, self.hashes)
        total = sum(a.nbytes for a in arrays if a is not None) + int(self.names.estimated_size())
        if self.by_name is not None:
            total += 100 * len(self.by_name)  # dict slot + str object, measured ~90-110 B
        return total


def one_user(df: pl.DataFrame, user_id: str) -> UserSummary:
    """The summary of `df`, the rows of one user (`user_id`), without a polars plan
    when they are few: for a chunk searched for one user only (the growing last one).

    Example:
        >>> from axon_audit.workload import generate_events
        >>> from axon_audit.model.schema import normalize_batch
        >>> s = one_user(normalize_batch(generate_events(10, seed=1, n_users=1)), "user_00000")
        >>> user_statistics_of([s], "user_00000")["total_operations"]
        10
    """
    if df.height > SMALL_STATS:
        return _one_user_numpy(df, user_id)
    r = RowColumns(df)
    # At most SMALL_STATS rows: plain Python.
    kinds = Counter(_OP_CODE[o] * _NST + _STATUS_CODE[st] for o, st in zip(r.op, r.status, strict=True))
    codes = sorted(kinds)
    known = [d for d in r.duration if d is not None]
    sessions = sorted(s for s in set(r.session) if s is not None)
    sh = np.unique(key_hashes(pl.Series(sessions, dtype=pl.String))) if sessions else np.empty(0, np.uint64)
    one = 1 if df.height else 0
    ts = [min(r.ts), max(r.ts)] if one else [0, 0]
    summary = UserSummary(
        pl.Series([user_id] * one, dtype=pl.String), np.array([0, len(codes)][:one + 1], np.int32),
        np.array(codes, np.uint8), np.array([kinds[c] for c in codes], np.int32),
        np.array([math.fsum(known)] * one, np.float64), np.array([len(known)] * one, np.int32),
        np.array(ts[:one], np.int64), np.array(ts[1:1 + one], np.int64),
        np.array([0, len(sh)][:one + 1], np.int32), sh,
    )
    if summary.by_name is None:
        summary.hashes = hashes_of((user_id,))[:one]
    return summary


def _one_user_numpy(df: pl.DataFrame, user_id: str) -> UserSummary:
    """`one_user` of many rows: column reads and numpy, no polars plan (a group_by plan
    costs ~2.5 ms however few the rows; measured at 10 K events, 4.2 ms against ~0.3 ms)."""
    code = df["operation"].to_physical().to_numpy().astype(np.int64) * _NST + df["status"].to_physical().to_numpy()
    kinds = np.bincount(code, minlength=_NOP * _NST)
    codes = np.flatnonzero(kinds)
    d = df["duration_ms"]
    known = d.drop_nulls().to_numpy()
    ts = df["timestamp"].cast(pl.Int64).to_numpy() if getattr(df["timestamp"].dtype, "time_unit", None) == "us" \
        else df["timestamp"].dt.epoch("us").to_numpy()
    s = df["session_id"].drop_nulls()
    sh = np.unique(key_hashes(s)) if s.len() else np.empty(0, np.uint64)
    summary = UserSummary(
        pl.Series([user_id], dtype=pl.String), np.array([0, len(codes)], np.int32), codes.astype(np.uint8),
        kinds[codes].astype(np.int32), np.array([float(known.sum())], np.float64), np.array([len(known)], np.int32),
        np.array([ts.min()], np.int64), np.array([ts.max()], np.int64), np.array([0, len(sh)], np.int32), sh,
    )
    return summary


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
        a, b = s.coff[i], s.coff[i + 1]
        np.add.at(counts, s.codes[a:b], s.ns[a:b])
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
