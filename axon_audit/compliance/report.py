"""The periodic compliance report: the seed's monthly report shape, and more.

One collect of the period's events, then every section is a polars aggregation
over that frame. A report is a dict (`to_dict`), a polars DataFrame per section
(`frames`), the small frames its charts draw (`charts`: per day and operation,
a latency histogram), HTML for Jupyter (`_repr_html_`) and a self-contained
HTML page for an auditor (`to_html`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import polars as pl

from axon_audit.display.html import card, percent, table
from axon_audit.display.report_html import report_page
from axon_audit.exceptions import AuditTypeError, AuditValueError
from axon_audit.model.enums import OPERATIONS, STATUSES
from axon_audit.read.sources import period_filter, scan_sources, time_bounds

__all__ = ["ComplianceReport", "compliance_report", "month_period"]

ANONYMOUS = "anonymous"  # the seed's name for events without a user
_PERCENTILES = (0.5, 0.95, 0.99)
#: Upper bounds (ms) of the latency histogram's buckets; the last bucket is open.
LATENCY_BUCKETS_MS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0)

def month_period(year: int, month: int, tz: timezone = timezone.utc) -> tuple[datetime, datetime]:
    """[first instant of the month, first instant of the next month) in `tz`.

    December rolls over into January of the next year (the seed's example computes
    `month + 1` and fails there).

    Example:
        >>> from axon_audit import month_period
        >>> [d.date().isoformat() for d in month_period(2026, 12)]
        ['2026-12-01', '2027-01-01']
    """
    for name, value in (("year", year), ("month", month)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise AuditTypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 1 <= month <= 12:
        raise AuditValueError(f"month must be in 1..12, got {month}")
    start = datetime(year, month, 1, tzinfo=tz)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
    return start, end

def _period_label(start: datetime | None, end: datetime | None) -> str:
    if start is not None and end is not None:
        s, e = start, end
        first = (s.day, s.hour, s.minute, s.second, s.microsecond) == (1, 0, 0, 0, 0)
        if first and (e.year, e.month) == (s.year + s.month // 12, s.month % 12 + 1) and e.day == 1 \
                and (e.hour, e.minute, e.second, e.microsecond) == (0, 0, 0, 0):
            return f"{s.year}-{s.month:02d}"
    return f"{start.isoformat() if start else '..'}/{end.isoformat() if end else '..'}"

@dataclass
class ComplianceReport:
    """A compliance report over [start, end): sections as polars DataFrames.

    `to_dict()` gives the seed's report shape (`period`, `total_events`, `users`,
    `operations`, `user_activity`) plus the extra sections; `frames` holds one
    DataFrame per section; in Jupyter the report renders as HTML.

    Example:
        >>> from axon_audit import AuditLogger, compliance_report
        >>> audit = AuditLogger()
        >>> _ = audit.log("export", user_id="u1")
        >>> report = compliance_report(audit)
        >>> report.frames["exports_and_deletions"].row(0)
        ('u1', 1, 0, 0)
        >>> "Compliance report" in report._repr_html_()
        True
    """

    period: str
    start: datetime | None
    end: datetime | None
    frames: dict[str, pl.DataFrame] = field(repr=False)
    #: What the HTML page's charts draw: "daily" (day, operation, events, failures) and
    #: "latency_histogram" (bucket, upper_ms, events); empty for a report built by hand.
    charts: dict[str, pl.DataFrame] = field(default_factory=dict, repr=False)

    @property
    def total_events(self) -> int:
        return int(self.frames["summary"]["total_events"][0])

    def __getitem__(self, section: str) -> Any:
        return self.to_dict()[section]

    def to_dict(self) -> dict[str, Any]:
        """The report as plain, JSON-ready Python values."""
        f = self.frames
        s = f["summary"].row(0, named=True)

        def by(df: pl.DataFrame, key: str) -> dict[str, dict[str, Any]]:
            return {r.pop(key): r for r in df.to_dicts()}

        def iso(df: pl.DataFrame) -> pl.DataFrame:
            return df.with_columns(pl.col(pl.Datetime).dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"))

        return {
            "period": self.period,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "total_events": s["total_events"],
            "users": s["users"],
            "operations": dict(f["operations"].iter_rows()),
            "user_activity": by(f["user_activity"], "user_id"),
            "statuses": dict(f["statuses"].iter_rows()),
            "success_rate": s["success_rate"],
            "failures_by_operation": by(f["failures_by_operation"], "operation"),
            "exports_and_deletions": by(f["exports_and_deletions"], "user_id"),
            "entry_access": iso(f["entry_access"]).to_dicts(),
            "latency_ms": by(f["latency_ms"], "operation"),
        }

    def to_json(self) -> str:
        """`to_dict()` as JSON text."""
        return json.dumps(self.to_dict(), indent=1)

    def _repr_html_(self) -> str:
        s = self.frames["summary"].row(0, named=True)
        items = {"period": self.period, **{k.replace("_", " "): v for k, v in s.items() if k != "period"}}
        items["success rate"] = percent(s["success_rate"])
        sections = {name: table(df) for name, df in self.frames.items() if name != "summary"}
        return card("Compliance report", items, sections)

    def to_html(self, alerts: Any = None, *, source: str | None = None, top: int | None = 50) -> str:
        """The report as one self-contained HTML page (inline CSS and SVG charts, no
        script, no external URL): summary, charts, sections (at most `top` rows each;
        None or 0 for all), `alerts` (an `Alerts`, e.g. the month's) and a footer
        naming `source` and when and by which version it was made.

        Example:
            >>> from axon_audit import AuditLogger, compliance_report
            >>> audit = AuditLogger()
            >>> _ = audit.log("store", user_id="<b>ann</b>", duration_ms=3.0)
            >>> page = compliance_report(audit).to_html()
            >>> page.startswith("<!DOCTYPE html>"), "<svg" in page, "&lt;b&gt;ann" in page
            (True, True, True)
        """
        frame = None if alerts is None else alerts.to_frame()
        return report_page(self, frame, source=source, top=top or None)

    def __repr__(self) -> str:
        return f"ComplianceReport(period={self.period!r}, total_events={self.total_events})"

def compliance_report(
    source: Any,
    start: datetime | str | None = None,
    end: datetime | None = None,
    *,
    entry_ids: Iterable[str] | None = None,
) -> ComplianceReport:
    """The compliance report of `source` (a logger, an archive, or a list of them)
    over [start, end); naive datetimes are local time.

    `start` may also be a month, ``"YYYY-MM"``, with no `end`. `entry_ids` asks for
    every access to those entries (section `entry_access`).

    Example:
        >>> from datetime import datetime, timezone
        >>> from axon_audit import AuditLogger, compliance_report
        >>> audit = AuditLogger()
        >>> _ = audit.log("store", user_id="u1", entry_ids=["e1"], duration_ms=5.0)
        >>> _ = audit.log("forget", user_id="u1", entry_ids=["e1"])
        >>> _ = audit.log("recall", status="failure")
        >>> r = compliance_report(audit, entry_ids=["e1"])
        >>> r["total_events"], r["users"], r["user_activity"]["u1"]
        (3, 2, {'total': 2, 'stores': 1, 'recalls': 0, 'deletions': 1})
        >>> r["failures_by_operation"]["RECALL"]["failures"]
        1
        >>> len(r["entry_access"])
        2
        >>> compliance_report(audit, "2026-12").period
        '2026-12'
    """
    if isinstance(start, str):
        m = re.fullmatch(r"(\d{4})-(\d{2})", start.strip())
        if m is None or end is not None:
            raise AuditValueError(f"start as text must be a month 'YYYY-MM' with no end, got {start!r}")
        start, end = month_period(int(m[1]), int(m[2]))
    for name, value in (("start", start), ("end", end)):
        if value is not None and not isinstance(value, datetime):
            raise AuditTypeError(f"{name} must be a datetime, a 'YYYY-MM' month or None, got {type(value).__name__}")
    if isinstance(entry_ids, str):
        entry_ids = [entry_ids]
    wanted = None if entry_ids is None else [str(e) for e in entry_ids]
    start_us, end_us = time_bounds(start, end)
    if start_us is not None and end_us is not None and start_us >= end_us:
        raise AuditValueError(f"start must be before end, got start={start} end={end}")

    lf = scan_sources(source, **period_filter(start_us, end_us))
    if end_us is not None:  # the period is half-open; the scan's bound is inclusive
        lf = lf.filter(pl.col("timestamp").dt.epoch("us") < end_us)
    df = lf.select(
        "event_id", "timestamp", "operation", pl.col("user_id").fill_null(ANONYMOUS), "session_id",
        *(["entry_ids"] if wanted is not None else []),
        pl.col("entry_ids").list.len().alias("n_entries"), "status", "error_message", "duration_ms",
    ).collect()
    period = _period_label(start, end)
    return ComplianceReport(period, start, end, _sections(df, period, wanted), _charts(df))


def _charts(df: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Per day and operation, events and failures; durations in `LATENCY_BUCKETS_MS`."""
    daily = (
        df.group_by(pl.col("timestamp").dt.date().alias("day"), pl.col("operation").cast(pl.String))
        .agg(pl.len().cast(pl.Int64).alias("events"),
             (pl.col("status") == "FAILURE").sum().cast(pl.Int64).alias("failures"))
        .sort("day", "operation")
    )
    return {"daily": daily, "latency_histogram": latency_histogram(df)}

def latency_histogram(df: pl.DataFrame) -> pl.DataFrame:
    """Events per `LATENCY_BUCKETS_MS` bucket of `df`'s duration_ms (the one column read)."""
    def ms(b: float) -> str:
        return f"{b / 1000:g}s" if b >= 1000 else f"{b:g}"  # short: a chart's axis shows them

    labels = [f"<{ms(b)}" for b in LATENCY_BUCKETS_MS] + [f"≥{ms(LATENCY_BUCKETS_MS[-1])}"]
    buckets = pl.DataFrame({"bucket": labels, "upper_ms": [*LATENCY_BUCKETS_MS, None]},
                           schema={"bucket": pl.String, "upper_ms": pl.Float64})
    counts = (
        df.select(pl.col("duration_ms").drop_nulls()
                  .bin_intervals(list(LATENCY_BUCKETS_MS), labels=labels).cast(pl.String).alias("bucket"))
        .group_by("bucket").agg(pl.len().cast(pl.Int64).alias("events"))
    )
    return buckets.join(counts, on="bucket", how="left", maintain_order="left").with_columns(
        pl.col("events").fill_null(0))

def _sections(df: pl.DataFrame, period: str, entry_ids: list[str] | None) -> dict[str, pl.DataFrame]:
    op, st, user = pl.col("operation"), pl.col("status"), pl.col("user_id")
    total = df.height
    ops_order = pl.Enum(list(OPERATIONS))

    def n_where(cond: pl.Expr, name: str) -> pl.Expr:
        return cond.sum().cast(pl.Int64).alias(name)

    summary = df.select(
        pl.lit(period).alias("period"),
        pl.len().cast(pl.Int64).alias("total_events"),
        user.n_unique().cast(pl.Int64).alias("users"),
        pl.col("session_id").drop_nulls().n_unique().cast(pl.Int64).alias("sessions"),
        n_where(st == "FAILURE", "failures"),
        (n_where(st == "SUCCESS", "s") / pl.len()).fill_nan(1.0).fill_null(1.0).alias("success_rate"),
        pl.col("timestamp").min().alias("first_event"),
        pl.col("timestamp").max().alias("last_event"),
    )
    if total == 0:
        summary = summary.with_columns(pl.lit(0, pl.Int64).alias("users"), pl.lit(1.0).alias("success_rate"))

    operations = (
        df.group_by("operation").agg(pl.len().cast(pl.Int64).alias("count"))
        .sort(op.cast(ops_order))
    )
    statuses = (
        df.group_by("status").agg(pl.len().cast(pl.Int64).alias("count"))
        .sort(st.cast(pl.Enum(list(STATUSES))))
    )
    user_activity = df.group_by("user_id").agg(
        pl.len().cast(pl.Int64).alias("total"),
        n_where(op == "STORE", "stores"),
        n_where(op == "RECALL", "recalls"),
        n_where(op == "FORGET", "deletions"),
    ).sort(["total", "user_id"], descending=[True, False])

    failures = df.group_by("operation").agg(
        pl.len().cast(pl.Int64).alias("total"),
        n_where(st == "FAILURE", "failures"),
        n_where(st == "PARTIAL", "partial"),
        pl.col("error_message").drop_nulls().mode().sort().first().alias("most_common_error"),
    ).with_columns((pl.col("failures") / pl.col("total")).alias("failure_rate")).sort(op.cast(ops_order))

    exports_deletions = (
        df.filter(op.is_in(["EXPORT", "FORGET"]))
        .group_by("user_id")
        .agg(
            n_where(op == "EXPORT", "exports"),
            n_where(op == "FORGET", "deletions"),
            pl.col("n_entries").filter(op == "FORGET").sum().cast(pl.Int64).alias("entries_deleted"),
        )
        .sort(["deletions", "exports", "user_id"], descending=[True, True, False])
    )

    access_cols = ["entry_id", "timestamp", "event_id", "operation", "user_id", "status"]
    if entry_ids is None:
        entry_access = pl.DataFrame(schema={c: df.schema.get(c, pl.String) for c in access_cols}).cast(
            {"timestamp": pl.Datetime("us", "UTC")})
    else:
        entry_access = (
            df.select("event_id", "timestamp", "operation", "user_id", "status", pl.col("entry_ids").alias("entry_id"))
            .explode("entry_id")
            .filter(pl.col("entry_id").is_in(entry_ids))
            .select(access_cols)
            .sort(["entry_id", "timestamp", "event_id"])
        )

    latency = latency_ms(df)
    return {
        "summary": summary,
        "operations": operations,
        "statuses": statuses,
        "user_activity": user_activity,
        "failures_by_operation": failures,
        "exports_and_deletions": exports_deletions,
        "entry_access": entry_access,
        "latency_ms": latency,
    }


def latency_ms(df: pl.DataFrame) -> pl.DataFrame:
    """Section `latency_ms` of `df` (operation, duration_ms): per operation and "ALL"."""
    op, ops_order = pl.col("operation"), pl.Enum(list(OPERATIONS))
    d = pl.col("duration_ms")
    lat_aggs = [
        d.count().cast(pl.Int64).alias("count"),
        d.mean().alias("mean"),
        *(d.quantile(q, "linear").alias(f"p{int(q * 100)}") for q in _PERCENTILES),
        d.max().alias("max"),
    ]
    return pl.concat([
        df.group_by("operation").agg(lat_aggs).sort(op.cast(ops_order)).with_columns(op.cast(pl.String)),
        df.select(pl.lit("ALL").alias("operation"), *lat_aggs),
    ]) if df.height else pl.DataFrame(schema={"operation": pl.String, "count": pl.Int64, "mean": pl.Float64,
                                          "p50": pl.Float64, "p95": pl.Float64, "p99": pl.Float64,
                                          "max": pl.Float64})
