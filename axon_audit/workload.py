"""A seeded, realistic audit workload shared by the benchmarks, the demo and the notebook.

Events of a memory system for AI agents: Zipf-distributed users and entries,
sessions per user, an operation mix dominated by RECALL and STORE, a few
percent failures with error messages, log-normal latencies per operation, and
small metadata dicts. Generation is vectorized (numpy + polars): 10 M events
take seconds.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import numpy as np
import polars as pl

from ._models import OPERATIONS

__all__ = ["OPERATION_MIX", "generate_events", "iter_log_calls"]

#: Share of each operation in the workload (sums to 1).
OPERATION_MIX: dict[str, float] = {
    "RECALL": 0.55,
    "STORE": 0.28,
    "FORGET": 0.05,
    "BULK_STORE": 0.05,
    "COMPACT": 0.02,
    "REINDEX": 0.02,
    "IMPORT": 0.02,
    "EXPORT": 0.01,
}
# Median latency (ms) of each operation; log-normal with sigma 0.8 around it.
_MEDIAN_MS = {"RECALL": 12.0, "STORE": 25.0, "FORGET": 8.0, "BULK_STORE": 180.0, "COMPACT": 900.0,
              "REINDEX": 1500.0, "IMPORT": 400.0, "EXPORT": 350.0}
_ERRORS = np.array([
    "Database connection timeout",
    "Vector index unavailable",
    "Permission denied for entry",
    "Entry not found",
    "Embedding service returned 503",
    "Quota exceeded",
])
_SOURCES = np.array(["api", "agent", "batch", "ui"])
_TAGS = np.array(['["verified"]', '["draft"]', '["pii"]', '["verified","shared"]', "[]"])


def generate_events(
    n: int,
    *,
    seed: int = 0,
    start: datetime | None = None,
    days: float = 30.0,
    n_users: int | None = None,
    failure_rate: float = 0.03,
    partial_rate: float = 0.01,
) -> pl.DataFrame:
    """`n` events in time order over `days` days from `start` (default: `days` ago).

    The frame has the export format's columns and goes straight into
    `AuditLogger.log_batch`; the same seed gives the same events.

    Example:
        >>> from axon_audit.workload import generate_events
        >>> df = generate_events(1000, seed=1)
        >>> df.height, df["operation"].value_counts(sort=True)["operation"][0]
        (1000, 'RECALL')
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    if start is None:
        start = datetime.now(timezone.utc) - timedelta(days=days)
    elif start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    n_users = n_users or max(10, min(50_000, int(n ** 0.6)))
    start_us = int(start.timestamp() * 1_000_000)
    span_us = int(days * 86_400 * 1_000_000)

    # Office-hours-heavy time of day: half of the events in 08:00-18:00 UTC.
    day = rng.integers(0, max(1, int(np.ceil(days))), n)
    office = rng.random(n) < 0.5
    second = np.where(office, rng.uniform(8 * 3600, 18 * 3600, n), rng.uniform(0, 86_400, n))
    ts = start_us + np.minimum(day * 86_400_000_000 + (second * 1e6).astype(np.int64), span_us - 1)
    ts.sort()

    users = np.minimum(rng.zipf(1.3, n), n_users) - 1
    sessions = users * 1000 + rng.integers(0, 20, n)
    ops_names = np.array(list(OPERATION_MIX))
    ops = rng.choice(ops_names, n, p=np.array(list(OPERATION_MIX.values())))
    u = rng.random(n)
    status = np.where(u < failure_rate, "FAILURE", np.where(u < failure_rate + partial_rate, "PARTIAL", "SUCCESS"))
    error = rng.choice(_ERRORS, n)
    median = np.vectorize(_MEDIAN_MS.get)(ops) if n else np.array([], dtype=float)
    duration = np.round(median * np.exp(rng.normal(0.0, 0.8, n)), 3)
    n_entries = np.where(np.isin(ops, ["STORE", "FORGET", "RECALL"]), rng.integers(1, 4, n), 0)
    entry_pool = max(100, n // 5)
    entry_numbers = np.minimum(rng.zipf(1.2, int(n_entries.sum())), entry_pool)

    df = pl.DataFrame(
        {
            "timestamp": pl.Series(ts, dtype=pl.Int64).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
            "operation": ops,
            "user_id": pl.Series(users).cast(pl.String).str.zfill(5),
            "session_id": pl.Series(sessions).cast(pl.String),
            "n_entries": n_entries,
            "status": status,
            "error_message": pl.Series(error).set(pl.Series(status != "FAILURE"), None),
            "duration_ms": duration,
            "source": rng.choice(_SOURCES, n),
            "importance": np.round(rng.random(n), 2),
            "tags": rng.choice(_TAGS, n),
        }
    )
    entries = pl.Series("entry_ids", pl.Series(entry_numbers).cast(pl.String)).to_frame()
    entry_lists = (
        entries.with_columns(("entry_" + pl.col("entry_ids").str.zfill(7)).alias("entry_ids"))
        .with_columns(pl.Series("row", np.repeat(np.arange(n), n_entries)))
        .group_by("row", maintain_order=True)
        .agg("entry_ids")
    )
    df = (
        df.with_row_index("row")
        .join(entry_lists.with_columns(pl.col("row").cast(pl.UInt32)), on="row", how="left")
        .with_columns(pl.col("entry_ids").fill_null([]))
    )
    return df.select(
        "timestamp",
        "operation",
        ("user_" + pl.col("user_id")).alias("user_id"),
        ("session_" + pl.col("session_id")).alias("session_id"),
        "entry_ids",
        pl.concat_str(
            pl.lit('{"source":"'), "source", pl.lit('","importance":'), pl.col("importance").cast(pl.String),
            pl.lit(',"tags":'), "tags", pl.lit("}"),
        ).alias("metadata"),
        "status",
        "error_message",
        "duration_ms",
    )


def iter_log_calls(df: pl.DataFrame) -> Iterator[dict[str, Any]]:
    """Keyword arguments for `log_event`/`log`, one dict per event of `df`
    (the logger stamps its own time and id).

    Example:
        >>> from axon_audit.workload import generate_events, iter_log_calls
        >>> sorted(next(iter_log_calls(generate_events(5))))[:3]
        ['duration_ms', 'entry_ids', 'error_message']
    """
    import orjson

    # Per-event Python here is the point: it feeds the per-event logging path.
    for op, user, session, entries, meta, status, error, duration in df.select(
        "operation", "user_id", "session_id", "entry_ids", "metadata", "status", "error_message", "duration_ms"
    ).iter_rows():
        yield {
            "operation": op,
            "user_id": user,
            "session_id": session,
            "entry_ids": entries,
            "metadata": orjson.loads(meta),
            "status": status,
            "error_message": error,
            "duration_ms": duration,
        }


assert set(OPERATION_MIX) == set(OPERATIONS)
