"""Statistics over event frames, and the incremental fast path of the live store.

Any frame: two vectorized passes, no loop over events (`statistics`).

The live store (`snapshot_statistics`): each chunk is summarized once (`Agg`:
counts by operation x status, its durations sorted, hashes of its users and
sessions) and merged into the running `Agg` of all chunks but the growing last
one, kept by the logger (`StatsCache`), by the background sealer as each chunk
is sealed; a call summarizes only what is left (the last chunk, and any chunk
the sealer has not reached yet). Percentiles stay exact: the k-th value is found
by binary search over the few sorted duration runs (`sorted_runs`). Distinct users and
sessions are counted by 64-bit hash (a collision, ~1e-8 at 10 M distinct
values, would undercount by one).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from axon_audit.model.enums import OPERATIONS, STATUSES
from axon_audit.model.timestamps import from_us
from axon_audit.query.filters import Filters
from axon_audit.store.index import key_hashes
from axon_audit.store.row_statistics import SMALL_STATS, row_statistics, row_user_statistics
from axon_audit.store.sorted_runs import compact, not_in, quantile, union
from axon_audit.store.user_summary import one_user, user_statistics_of

_NOP, _NST = len(OPERATIONS), len(STATUSES)
_U64 = np.empty(0, np.uint64)


def _dt(value: Any) -> Any:
    return None if value is None else from_us(int(value))


def _counts(lf: pl.LazyFrame) -> tuple[dict[str, int], dict[str, int]]:
    grouped = lf.group_by("operation", "status").agg(pl.len().alias("n")).collect()
    by_op = dict.fromkeys(OPERATIONS, 0)
    by_status = dict.fromkeys(STATUSES, 0)
    for op, status, n in grouped.iter_rows():  # at most 8 x 3 rows
        by_op[op] += n
        by_status[status] += n
    return by_op, by_status


def _duration_and_time(lf: pl.LazyFrame) -> dict[str, Any]:
    d = pl.col("duration_ms")
    row = lf.select(
        d.mean().alias("avg"),
        d.quantile(0.50, "linear").alias("p50"),
        d.quantile(0.95, "linear").alias("p95"),
        d.quantile(0.99, "linear").alias("p99"),
        d.max().alias("max"),
        pl.col("user_id").drop_nulls().n_unique().alias("users"),
        pl.col("session_id").drop_nulls().n_unique().alias("sessions"),
        pl.col("timestamp").dt.epoch("us").min().alias("first"),
        pl.col("timestamp").dt.epoch("us").max().alias("last"),
    ).collect().row(0, named=True)
    return row


def snapshot_statistics(snap: Any) -> dict[str, Any]:
    """`statistics` over every event of a `read.snapshot.Snapshot`."""
    if snap.stats_cache is not None and snap.folder is None and not snap.old:
        return snap.stats_cache.statistics(snap.live, snap.refresh)
    return statistics(snap.lazy(Filters()))


def snapshot_user_statistics(snap: Any, user_id: str) -> dict[str, Any] | None:
    """`user_statistics` of one user from the live chunks' per-user summaries
    (None: the snapshot reaches beyond the live store; filter its events instead)."""
    if snap.stats_cache is None or snap.folder is not None or snap.old:
        return None
    return snap.stats_cache.user_statistics(snap.live, user_id)


# --------------------------------------------------------------------------- the fast path


def _hashes(s: pl.Series) -> np.ndarray:
    s = s.drop_nulls()
    if isinstance(s.dtype, pl.Categorical):
        s = s.unique()  # few distinct users: hash each once
    return np.unique(key_hashes(s)) if s.len() else _U64


class Agg:
    """What statistics need of a set of events, mergeable."""

    __slots__ = ("counts", "dsum", "first", "last", "runs", "sessions", "users")

    def __init__(self, counts: np.ndarray, runs: list[np.ndarray], dsum: float, users: np.ndarray,
                 sessions: np.ndarray, first: int | None, last: int | None) -> None:
        self.counts = counts  # int64[n_operations * n_statuses]
        self.runs = runs  # the durations (no nulls) as sorted runs, largest first (`sorted_runs.compact`)
        self.dsum = dsum
        self.users = users  # sorted unique uint64 hashes
        self.sessions = sessions
        self.first = first
        self.last = last

    @classmethod
    def empty(cls) -> Agg:
        return cls(np.zeros(_NOP * _NST, np.int64), [], 0.0, _U64, _U64, None, None)

    @classmethod
    def of(cls, df: pl.DataFrame) -> Agg:
        if df.height == 0:
            return cls.empty()
        code = df["operation"].to_physical().to_numpy().astype(np.int64) * _NST + df["status"].to_physical().to_numpy()
        counts = np.bincount(code, minlength=_NOP * _NST).astype(np.int64)
        d = np.sort(df["duration_ms"].drop_nulls().to_numpy())
        ts = df["timestamp"].dt.epoch("us")
        return cls(counts, [d] if len(d) else [], float(d.sum()), _hashes(df["user_id"]),
                   _hashes(df["session_id"]), int(ts.min()), int(ts.max()))  # type: ignore[arg-type]

    @property
    def n_durations(self) -> int:
        return sum(len(r) for r in self.runs)

    def merge(self, other: Agg) -> Agg:
        firsts = [t for t in (self.first, other.first) if t is not None]
        lasts = [t for t in (self.last, other.last) if t is not None]
        return Agg(
            self.counts + other.counts,
            compact(self.runs + other.runs),
            self.dsum + other.dsum,
            union(self.users, other.users),
            union(self.sessions, other.sessions),
            min(firsts) if firsts else None,
            max(lasts) if lasts else None,
        )


def _merged(aggs: list[Agg]) -> Agg:
    """Many chunks' summaries at once: one sort of their durations instead of a chain of merges."""
    if len(aggs) == 1:
        return aggs[0]
    durations = [r for a in aggs for r in a.runs]
    firsts = [a.first for a in aggs if a.first is not None]
    lasts = [a.last for a in aggs if a.last is not None]
    return Agg(
        np.sum([a.counts for a in aggs], axis=0),
        [np.sort(np.concatenate(durations), kind="stable")] if durations else [],  # merges the runs
        sum(a.dsum for a in aggs),
        np.unique(np.concatenate([a.users for a in aggs])),
        np.unique(np.concatenate([a.sessions for a in aggs])),
        min(firsts) if firsts else None,
        max(lasts) if lasts else None,
    )


def _chunk_agg(chunk: Any) -> Agg:
    # Not kept on the chunk: once merged into the running summary it is not needed
    # again (unless the store is trimmed), and keeping it would cost ~16 B/event.
    return Agg.of(chunk.df)


class StatsCache:
    """The merged `Agg` of a prefix of the store's chunks (chunks never change, so
    the prefix stays valid while the store only appends).

    The background sealer calls `advance` with the store's chunks up to the one it
    just sealed, so by the time a read comes only the growing last chunk is left to
    summarize. Reads check the prefix against their own snapshot (by identity), so a
    rotation, trim or rewrite (new chunk objects) only makes the summary start over.
    The last answer is kept: a second call on an unchanged store is a dict copy.
    A small store (`row_statistics.SMALL_STATS` events at most) is answered in plain Python.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._chunks: list[weakref.ref] = []  # weak: rotated chunks are freed at once
        self._agg = Agg.empty()
        self._tail: tuple[weakref.ref, Agg] | None = None  # the growing last chunk's summary
        self._memo: tuple[list[weakref.ref], dict[str, Any]] | None = None  # the last answer, by its chunks
        self._user_memo: tuple[list[weakref.ref], str, dict[str, Any]] | None = None
        self._filtered_tail: weakref.ref | None = None  # the last chunk searched for one user already

    def advance(self, chunks: list[Any]) -> None:
        """Merge `chunks` (a prefix of the store, sealed for good) into the running summary."""
        self._prefix(chunks, from_sealer=True)

    def _prefix(self, chunks: list[Any], from_sealer: bool = False) -> Agg | None:
        """The summary of `chunks` (a prefix of the store); None: the summary is
        already past them (the sealer went on after this read's snapshot)."""
        with self._lock:
            mine = self._chunks
            k = len(mine)
            consistent = all(a() is b for a, b in zip(mine, chunks, strict=False))
            if consistent and k >= len(chunks):
                if k == len(chunks) or from_sealer:  # the sealer's prefix is older: nothing to add
                    return self._agg
                return None
            if not consistent:  # the store was rotated, trimmed or rewritten: start over
                self._chunks, self._agg, k = [], Agg.empty(), 0
            tail = self._tail
            news = [tail[1] if tail is not None and tail[0]() is c else _chunk_agg(c) for c in chunks[k:]]
            self._agg = self._agg.merge(_merged(news))
            self._chunks = [weakref.ref(c) for c in chunks]
            return self._agg

    def statistics(self, chunks: list[Any], refresh: Callable[[], list[Any]] | None = None) -> dict[str, Any]:
        """The same dict as `statistics` over the events of `chunks`. `refresh`: a
        newer snapshot of the store's chunks, taken when the summary is already past
        `chunks` (the answer is then that of a snapshot taken a moment later)."""
        for _ in range(3):
            memo = self._memo
            if memo is not None and len(memo[0]) == len(chunks) and all(
                    r() is c for r, c in zip(memo[0], chunks, strict=True)):
                return copy_answer(memo[1])
            if sum(c.height for c in chunks) <= SMALL_STATS:  # a small store: no polars plan
                # One chunk whose answers the sealer made already (`Chunk.small`): nothing to compute.
                out = chunks[0].small.stats if len(chunks) == 1 and chunks[0].has("small") else \
                    row_statistics([c.rows for c in chunks])
                break
            prefix = self._prefix(chunks[:-1])
            if prefix is None:
                if refresh is not None:
                    chunks = refresh()
                    continue
                prefix = _merged([_chunk_agg(c) for c in chunks[:-1]]) if len(chunks) > 1 else Agg.empty()
            out = self._with_tail(prefix, chunks[-1])
            break
        else:  # the sealer kept overtaking this read: summarize its snapshot itself
            out = _stats_dict(_merged([_chunk_agg(c) for c in chunks]), None)
        self._memo = ([weakref.ref(c) for c in chunks], out)
        return copy_answer(out)

    def _with_tail(self, prefix: Agg, last: Any) -> dict[str, Any]:
        tail = self._tail
        if tail is None or tail[0]() is not last:
            tail = self._tail = (weakref.ref(last), _chunk_agg(last))
        return _stats_dict(prefix, tail[1])

    def user_statistics(self, chunks: list[Any], user_id: str) -> dict[str, Any]:
        """The same dict as `user_statistics` of `user_id` over the events of `chunks`."""
        memo = self._user_memo
        if memo is not None and memo[1] == user_id and len(memo[0]) == len(chunks) and all(
                r() is c for r, c in zip(memo[0], chunks, strict=True)):
            return copy_answer(memo[2])
        if sum(c.height for c in chunks) <= SMALL_STATS:  # a small store: no polars plan
            out = chunks[0].small.user(user_id) if len(chunks) == 1 and chunks[0].has("small") else \
                row_user_statistics([c.rows for c in chunks], user_id)
        else:
            summaries = [c.users for c in chunks[:-1]]  # sealed: built by the sealer
            last = chunks[-1]
            filtered = self._filtered_tail
            if last.has("users") or (filtered is not None and filtered() is last):
                summaries.append(last.users)  # a second user asked of this last chunk: summarize it
            else:  # the growing last chunk, asked once: only this user's rows of it
                self._filtered_tail = weakref.ref(last)
                summaries.append(one_user(last.df.filter(pl.col("user_id") == user_id), user_id))
            out = user_statistics_of(summaries, user_id)
        self._user_memo = ([weakref.ref(c) for c in chunks], user_id, out)
        return copy_answer(out)


def copy_answer(stats: dict[str, Any]) -> dict[str, Any]:
    """A copy of a kept answer (its dicts too) for a caller to own."""
    return {k: dict(v) if isinstance(v, dict) else v for k, v in stats.items()}


def _stats_dict(m: Agg, t: Agg | None) -> dict[str, Any]:
    t = t or Agg.empty()
    counts = (m.counts + t.counts).reshape(_NOP, _NST)
    by_op = dict(zip(OPERATIONS, counts.sum(axis=1).tolist(), strict=True))
    by_status = dict(zip(STATUSES, counts.sum(axis=0).tolist(), strict=True))
    total = int(counts.sum())
    arrays = m.runs + t.runs
    n = m.n_durations + t.n_durations
    firsts = [x for x in (m.first, t.first) if x is not None]
    lasts = [x for x in (m.last, t.last) if x is not None]
    return {
        "total_events": total,
        "success_rate": by_status["SUCCESS"] / total if total else 1.0,
        "failure_count": by_status["FAILURE"],
        "avg_duration_ms": (m.dsum + t.dsum) / n if n else 0.0,
        "p50_duration_ms": quantile(arrays, 0.50),
        "p95_duration_ms": quantile(arrays, 0.95),
        "p99_duration_ms": quantile(arrays, 0.99),
        "max_duration_ms": float(max(a[-1] for a in arrays)) if n else 0.0,
        "by_operation": by_op,
        "by_status": by_status,
        "unique_users": len(m.users) + len(not_in(t.users, m.users)),
        "unique_sessions": len(m.sessions) + len(not_in(t.sessions, m.sessions)),
        "first_event": _dt(min(firsts)) if firsts else None,
        "last_event": _dt(max(lasts)) if lasts else None,
    }


def statistics(lf: pl.LazyFrame) -> dict[str, Any]:
    """The seed's `get_statistics()` keys (and more) for the events of `lf`."""
    by_op, by_status = _counts(lf)
    total = sum(by_op.values())
    row = _duration_and_time(lf)
    return {
        "total_events": total,
        "success_rate": by_status["SUCCESS"] / total if total else 1.0,
        "failure_count": by_status["FAILURE"],
        "avg_duration_ms": row["avg"] or 0.0,
        "p50_duration_ms": row["p50"] or 0.0,
        "p95_duration_ms": row["p95"] or 0.0,
        "p99_duration_ms": row["p99"] or 0.0,
        "max_duration_ms": row["max"] or 0.0,
        "by_operation": by_op,
        "by_status": by_status,
        "unique_users": row["users"] or 0,
        "unique_sessions": row["sessions"] or 0,
        "first_event": _dt(row["first"]),
        "last_event": _dt(row["last"]),
    }


def user_statistics(lf: pl.LazyFrame, user_id: str) -> dict[str, Any]:
    """The seed's `get_user_statistics()` keys (and more) for one user."""
    lf = lf.filter(pl.col("user_id") == user_id)
    by_op, by_status = _counts(lf)
    total = sum(by_op.values())
    row = _duration_and_time(lf)
    # Ties go to the operation listed first in OperationType: deterministic.
    most_common = max(OPERATIONS, key=lambda op: (by_op[op], -OPERATIONS.index(op))) if total else None
    return {
        "user_id": user_id,
        "total_operations": total,
        "first_activity": _dt(row["first"]),
        "last_activity": _dt(row["last"]),
        "most_common_operation": most_common,
        "by_operation": by_op,
        "by_status": by_status,
        "success_rate": by_status["SUCCESS"] / total if total else 1.0,
        "failure_count": by_status["FAILURE"],
        "avg_duration_ms": row["avg"] or 0.0,
        "unique_sessions": row["sessions"] or 0,
    }
