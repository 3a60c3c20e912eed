"""Statistics over event frames, and the incremental fast path of the live store.

Any frame: two vectorized passes, no loop over events (`statistics`).

The live store (`snapshot_statistics`): each chunk is summarized once (`Agg`:
counts by operation x status, its durations sorted, hashes of its users and
sessions) when it is merged into the running `Agg` of all chunks but the growing
last one, kept by the logger (`StatsCache`); a call summarizes only what changed
since the last one (at most the last chunk and the chunks sealed since). Percentiles stay exact: the k-th value is
found by binary search over the two sorted duration arrays. Distinct users and
sessions are counted by 64-bit hash (a collision, ~1e-8 at 10 M distinct
values, would undercount by one).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import numpy as np
import polars as pl

from axon_audit.model.enums import OPERATIONS, STATUSES
from axon_audit.model.timestamps import from_us
from axon_audit.query.filters import Filters
from axon_audit.store.index import key_hashes

_NOP, _NST = len(OPERATIONS), len(STATUSES)
_F64 = np.empty(0, np.float64)
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
        return snap.stats_cache.statistics(snap.live)
    return statistics(snap.lazy(Filters()))


# --------------------------------------------------------------------------- the fast path


def _unique_sorted(values: np.ndarray) -> np.ndarray:
    if len(values) < 2:
        return values
    v = np.sort(values, kind="stable")  # merging sorted runs: linear
    keep = np.empty(len(v), bool)
    keep[0] = True
    np.not_equal(v[1:], v[:-1], out=keep[1:])
    return v[keep]


def _hashes(s: pl.Series) -> np.ndarray:
    s = s.drop_nulls()
    if isinstance(s.dtype, pl.Categorical):
        s = s.unique()  # few distinct users: hash each once
    return np.unique(key_hashes(s)) if s.len() else _U64


class Agg:
    """What statistics need of a set of events, mergeable."""

    __slots__ = ("counts", "dsum", "durations", "first", "last", "sessions", "users")

    def __init__(self, counts: np.ndarray, durations: np.ndarray, dsum: float, users: np.ndarray,
                 sessions: np.ndarray, first: int | None, last: int | None) -> None:
        self.counts = counts  # int64[n_operations * n_statuses]
        self.durations = durations  # sorted, no nulls
        self.dsum = dsum
        self.users = users  # sorted unique uint64 hashes
        self.sessions = sessions
        self.first = first
        self.last = last

    @classmethod
    def empty(cls) -> Agg:
        return cls(np.zeros(_NOP * _NST, np.int64), _F64, 0.0, _U64, _U64, None, None)

    @classmethod
    def of(cls, df: pl.DataFrame) -> Agg:
        if df.height == 0:
            return cls.empty()
        code = df["operation"].to_physical().to_numpy().astype(np.int64) * _NST + df["status"].to_physical().to_numpy()
        counts = np.bincount(code, minlength=_NOP * _NST).astype(np.int64)
        d = df["duration_ms"].drop_nulls().to_numpy()
        d = np.sort(d)
        ts = df["timestamp"].dt.epoch("us")
        return cls(counts, d, float(d.sum()), _hashes(df["user_id"]), _hashes(df["session_id"]),
                   int(ts.min()), int(ts.max()))  # type: ignore[arg-type]

    def merge(self, other: Agg) -> Agg:
        firsts = [t for t in (self.first, other.first) if t is not None]
        lasts = [t for t in (self.last, other.last) if t is not None]
        return Agg(
            self.counts + other.counts,
            np.sort(np.concatenate([self.durations, other.durations]), kind="stable"),
            self.dsum + other.dsum,
            _unique_sorted(np.concatenate([self.users, other.users])),
            _unique_sorted(np.concatenate([self.sessions, other.sessions])),
            min(firsts) if firsts else None,
            max(lasts) if lasts else None,
        )


def _chunk_agg(chunk: Any) -> Agg:
    # Not kept on the chunk: once merged into the running summary it is not needed
    # again (unless the store is trimmed), and keeping it would cost ~16 B/event.
    return Agg.of(chunk.df)


def _count_le(arrays: list[np.ndarray], v: float) -> int:
    return sum(int(np.searchsorted(a, v, "right")) for a in arrays)


def _kth(arrays: list[np.ndarray], k: int) -> float:
    """The k-th smallest (0-based) value of the union of a few sorted arrays."""
    best = None
    for a in arrays:
        lo, hi = 0, len(a)  # smallest i with count_le(a[i]) > k
        while lo < hi:
            mid = (lo + hi) // 2
            if _count_le(arrays, a[mid]) > k:
                hi = mid
            else:
                lo = mid + 1
        if lo < len(a) and (best is None or a[lo] < best):
            best = float(a[lo])
    assert best is not None
    return best


def _quantile(arrays: list[np.ndarray], n: int, q: float) -> float:
    """As polars' `quantile(q, "linear")`."""
    pos = q * (n - 1)
    lo = int(np.floor(pos))
    v = _kth(arrays, lo)
    if pos == lo:
        return v
    return v + (_kth(arrays, lo + 1) - v) * (pos - lo)


def _not_in(small: np.ndarray, big: np.ndarray) -> int:
    if not len(big):
        return len(small)
    i = np.searchsorted(big, small).clip(max=len(big) - 1)
    return int(np.count_nonzero(big[i] != small))


class StatsCache:
    """The merged `Agg` of a prefix of the store's chunks (chunks never change, so
    the prefix stays valid while the store only appends)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._chunks: list[weakref.ref] = []  # weak: rotated chunks are freed at once
        self._agg = Agg.empty()
        self._tail: tuple[weakref.ref, Agg] | None = None  # the growing last chunk's summary

    def _prefix(self, chunks: list[Any]) -> Agg:
        with self._lock:
            k = len(self._chunks)
            if k > len(chunks) or any(a() is not b for a, b in zip(self._chunks, chunks, strict=False)):
                self._chunks, self._agg, k = [], Agg.empty(), 0  # the store was rotated or trimmed
            if len(chunks) > k:
                merged = self._agg
                tail = self._tail
                news = [tail[1] if tail is not None and tail[0]() is c else _chunk_agg(c) for c in chunks[k:]]
                if len(news) > 1:  # many new chunks at once: one sort instead of a chain of merges
                    merged = merged.merge(Agg(
                        np.sum([a.counts for a in news], axis=0),
                        np.sort(np.concatenate([a.durations for a in news]), kind="stable"),  # merges runs
                        sum(a.dsum for a in news),
                        _unique_sorted(np.concatenate([a.users for a in news])),
                        _unique_sorted(np.concatenate([a.sessions for a in news])),
                        min(a.first for a in news if a.first is not None),
                        max(a.last for a in news if a.last is not None),
                    ))
                else:
                    merged = merged.merge(news[0])
                self._chunks, self._agg = [weakref.ref(c) for c in chunks], merged
            return self._agg

    def statistics(self, chunks: list[Any]) -> dict[str, Any]:
        """The same dict as `statistics` over the events of `chunks`."""
        if not chunks:
            return _stats_dict(Agg.empty(), None)
        last = chunks[-1]
        tail = self._tail
        if tail is None or tail[0]() is not last:
            tail = self._tail = (weakref.ref(last), _chunk_agg(last))
        return _stats_dict(self._prefix(chunks[:-1]), tail[1])


def _stats_dict(m: Agg, t: Agg | None) -> dict[str, Any]:
    t = t or Agg.empty()
    counts = (m.counts + t.counts).reshape(_NOP, _NST)
    by_op = dict(zip(OPERATIONS, counts.sum(axis=1).tolist(), strict=True))
    by_status = dict(zip(STATUSES, counts.sum(axis=0).tolist(), strict=True))
    total = int(counts.sum())
    arrays = [a for a in (m.durations, t.durations) if len(a)]
    n = sum(len(a) for a in arrays)
    q = (lambda p: _quantile(arrays, n, p)) if n else (lambda p: 0.0)
    firsts = [x for x in (m.first, t.first) if x is not None]
    lasts = [x for x in (m.last, t.last) if x is not None]
    return {
        "total_events": total,
        "success_rate": by_status["SUCCESS"] / total if total else 1.0,
        "failure_count": by_status["FAILURE"],
        "avg_duration_ms": (m.dsum + t.dsum) / n if n else 0.0,
        "p50_duration_ms": q(0.50),
        "p95_duration_ms": q(0.95),
        "p99_duration_ms": q(0.99),
        "max_duration_ms": float(max(a[-1] for a in arrays)) if n else 0.0,
        "by_operation": by_op,
        "by_status": by_status,
        "unique_users": len(m.users) + _not_in(t.users, m.users),
        "unique_sessions": len(m.sessions) + _not_in(t.sessions, m.sessions),
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
