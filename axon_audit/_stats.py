"""Statistics over event frames: two vectorized passes, no loop over events."""

from __future__ import annotations

from typing import Any

import polars as pl

from ._models import OPERATIONS, STATUSES, from_us


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
    """`statistics` over every event of a `_reader.Snapshot`."""
    from ._query import Filters

    return statistics(snap.lazy(Filters()))


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
