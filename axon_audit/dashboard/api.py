"""The dashboard's answers: pure functions from a source to JSON-able dicts.

A source is anything with `scan(**filters) -> LazyFrame`, `get_statistics()` and
`get_user_statistics(user_id)` (an `AuditArchive` over an export folder). Every
aggregation is a polars expression over `source.scan()`; no Python loop visits
events. Series come back columnar (one list per measure, aligned with a list of
bucket starts), which is what the page's charts draw from. Times are ISO 8601
strings in UTC.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

import polars as pl

from axon_audit.compliance.monitor import SecurityMonitor
from axon_audit.dashboard.params import event_filters
from axon_audit.model.enums import OPERATIONS
from axon_audit.read.sources import newest

__all__ = ["BUCKETS", "HISTOGRAM_EDGES_MS", "alerts", "events", "latency", "summary", "timeline", "user", "users"]

BUCKETS = {"day": "1d", "hour": "1h"}

# Latency histogram bin edges (ms): roughly logarithmic, as latencies are; the last bin is open.
HISTOGRAM_EDGES_MS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)

# The columns an event table shows, in order (all of the export format's).
EVENT_COLUMNS = ("timestamp", "operation", "user_id", "session_id", "status", "duration_ms", "error_message",
                 "entry_ids", "metadata", "event_id")

_ISO = "%Y-%m-%dT%H:%M:%S%.6fZ"


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _plain(df: pl.DataFrame) -> pl.DataFrame:
    """Times as ISO text, enums and categoricals as plain strings: what JSON holds."""
    return df.with_columns(
        pl.col(pl.Datetime).dt.strftime(_ISO),
        pl.col(pl.Enum, pl.Categorical).cast(pl.String),
    )


def _rows(df: pl.DataFrame) -> list[dict[str, Any]]:
    return _plain(df).to_dicts()


def _columns(df: pl.DataFrame) -> dict[str, list[Any]]:
    return {name: series.to_list() for name, series in _plain(df).to_dict().items()}


def summary(source: Any) -> dict[str, Any]:
    """The folder's totals: `get_statistics()` as JSON, with the time span in seconds
    (rates and latencies are null when the folder holds no event)."""
    stats = source.get_statistics()
    first, last = stats.get("first_event"), stats.get("last_event")
    span = (last - first).total_seconds() if first is not None and last is not None else None
    out = {**_jsonable(stats), "time_span_seconds": span}
    if not stats.get("total_events"):
        # Zero events is not "100% success": an empty or mistyped folder must not look clean.
        out.update(success_rate=None, avg_duration_ms=None, p50_duration_ms=None, p95_duration_ms=None,
                   p99_duration_ms=None, max_duration_ms=None)
    return out


def timeline(source: Any, bucket: str = "day") -> dict[str, Any]:
    """Events per `bucket` ("day" or "hour", UTC) by operation, and failures per bucket.

    Buckets without events are left out (the folder may span years with gaps).
    """
    every = BUCKETS[bucket]
    lf = source.scan().select(pl.col("timestamp").dt.truncate(every).alias("start"), "operation", "status")
    per_op = lf.group_by("start", "operation").agg(pl.len().alias("n"))
    per_bucket = lf.group_by("start").agg(
        pl.len().alias("total"), (pl.col("status") == "FAILURE").sum().alias("failures"))
    per_op_df, per_bucket_df = pl.collect_all([per_op, per_bucket])
    present = set(per_op_df["operation"].cast(pl.String).to_list())
    operations = [op for op in OPERATIONS if op in present]
    wide = per_bucket_df.sort("start")
    if operations:
        pivoted = per_op_df.with_columns(pl.col("operation").cast(pl.String)).pivot(
            "operation", index="start", values="n")
        wide = wide.join(pivoted, on="start", how="left").with_columns(pl.col(operations).fill_null(0))
    wide = wide.with_columns((pl.col("failures") / pl.col("total")).alias("failure_rate"))
    cols = _columns(wide)
    return {
        "bucket": bucket,
        "start": cols["start"],
        "total": cols["total"],
        "failures": cols["failures"],
        "failure_rate": cols["failure_rate"],
        "operations": operations,
        "by_operation": {op: cols[op] for op in operations},
    }


def latency(source: Any) -> dict[str, Any]:
    """p50/p95/p99 of `duration_ms` per day, and a histogram over `HISTOGRAM_EDGES_MS`."""
    lf = source.scan().select("timestamp", "duration_ms").filter(pl.col("duration_ms").is_not_null())
    d = pl.col("duration_ms")
    daily = lf.group_by(pl.col("timestamp").dt.truncate("1d").alias("start")).agg(
        pl.len().alias("events"),
        d.quantile(0.5, "linear").alias("p50"),
        d.quantile(0.95, "linear").alias("p95"),
        d.quantile(0.99, "linear").alias("p99"),
    ).sort("start")
    # The bin of a duration: how many edges it reaches, less one (durations below 0 join the first bin).
    bin_index = (pl.sum_horizontal([(d >= e).cast(pl.Int32) for e in HISTOGRAM_EDGES_MS]) - 1).clip(0)
    hist = lf.group_by(bin_index.alias("bin")).agg(pl.len().alias("n"))
    overall = lf.select(
        pl.len().alias("events"),
        d.quantile(0.5, "linear").alias("p50"),
        d.quantile(0.95, "linear").alias("p95"),
        d.quantile(0.99, "linear").alias("p99"),
        d.max().alias("max"),
    )
    daily_df, hist_df, overall_df = pl.collect_all([daily, hist, overall])
    bins = pl.DataFrame({"bin": range(len(HISTOGRAM_EDGES_MS))}, schema={"bin": pl.Int32})
    counts = bins.join(hist_df.with_columns(pl.col("bin").cast(pl.Int32)), on="bin", how="left").fill_null(0)
    edges = list(HISTOGRAM_EDGES_MS)
    labels = [f"{lo:g}–{hi:g} ms" for lo, hi in itertools.pairwise(edges)] + [f"≥ {edges[-1]:g} ms"]
    return {
        "daily": _columns(daily_df),
        "histogram": {"edges_ms": edges, "labels": labels, "counts": counts.sort("bin")["n"].to_list()},
        "overall": _rows(overall_df)[0],
    }


def users(source: Any, top: int = 10) -> dict[str, Any]:
    """The `top` users by events (ties by user id), with failures, sessions and activity span."""
    lf = source.scan().select("user_id", "session_id", "status", "timestamp")
    per_user = lf.group_by("user_id").agg(
        pl.len().alias("events"),
        (pl.col("status") == "FAILURE").sum().alias("failures"),
        pl.col("session_id").n_unique().alias("sessions"),
        pl.col("timestamp").min().alias("first_activity"),
        pl.col("timestamp").max().alias("last_activity"),
    ).with_columns(pl.col("user_id").cast(pl.String))
    ranked = per_user.sort(["events", "user_id"], descending=[True, False], nulls_last=True)
    top_df, count_df = pl.collect_all([ranked.head(top), per_user.select(pl.len())])
    return {"top": top, "unique_users": count_df.item(), "users": _rows(top_df)}


def alerts(source: Any) -> dict[str, Any]:
    """The security monitor's alerts over the whole folder, most severe first (at most
    100 event ids each; `event_count` says how many there are)."""
    frame = SecurityMonitor().evaluate(source, None, None).to_frame()
    frame = frame.with_columns(
        pl.col("event_ids").list.len().alias("event_count"), pl.col("event_ids").list.head(100))
    return {"count": frame.height, "alerts": _rows(frame)}


def _event_table(source: Any, filters: dict[str, Any], limit: int) -> tuple[list[dict[str, Any]], int]:
    df = newest(source, limit=limit, **filters).select(EVENT_COLUMNS)
    total = source.scan(**filters).select(pl.len()).collect().item()
    return _rows(df), total


def events(source: Any, params: dict[str, str]) -> dict[str, Any]:
    """The events matching the request's filters, newest first, at most `limit`
    (default 100), with how many match in all (`BadParam` on a bad parameter)."""
    filters, limit = event_filters(params)
    rows, total = _event_table(source, filters, limit)
    shown = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in filters.items()}
    return {"filters": shown, "limit": limit, "total": total, "columns": list(EVENT_COLUMNS), "events": rows}


def user(source: Any, user_id: str, limit: int = 200) -> dict[str, Any] | None:
    """A subject access view of one user: their statistics, sessions (newest first),
    operations and newest events; None when the folder holds no event of theirs."""
    stats = source.get_user_statistics(user_id)
    if not stats.get("total_operations"):
        return None
    mine = source.scan(user_id=user_id)
    sessions = mine.group_by("session_id").agg(
        pl.len().alias("events"),
        (pl.col("status") == "FAILURE").sum().alias("failures"),
        pl.col("timestamp").min().alias("first"),
        pl.col("timestamp").max().alias("last"),
    ).sort(["last", "session_id"], descending=[True, False], nulls_last=True)
    sessions_df = sessions.collect()
    rows, total = _event_table(source, {"user_id": user_id}, limit)
    return {
        "user_id": user_id,
        "statistics": _jsonable(stats),
        "operations": {k: v for k, v in stats["by_operation"].items() if v},
        "session_count": sessions_df.height,
        "sessions": _rows(sessions_df.head(100)),
        "total": total,
        "limit": limit,
        "columns": list(EVENT_COLUMNS),
        "events": rows,
    }
