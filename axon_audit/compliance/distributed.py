"""The monthly compliance report and the statistics of a lake, computed on a Dask cluster.

The driver lists the lake once (`read.lake.lake_files`: only the `date=`
partitions of the period), and sends each partition's file names to a worker;
the worker reads them straight from the object store with pyarrow and reduces
them with polars to a partial aggregate (counts by day x operation x status x
user x error, distinct sessions and users, first/last instants, the asked-for
entries' rows, and the duration_ms column: exact percentiles need every
value). The driver adds the partials up; the result equals the local engine's
(`compliance.report.compliance_report`, `get_statistics`) for the same lake.

Dask is an optional dependency (the `dask` extra): it is imported only when a
Dask engine runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads

from axon_audit.compliance.report import (
    ANONYMOUS,
    ComplianceReport,
    _period_label,
    latency_histogram,
    latency_ms,
    month_period,
)
from axon_audit.compliance.report import compliance_report as local_report
from axon_audit.exceptions import ArchiveError, AuditValueError
from axon_audit.io.location import StorageOptions, resolve
from axon_audit.model.enums import OPERATIONS, STATUSES
from axon_audit.model.schema import ARROW_SCHEMA, FRAME_SCHEMA
from axon_audit.model.timestamps import from_us
from axon_audit.query.filters import Filters
from axon_audit.read.lake import lake_files
from axon_audit.read.sources import open_source, period_filter, time_bounds

__all__ = ["ENGINES", "compliance_report", "lake_statistics"]

ENGINES = ("dask", "local")
_OPS, _STATUSES = pl.Enum(list(OPERATIONS)), pl.Enum(list(STATUSES))


@dataclass
class _Partial:
    """What one date partition contributes."""

    counts: pl.DataFrame  # day, operation, status, user_id, error_message -> n, forgotten
    sessions: pl.Series  # distinct non-null session ids
    users: pl.Series  # distinct non-null user ids (statistics count no "anonymous")
    bounds: pl.DataFrame  # first/last timestamp (0 rows when empty)
    durations: pl.DataFrame  # operation, duration_ms of every event, in file order
    entries: pl.DataFrame  # rows touching the asked-for entry ids


def _check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise AuditValueError(f"engine must be one of {', '.join(map(repr, ENGINES))}, got {engine!r}")


def _read_partition(uri: str, storage_options: dict[str, Any] | None, files: list[str],
                    start_us: int | None, end_us: int | None, wanted: list[str] | None) -> _Partial:
    """On a worker: one partition's files, read from the store and reduced."""
    loc = resolve(uri, storage_options=storage_options)
    cols = ["event_id", "timestamp", "operation", "user_id", "session_id", "entry_ids", "status",
            "error_message", "duration_ms"]
    table = pads.dataset(files, schema=ARROW_SCHEMA, format="parquet", filesystem=loc.fs).to_table(columns=cols)
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    df = df.cast({c: FRAME_SCHEMA[c] for c in cols})
    ts = pl.col("timestamp").dt.epoch("us")
    if start_us is not None:
        df = df.filter(ts >= start_us)
    if end_us is not None:  # half-open, as the local report
        df = df.filter(ts < end_us)
    raw_users = df["user_id"].drop_nulls().cast(pl.String).unique()
    df = df.with_columns(pl.col("user_id").fill_null(ANONYMOUS))
    op = pl.col("operation")
    counts = df.group_by(
        pl.col("timestamp").dt.date().alias("day"), "operation", "status", pl.col("user_id").cast(pl.String),
        "error_message",
    ).agg(pl.len().cast(pl.Int64).alias("n"),
          pl.col("entry_ids").list.len().filter(op == "FORGET").sum().cast(pl.Int64).alias("forgotten"))
    entries = df.head(0) if wanted is None else (
        df.select("event_id", "timestamp", "operation", "user_id", "status", pl.col("entry_ids").alias("entry_id"))
        .explode("entry_id").filter(pl.col("entry_id").is_in(wanted)))
    return _Partial(
        counts, df["session_id"].drop_nulls().unique(), raw_users,
        df.select(pl.col("timestamp").min().alias("first"), pl.col("timestamp").max().alias("last")),
        df.select("operation", "duration_ms"), entries,
    )


def _client(client: Any) -> Any:
    if client is not None:
        return client
    # Imported here: dask is optional (the `dask` extra); only this engine needs it.
    distributed = importlib.import_module("distributed")
    try:
        return distributed.get_client()
    except ValueError:
        raise AuditValueError("engine 'dask' needs a Dask client: pass client=, or create one first") from None


def _partials(uri: str, storage_options: StorageOptions | None, start_us: int | None, end_us: int | None,
              wanted: list[str] | None, client: Any) -> list[_Partial]:
    """One task per `date=` partition inside the period; results in day order."""
    c = _client(client)
    f = Filters.build(**period_filter(start_us, end_us))
    by_day: dict[date | None, list[str]] = {}
    for info in lake_files(uri, f, storage_options=storage_options):
        day = info.path.rsplit("/", 2)[-2].removeprefix("date=")
        by_day.setdefault(date.fromisoformat(day) if day[:1].isdigit() else None, []).append(info.path)
    opts = dict(storage_options) if storage_options is not None else None
    days = sorted(by_day, key=lambda d: (d is None, d or date.min))
    futures = [c.submit(_read_partition, uri, opts, sorted(by_day[d]), start_us, end_us, wanted, pure=False)
               for d in days]
    try:
        return list(c.gather(futures))
    except (OSError, pa.ArrowException) as exc:  # re-raised here as the worker raised it
        raise ArchiveError(f"cannot read the events under {uri}: {exc}") from None


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    return pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]


def _uri(source: Any) -> str:
    path = getattr(source, "path", source)
    if not isinstance(path, str):
        path = str(path)
    return path


def compliance_report(source: Any, month: str, *, engine: str = "dask", client: Any = None,
                      storage_options: StorageOptions | None = None,
                      entry_ids: Iterable[str] | None = None) -> ComplianceReport:
    """The compliance report of the lake at `source` (a URI, a folder or an archive)
    for `month` ("YYYY-MM"), computed by `engine`: "dask" on `client`'s cluster
    (default: the current Dask client), "local" in this process. Same report either way.

    Example:
        >>> from axon_audit.compliance.distributed import compliance_report
        >>> compliance_report("/tmp", "2026-01", engine="spark")
        Traceback (most recent call last):
        ...
        axon_audit.exceptions.AuditValueError: engine must be one of 'dask', 'local', got 'spark'
    """
    _check_engine(engine)
    if not isinstance(month, str) or len(month) != 7 or month[4] != "-" or not month.replace("-", "").isdigit():
        raise AuditValueError(f"month must be 'YYYY-MM', got {month!r}")
    uri = _uri(source)
    if engine == "local":
        return local_report(open_source(uri, storage_options=storage_options), month, entry_ids=entry_ids)
    start, end = month_period(int(month[:4]), int(month[5:]))
    start_us, end_us = time_bounds(start, end)
    wanted = None if entry_ids is None else [str(e) for e in ([entry_ids] if isinstance(entry_ids, str)
                                                               else entry_ids)]
    parts = _partials(uri, storage_options, start_us, end_us, wanted, client)
    period = _period_label(start, end)
    if not parts:  # nothing in the period: the local engine's empty report
        return local_report(open_source(uri, storage_options=storage_options), month, entry_ids=entry_ids)
    counts = _concat([p.counts for p in parts])
    durations = _concat([p.durations for p in parts])
    return ComplianceReport(period, start, end, _sections(counts, parts, durations, period, wanted),
                            {"daily": _daily(counts), "latency_histogram": latency_histogram(durations)})


def _daily(counts: pl.DataFrame) -> pl.DataFrame:
    st = pl.col("status")
    return (counts.group_by("day", pl.col("operation").cast(pl.String))
            .agg(pl.col("n").sum().cast(pl.Int64).alias("events"),
                 pl.col("n").filter(st == "FAILURE").sum().cast(pl.Int64).alias("failures"))
            .sort("day", "operation"))


def _sections(counts: pl.DataFrame, parts: list[_Partial], durations: pl.DataFrame, period: str,
              wanted: list[str] | None) -> dict[str, pl.DataFrame]:
    op, st, n = pl.col("operation"), pl.col("status"), pl.col("n")
    counts = counts.with_columns(pl.col("user_id").cast(pl.Categorical))

    def n_where(cond: pl.Expr, name: str) -> pl.Expr:
        return n.filter(cond).sum().cast(pl.Int64).alias(name)

    total = int(counts["n"].sum())
    bounds = _concat([p.bounds for p in parts])
    sessions = pl.concat([p.sessions for p in parts]).n_unique()
    success = int(counts.filter(st == "SUCCESS")["n"].sum())
    summary = pl.DataFrame({
        "period": [period], "total_events": [total],
        "users": [counts["user_id"].n_unique() if total else 0], "sessions": [sessions],
        "failures": [int(counts.filter(st == "FAILURE")["n"].sum())],
        "success_rate": [success / total if total else 1.0],
        "first_event": [bounds["first"].min()], "last_event": [bounds["last"].max()],
    }, schema={"period": pl.String, "total_events": pl.Int64, "users": pl.Int64, "sessions": pl.Int64,
               "failures": pl.Int64, "success_rate": pl.Float64, "first_event": FRAME_SCHEMA["timestamp"],
               "last_event": FRAME_SCHEMA["timestamp"]})
    operations = counts.group_by("operation").agg(n.sum().cast(pl.Int64).alias("count")).sort(op)
    statuses = counts.group_by("status").agg(n.sum().cast(pl.Int64).alias("count")).sort(st)
    user_activity = counts.group_by("user_id").agg(
        n.sum().cast(pl.Int64).alias("total"), n_where(op == "STORE", "stores"),
        n_where(op == "RECALL", "recalls"), n_where(op == "FORGET", "deletions"),
    ).sort(["total", "user_id"], descending=[True, False])
    errors = (counts.filter(pl.col("error_message").is_not_null())
              .group_by("operation", "error_message").agg(n.sum())
              .sort(["operation", "n", "error_message"], descending=[False, True, False])
              .group_by("operation", maintain_order=True).first()
              .select("operation", pl.col("error_message").alias("most_common_error")))
    failures = counts.group_by("operation").agg(
        n.sum().cast(pl.Int64).alias("total"), n_where(st == "FAILURE", "failures"),
        n_where(st == "PARTIAL", "partial"),
    ).join(errors, on="operation", how="left").with_columns(
        (pl.col("failures") / pl.col("total")).alias("failure_rate")).sort(op)
    exports_deletions = (
        counts.filter(op.is_in(["EXPORT", "FORGET"])).group_by("user_id")
        .agg(n_where(op == "EXPORT", "exports"), n_where(op == "FORGET", "deletions"),
             pl.col("forgotten").filter(op == "FORGET").sum().cast(pl.Int64).alias("entries_deleted"))
        .sort(["deletions", "exports", "user_id"], descending=[True, True, False])
    )
    access_cols = ["entry_id", "timestamp", "event_id", "operation", "user_id", "status"]
    entries = _concat([p.entries for p in parts])
    entry_access = (entries.select(access_cols).sort(["entry_id", "timestamp", "event_id"]) if wanted is not None
                    else pl.DataFrame(schema={c: entries.schema.get(c, pl.String) for c in access_cols}))
    return {
        "summary": summary, "operations": operations, "statuses": statuses, "user_activity": user_activity,
        "failures_by_operation": failures, "exports_and_deletions": exports_deletions,
        "entry_access": entry_access, "latency_ms": latency_ms(durations),
    }


def lake_statistics(source: Any, *, engine: str = "dask", client: Any = None,
                    storage_options: StorageOptions | None = None) -> dict[str, Any]:
    """`get_statistics()` of the lake at `source`, computed by `engine` ("dask" on
    `client`'s cluster, or "local"): the same dict either way."""
    _check_engine(engine)
    uri = _uri(source)
    if engine == "local":
        return dict(open_source(uri, storage_options=storage_options).get_statistics())
    parts = _partials(uri, storage_options, None, None, None, client)
    if not parts:
        return dict(open_source(uri, storage_options=storage_options).get_statistics())
    counts = _concat([p.counts for p in parts])
    by = counts.group_by("operation", "status").agg(pl.col("n").sum())
    by_op = dict.fromkeys(OPERATIONS, 0)
    by_status = dict.fromkeys(STATUSES, 0)
    for o, s, k in by.iter_rows():
        by_op[o] += k
        by_status[s] += k
    total = sum(by_op.values())
    d = _concat([p.durations for p in parts])["duration_ms"]
    bounds = _concat([p.bounds for p in parts])

    def q(p: float) -> float:
        return d.quantile(p, "linear") or 0.0

    def instant(v: datetime | None) -> datetime | None:
        return None if v is None else from_us(_us(v))

    return {
        "total_events": total,
        "success_rate": by_status["SUCCESS"] / total if total else 1.0,
        "failure_count": by_status["FAILURE"],
        "avg_duration_ms": d.mean() or 0.0,
        "p50_duration_ms": q(0.50), "p95_duration_ms": q(0.95), "p99_duration_ms": q(0.99),
        "max_duration_ms": d.max() or 0.0,
        "by_operation": by_op, "by_status": by_status,
        "unique_users": pl.concat([p.users for p in parts]).n_unique(),
        "unique_sessions": pl.concat([p.sessions for p in parts]).n_unique(),
        "first_event": instant(bounds["first"].min()),  # type: ignore[arg-type]
        "last_event": instant(bounds["last"].max()),  # type: ignore[arg-type]
    }


def _us(v: datetime) -> int:
    return pl.Series([v], dtype=FRAME_SCHEMA["timestamp"]).dt.epoch("us").item()
