"""Statistics of a small store in plain Python: no polars plan.

A logger holding at most `SMALL_STATS` events answers `get_statistics` and
`get_user_statistics` from the chunks' columns as Python lists (taken once per
chunk, kept on it while the store is small), because a polars plan costs a fixed
~0.5-3 ms however few the events (measured: 10 events, `Agg.of` 0.46 ms,
`UserSummary.of` 2.7 ms; here tens of microseconds). Per-event Python is justified
by that bound. The answers equal `statistics.statistics` / `user_statistics`
(same keys, same values; quantiles as polars' "linear").

A small store's chunk gets its answers made once, off the logging path, by the
background sealer right after it is appended (`SmallAnswers`, every user's at
once): a first read then only copies one (measured right after a gc.collect(), 10
events: ~50 us for the whole `get_statistics` call, against ~220 us reading the
chunk's columns into Python first).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import polars as pl

from axon_audit.model.enums import OPERATIONS, STATUSES
from axon_audit.model.row import R_DURATION, R_OP, R_SESSION, R_STATUS, R_TS, R_USER, Row
from axon_audit.model.timestamps import from_us

__all__ = ["ROW_TUPLES", "SMALL_STATS", "RowColumns", "SmallAnswers", "columns_of_rows", "row_statistics",
           "row_user_statistics"]

#: Up to this many buffered row tuples (a logger that has not sealed any chunk yet)
#: are always answered as rows: sealing 10 rows into a frame costs ~0.7 ms, these
#: statistics ~20 us. Above it (up to `row_compiler.SMALL_ROWS`), the first read of
#: the same rows is answered from them and a second one seals them, so the
#: summaries answer repeated calls (`Reader._small_snapshot`).
ROW_TUPLES = 256

#: The most events answered here (above it, the sealed summaries win: measured at
#: 4 096 events a row pass costs ~0.6 ms against ~0.02 ms for a warm summary).
SMALL_STATS = 2048


class RowColumns:
    """A chunk's columns that statistics read, as Python lists."""

    __slots__ = ("duration", "op", "session", "status", "ts", "user")

    def __init__(self, df: pl.DataFrame) -> None:
        # Plain reads of the buffers: `to_physical`, `cast` or `dt.epoch` would each run a
        # polars plan (~45 us apiece at 10 events, measured).
        self.op: Sequence[str] = df["operation"].to_list()  # the enums' names
        self.status: Sequence[str] = df["status"].to_list()
        self.user: Sequence[str | None] = df["user_id"].to_list()
        self.session: Sequence[str | None] = df["session_id"].to_list()
        self.duration: Sequence[float | None] = df["duration_ms"].to_list()
        ts = df["timestamp"]
        if getattr(ts.dtype, "time_unit", None) == "us":
            self.ts: Sequence[int] = ts.cast(pl.Int64).to_list()  # the physical microseconds
        else:  # pragma: no cover - the hot frame's timestamps are microseconds
            self.ts = ts.dt.epoch("us").to_list()


def columns_of_rows(rows: Sequence[Row]) -> RowColumns:
    """`RowColumns` of buffered row tuples (`model.row`), not yet sealed into a frame.

    Example:
        >>> row = (0, 1, "n", "STORE", "u1", None, (), None, "SUCCESS", None, 5.0)
        >>> row_statistics([columns_of_rows([row, row])])["p50_duration_ms"]
        5.0
    """
    cols = RowColumns.__new__(RowColumns)
    if not rows:
        cols.op, cols.status, cols.user, cols.session, cols.duration, cols.ts = [], [], [], [], [], []
        return cols
    # One transpose in C (at most ROW_TUPLES rows: the caller's bound); six list
    # comprehensions cost ~3x as much on a cold cache (measured at 10 rows).
    by_column = list(zip(*rows, strict=True))
    cols.op, cols.status, cols.user = by_column[R_OP], by_column[R_STATUS], by_column[R_USER]
    cols.session, cols.duration, cols.ts = by_column[R_SESSION], by_column[R_DURATION], by_column[R_TS]
    return cols


def _quantile(values: list[float], q: float) -> float:
    """polars' `quantile(q, "linear")` of sorted `values`."""
    n = len(values)
    pos = q * (n - 1)
    lo = math.floor(pos)
    v = values[lo]
    if pos == lo:
        return v
    return v + (values[lo + 1] - v) * (pos - lo)


def _counts(cols: Sequence[RowColumns], rows: Sequence[list[int]] | None) -> tuple[dict[str, int], dict[str, int]]:
    by_op = dict.fromkeys(OPERATIONS, 0)
    by_status = dict.fromkeys(STATUSES, 0)
    for i, c in enumerate(cols):
        ops, statuses = (c.op, c.status) if rows is None else (_picked(c.op, rows[i]), _picked(c.status, rows[i]))
        # `count` scans in C, once per kind (8 + 3 scans): cheaper on a cold cache than a
        # Counter (its update's ABC checks), and no per-event Python.
        for op in OPERATIONS:
            by_op[op] += ops.count(op)
        for st in STATUSES:
            by_status[st] += statuses.count(st)
    return by_op, by_status


def _picked(values: Sequence[Any], rows: list[int] | None) -> Sequence[Any]:
    return values if rows is None else [values[r] for r in rows]


def row_statistics(cols: Sequence[RowColumns]) -> dict[str, Any]:
    """`statistics.statistics` of the events of `cols` (each chunk's `RowColumns`).

    Example:
        >>> from axon_audit.model.schema import normalize_batch
        >>> from axon_audit.workload import generate_events
        >>> s = row_statistics([RowColumns(normalize_batch(generate_events(10, seed=1)))])
        >>> s["total_events"], sum(s["by_operation"].values())
        (10, 10)
    """
    by_op, by_status = _counts(cols, None)
    total = sum(by_op.values())
    # Lists, not numpy: measured right after a gc.collect(), 10 durations cost 80 us as a
    # list and 190 us through numpy (its first calls are slow on a cold cache).
    durations = sorted(d for c in cols for d in c.duration if d is not None)
    n = len(durations)
    ts = [t for c in cols if c.ts for t in (min(c.ts), max(c.ts))]
    return {
        "total_events": total,
        "success_rate": by_status["SUCCESS"] / total if total else 1.0,
        "failure_count": by_status["FAILURE"],
        "avg_duration_ms": math.fsum(durations) / n if n else 0.0,
        "p50_duration_ms": _quantile(durations, 0.50) if n else 0.0,
        "p95_duration_ms": _quantile(durations, 0.95) if n else 0.0,
        "p99_duration_ms": _quantile(durations, 0.99) if n else 0.0,
        "max_duration_ms": durations[-1] if n else 0.0,
        "by_operation": by_op,
        "by_status": by_status,
        "unique_users": len(set().union(*(c.user for c in cols)) - {None}),
        "unique_sessions": len(set().union(*(c.session for c in cols)) - {None}),
        "first_event": from_us(min(ts)) if ts else None,
        "last_event": from_us(max(ts)) if ts else None,
    }


def row_user_statistics(cols: Sequence[RowColumns], user_id: str) -> dict[str, Any]:
    """`statistics.user_statistics` of `user_id` over the events of `cols`.

    Example:
        >>> from axon_audit.model.schema import normalize_batch
        >>> from axon_audit.workload import generate_events
        >>> cols = RowColumns(normalize_batch(generate_events(10, seed=1, n_users=1)))
        >>> row_user_statistics([cols], cols.user[0])["total_operations"]
        10
    """
    return _user_answer(cols, [[r for r, u in enumerate(c.user) if u == user_id] for c in cols], user_id)


def _user_answer(cols: Sequence[RowColumns], rows: Sequence[list[int]], user_id: str) -> dict[str, Any]:
    """`row_user_statistics` of `user_id`, whose rows in `cols[i]` are `rows[i]`."""
    by_op, by_status = _counts(cols, rows)
    total = sum(by_op.values())
    durations = [d for c, rs in zip(cols, rows, strict=True) for d in _picked(c.duration, rs) if d is not None]
    ts = [t for c, rs in zip(cols, rows, strict=True) for t in _picked(c.ts, rs)]
    sessions = {s for c, rs in zip(cols, rows, strict=True) for s in _picked(c.session, rs)} - {None}
    # Ties go to the operation listed first in OperationType: deterministic.
    most_common = max(OPERATIONS, key=lambda op: (by_op[op], -OPERATIONS.index(op))) if total else None
    return {
        "user_id": user_id,
        "total_operations": total,
        "first_activity": from_us(min(ts)) if ts else None,
        "last_activity": from_us(max(ts)) if ts else None,
        "most_common_operation": most_common,
        "by_operation": by_op,
        "by_status": by_status,
        "success_rate": by_status["SUCCESS"] / total if total else 1.0,
        "failure_count": by_status["FAILURE"],
        "avg_duration_ms": math.fsum(durations) / len(durations) if durations else 0.0,
        "unique_sessions": len(sessions),
    }


class SmallAnswers:
    """A small chunk's answers, made once (chunks never change): its `row_statistics`
    and the `row_user_statistics` of each of its users. The background sealer makes
    them right after a small store's chunk is appended (`hot.HotStore.append`), so a
    first read finds them made. ~1.1 KB per distinct user (tracemalloc: 102 KB for
    2 048 events of 94 users; at most ~2.2 MB, 2 048 users of one event each), and
    only chunks of a store of at most `SMALL_STATS` events get them."""

    __slots__ = ("cols", "stats", "users")

    def __init__(self, cols: RowColumns) -> None:
        self.cols = cols
        self.stats = row_statistics([cols])
        rows: dict[str, list[int]] = {}
        for i, u in enumerate(cols.user):  # one pass groups the rows by user (at most SMALL_STATS)
            if u is not None:
                rows.setdefault(u, []).append(i)
        self.users = {u: _user_answer([cols], [r], u) for u, r in rows.items()}

    def user(self, user_id: str) -> dict[str, Any]:
        """`row_user_statistics([cols], user_id)` (a user not here: the empty answer)."""
        got = self.users.get(user_id)
        return got if got is not None else _user_answer([self.cols], [[]], user_id)
