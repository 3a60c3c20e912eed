"""Security monitoring: the seed's rules plus per-user rules, as one vectorized pass.

The period's events are collected once; every rule is a lazy polars query over
that frame and `pl.collect_all` runs them together. Windows are tumbling,
aligned to the epoch (`dt.truncate`). Each firing window becomes an `Alert`
carrying the event ids behind it. `watch` / `awatch` evaluate the rules live,
over a sliding window of a subscription's batches (`_LiveWindow`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from axon_audit.display.cards import monitor_card
from axon_audit.display.html import card, span, table
from axon_audit.exceptions import AuditTypeError, AuditValueError
from axon_audit.query.filters import Filters
from axon_audit.read.sources import period_filter, scan_sources, time_bounds

__all__ = ["RULES", "SEVERITIES", "Alert", "Alerts", "MonitorThresholds", "SecurityMonitor"]

log = logging.getLogger("axon_audit.security")

#: Every rule, with its base severity.
RULES: dict[str, str] = {
    "excessive_deletions": "high",  # seed: > 100 FORGET in an hour
    "failure_burst": "medium",  # seed: > 10 failures in 15 minutes
    "export_activity": "medium",  # seed: > 5 exports in 24 hours
    "user_deletion_spike": "high",  # one user's deletions far above their own baseline
    "user_failure_spike": "medium",  # one user's failures far above their own baseline
    "unusual_hours": "low",  # activity in an hour of day the user (almost) never works
    "recall_sweep": "high",  # recalls of entries stored by many other users
}
#: The severities, least first (a rule's base severity rises one step at 3x its threshold).
SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")
_SEVERITIES = SEVERITIES
_LEVELS = {"low": logging.INFO, "medium": logging.WARNING, "high": logging.ERROR, "critical": logging.CRITICAL}


@dataclass(frozen=True)
class MonitorThresholds:
    """Every threshold of `SecurityMonitor` (a rule fires when its count exceeds the maximum).

    Example:
        >>> from datetime import timedelta
        >>> from axon_audit import MonitorThresholds
        >>> MonitorThresholds(max_deletions=50).deletion_window
        datetime.timedelta(seconds=3600)
    """

    deletion_window: timedelta = timedelta(hours=1)
    max_deletions: int = 100
    failure_window: timedelta = timedelta(minutes=15)
    max_failures: int = 10
    export_window: timedelta = timedelta(hours=24)
    max_exports: int = 5
    #: per-user spikes: count >= user_spike_min and > factor x the user's mean over their other windows
    user_window: timedelta = timedelta(hours=1)
    user_spike_factor: float = 10.0
    user_spike_min: int = 10
    #: unusual hours: >= unusual_hour_min events in one clock hour whose hour of day holds less than
    #: unusual_hour_share of the user's other activity (given >= unusual_hour_history other events)
    unusual_hour_min: int = 5
    unusual_hour_share: float = 0.005
    unusual_hour_history: int = 50
    #: recall sweep: one user recalls entries stored by >= sweep_owners other users in one window
    sweep_window: timedelta = timedelta(minutes=10)
    sweep_owners: int = 20

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(f.default, timedelta):
                if not isinstance(v, timedelta) or v <= timedelta(0):
                    raise AuditValueError(f"{f.name} must be a positive timedelta, got {v!r}")
            elif isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise AuditValueError(f"{f.name} must be a number >= 0, got {v!r}")


@dataclass(frozen=True)
class Alert:
    """One firing: which rule, how severe, whose, when, how many, and the events behind it.

    Example:
        >>> from axon_audit import AuditLogger, SecurityMonitor
        >>> audit = AuditLogger()
        >>> audit.log_batch([{"operation": "recall", "status": "failure", "user_id": "u9"}] * 3)
        3
        >>> alert = SecurityMonitor(max_failures=2).evaluate(audit)[0]
        >>> alert.rule, alert.user_id, alert.count, len(alert.event_ids)
        ('failure_burst', None, 3, 3)
    """

    rule: str
    severity: str
    user_id: str | None
    window_start: datetime
    window_end: datetime
    count: int
    threshold: float
    event_ids: tuple[str, ...] = field(repr=False)
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["event_ids"] = list(self.event_ids)
        d["window_start"] = self.window_start.isoformat()
        d["window_end"] = self.window_end.isoformat()
        return d

    def _repr_html_(self) -> str:
        items = {k: getattr(self, k) for k in self.to_dict() if k != "event_ids"}
        return card(f"Alert: {self.rule} ({self.severity})", items, {f"{len(self.event_ids)} events": self.event_ids})


class Alerts(list):
    """A list of `Alert`s, most severe first, with a DataFrame view and HTML.

    Example:
        >>> from axon_audit import AuditLogger, SecurityMonitor
        >>> alerts = SecurityMonitor().evaluate(AuditLogger())
        >>> len(alerts), alerts.to_frame().columns[:3]
        (0, ['rule', 'severity', 'user_id'])
    """

    def to_frame(self) -> pl.DataFrame:
        """One row per alert (event ids as a list column)."""
        # Instances, not classes, so the mapping types as DataType.
        schema = {"rule": pl.String(), "severity": pl.String(), "user_id": pl.String(),
                  "window_start": pl.Datetime("us", "UTC"), "window_end": pl.Datetime("us", "UTC"),
                  "count": pl.Int64(), "threshold": pl.Float64(), "event_ids": pl.List(pl.String()),
                  "message": pl.String()}
        return pl.DataFrame([asdict(a) for a in self], schema=schema) if self else pl.DataFrame(schema=schema)

    def by_rule(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for a in self:
            out[a.rule] = out.get(a.rule, 0) + 1
        return out

    def _repr_html_(self) -> str:
        frame = self.to_frame().with_columns(pl.col("event_ids").list.len().alias("events")).drop("event_ids")
        return card("Security alerts", {"alerts": len(self), **self.by_rule()}, {"alerts": table(frame, 50)})


_ALERT_SCHEMA = {
    "rule": pl.String(), "user_id": pl.String(), "window_start": pl.Datetime("us", "UTC"),
    "window_end": pl.Datetime("us", "UTC"), "count": pl.Int64(), "threshold": pl.Float64(),
    "event_ids": pl.List(pl.String()),
}


class SecurityMonitor:
    """Evaluate security rules over a period of a source (logger, archive, or list).

    Args:
        thresholds: a `MonitorThresholds`; keyword overrides replace its fields.
        rules: the rules to evaluate (default: all of `RULES`).
        logger: the `logging.Logger` alerts go to with ``evaluate(..., log=True)``.

    Example:
        >>> from axon_audit import AuditLogger, SecurityMonitor
        >>> audit = AuditLogger()
        >>> audit.log_batch([{"operation": "forget", "user_id": "mallory"}] * 6)
        6
        >>> alerts = SecurityMonitor(max_deletions=5).evaluate(audit)
        >>> [(a.rule, a.count) for a in alerts if a.user_id is None]
        [('excessive_deletions', 6)]
    """

    def __init__(
        self,
        thresholds: MonitorThresholds | None = None,
        *,
        rules: Iterable[str] | None = None,
        logger: logging.Logger | None = None,
        **overrides: Any,
    ) -> None:
        if thresholds is not None and not isinstance(thresholds, MonitorThresholds):
            raise AuditTypeError(f"thresholds must be a MonitorThresholds, got {type(thresholds).__name__}")
        names = {f.name for f in fields(MonitorThresholds)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise AuditTypeError(f"unknown thresholds {unknown}; expected some of {sorted(names)}")
        self.thresholds = replace(thresholds or MonitorThresholds(), **overrides)
        self.rules = tuple(RULES) if rules is None else tuple(rules)
        bad = [r for r in self.rules if r not in RULES]
        if bad:
            raise AuditValueError(f"rules: unknown {bad}; expected some of {list(RULES)}")
        self.logger = logger or log

    def __repr__(self) -> str:
        t = self.thresholds
        rules = f"all {len(RULES)}" if set(self.rules) == set(RULES) else repr(list(self.rules))
        values = {f.name: getattr(t, f.name) for f in fields(t)}
        shown = ", ".join(f"{k}={span(v) if isinstance(v, timedelta) else v}" for k, v in values.items())
        return f"SecurityMonitor(rules={rules}, {shown})"

    def _repr_html_(self) -> str:
        return monitor_card(self, RULES)

    def evaluate(
        self, source: Any, start: datetime | None = None, end: datetime | None = None, *, log: bool = False
    ) -> Alerts:
        """Alerts over [start, end) (naive datetimes are local time), most severe first;
        `log=True` also sends each to the monitor's logger at a level matching its severity."""
        start_us, end_us = time_bounds(start, end)
        lf = scan_sources(source, **period_filter(start_us, end_us))
        if end_us is not None:
            lf = lf.filter(pl.col("timestamp").dt.epoch("us") < end_us)
        df = lf.select("event_id", "timestamp", "operation", "user_id", "status", "entry_ids").collect()
        queries = self._queries(df, source, start_us, end_us)
        frames = pl.collect_all(queries) if queries else []
        found = pl.concat([f for f in frames], how="vertical") if frames else pl.DataFrame(schema=_ALERT_SCHEMA)
        alerts = Alerts(self._alert(row) for row in found.iter_rows(named=True))  # only the firing windows
        alerts.sort(key=lambda a: (-_SEVERITIES.index(a.severity), a.window_start, a.rule, a.user_id or ""))
        if log:
            for a in alerts:
                self.logger.log(_LEVELS[a.severity], "%s", a.message)
        return alerts

    def watch(self, batches: Iterable[pl.DataFrame], *, log: bool = False) -> Iterator[Alert]:
        """New alerts as they happen, over a live feed of event frames (a subscription
        made with ``batches=True``): after each batch the rules are evaluated again
        over the events of the last longest rule window, and each alert (rule,
        user, window start) is yielded once, when its window first fires. Rules
        that compare a user with their own history see only that window.

        Example:
            >>> from axon_audit import AuditLogger, SecurityMonitor
            >>> audit = AuditLogger()
            >>> feed = audit.subscribe(batches=True)
            >>> _ = audit.log_batch([{"operation": "forget", "user_id": "m"}] * 4); audit.close()
            >>> [(a.rule, a.count) for a in SecurityMonitor(max_deletions=3).watch(feed) if a.user_id is None]
            [('excessive_deletions', 4)]
        """
        live = _LiveWindow(self, batches, log)
        for df in batches:
            yield from live.add(df)

    async def awatch(self, batches: AsyncIterable[pl.DataFrame], *, log: bool = False) -> AsyncIterator[Alert]:
        """`watch` over an async feed (``async for alert in monitor.awatch(subscription)``)."""
        live = _LiveWindow(self, batches, log)
        async for df in batches:
            for alert in live.add(df):
                yield alert

    # ------------------------------------------------------------------ rules

    def _queries(self, df: pl.DataFrame, source: Any, start_us: int | None, end_us: int | None) -> list[pl.LazyFrame]:
        t = self.thresholds
        lf = df.lazy()
        op, st = pl.col("operation"), pl.col("status")
        q: list[pl.LazyFrame] = []
        rules = set(self.rules)
        if df.height == 0:
            return q
        if "excessive_deletions" in rules:
            q.append(_global(lf, "excessive_deletions", op == "FORGET", t.deletion_window, t.max_deletions))
        if "failure_burst" in rules:
            q.append(_global(lf, "failure_burst", st == "FAILURE", t.failure_window, t.max_failures))
        if "export_activity" in rules:
            q.append(_global(lf, "export_activity", op == "EXPORT", t.export_window, t.max_exports))
        lo = start_us if start_us is not None else _epoch(df["timestamp"].min())
        hi = end_us if end_us is not None else _epoch(df["timestamp"].max()) + 1
        if "user_deletion_spike" in rules:
            q.append(_spike(lf, "user_deletion_spike", op == "FORGET", t, lo, hi))
        if "user_failure_spike" in rules:
            q.append(_spike(lf, "user_failure_spike", st == "FAILURE", t, lo, hi))
        if "unusual_hours" in rules:
            q.append(_unusual_hours(lf, t))
        if "recall_sweep" in rules:
            q.append(_recall_sweep(lf, source, t))
        return q

    def _alert(self, row: dict[str, Any]) -> Alert:
        rule = row["rule"]
        severity = RULES[rule]
        if row["count"] >= 3 * max(row["threshold"], 1):
            severity = _SEVERITIES[min(_SEVERITIES.index(severity) + 1, 3)]
        who = f"user {row['user_id']}: " if row["user_id"] is not None else ""
        span = row["window_end"] - row["window_start"]
        message = (f"{rule.replace('_', ' ').capitalize()}: {who}{row['count']} in {span} from "
                   f"{row['window_start']:%Y-%m-%d %H:%M} UTC (threshold {row['threshold']:g})")
        return Alert(rule, severity, row["user_id"], row["window_start"], row["window_end"], row["count"],
                     float(row["threshold"]), tuple(row["event_ids"]), message)


class _Frame:
    """A frame as a source of `evaluate` (its `scan` applies the filters)."""

    def __init__(self, df: pl.DataFrame) -> None:
        self.df = df

    def scan(self, **filters: Any) -> pl.LazyFrame:
        expr = Filters.of(filters, allow_limit=False).expr()
        return self.df.lazy() if expr is None else self.df.lazy().filter(expr)


class _LiveWindow:
    """The events of the last longest rule window, and the alerts already yielded."""

    _COLUMNS = ("event_id", "timestamp", "operation", "user_id", "status", "entry_ids")

    def __init__(self, monitor: SecurityMonitor, feed: object, log: bool) -> None:
        if getattr(feed, "batches", True) is False:
            raise AuditValueError("watch needs a feed of DataFrames: subscribe(..., batches=True)")
        t = monitor.thresholds
        windows = {"excessive_deletions": t.deletion_window, "failure_burst": t.failure_window,
                   "export_activity": t.export_window, "user_deletion_spike": t.user_window,
                   "user_failure_spike": t.user_window, "unusual_hours": timedelta(hours=1),
                   "recall_sweep": t.sweep_window}
        self.monitor, self.log = monitor, log
        self.horizon = max(windows[r] for r in monitor.rules) if monitor.rules else timedelta(hours=1)
        self.frame: pl.DataFrame | None = None
        self.seen: set[tuple[str, str | None, datetime]] = set()

    def add(self, df: pl.DataFrame) -> list[Alert]:
        if not isinstance(df, pl.DataFrame):
            raise AuditTypeError(f"watch needs a feed of polars DataFrames, got {type(df).__name__}")
        if df.height == 0:
            return []
        df = df.select(pl.col(c).cast(pl.String) if c == "user_id" else pl.col(c) for c in self._COLUMNS)
        frame = df if self.frame is None else pl.concat([self.frame, df], rechunk=False)
        newest = frame["timestamp"].max()
        assert isinstance(newest, datetime)  # the frame is not empty
        oldest = newest - self.horizon
        self.frame = frame = frame.filter(pl.col("timestamp") >= oldest)
        new = []
        for alert in sorted(self.monitor.evaluate(_Frame(frame)), key=lambda a: (a.window_start, a.rule)):
            key = (alert.rule, alert.user_id, alert.window_start)
            if key not in self.seen:
                self.seen.add(key)
                new.append(alert)
                if self.log:
                    self.monitor.logger.log(_LEVELS[alert.severity], "%s", alert.message)
        # Windows that ended before the kept events can no longer fire again.
        self.seen = {k for k in self.seen if k[2] >= oldest - self.horizon}
        return new


def _epoch(value: object) -> int:
    """Microseconds of a timestamp column's min or max (a datetime: the frame is not empty)."""
    assert isinstance(value, datetime)
    return int(value.timestamp() * 1_000_000)


def _window(window: timedelta) -> pl.Expr:
    return pl.col("timestamp").dt.truncate(window).alias("window_start")


def _finish(lf: pl.LazyFrame, rule: str, window: timedelta, user: pl.Expr, threshold: pl.Expr) -> pl.LazyFrame:
    return lf.select(
        pl.lit(rule).alias("rule"),
        user.cast(pl.String).alias("user_id"),
        pl.col("window_start"),
        (pl.col("window_start") + window).alias("window_end"),
        pl.col("count").cast(pl.Int64),
        threshold.cast(pl.Float64).alias("threshold"),
        pl.col("event_ids").list.sort(),
    )


def _global(lf: pl.LazyFrame, rule: str, cond: pl.Expr, window: timedelta, maximum: int) -> pl.LazyFrame:
    """The seed's rules: more than `maximum` matching events in one window, over all users."""
    hits = (lf.filter(cond).group_by(_window(window))
            .agg(pl.len().alias("count"), pl.col("event_id").alias("event_ids"))
            .filter(pl.col("count") > maximum))
    return _finish(hits, rule, window, pl.lit(None, pl.String), pl.lit(maximum))


def _spike(lf: pl.LazyFrame, rule: str, cond: pl.Expr, t: MonitorThresholds, lo: int, hi: int) -> pl.LazyFrame:
    """A user's count in one window >= the minimum and > factor x their mean over
    the period's other windows (zero-count windows included)."""
    w_us = t.user_window // timedelta(microseconds=1)
    n_windows = max(2, -(-(hi - (lo - lo % w_us)) // w_us))
    per = (lf.filter(cond & pl.col("user_id").is_not_null())
           .group_by("user_id", _window(t.user_window))
           .agg(pl.len().alias("count"), pl.col("event_id").alias("event_ids"))
           .with_columns(((pl.col("count").sum().over("user_id") - pl.col("count")) / (n_windows - 1))
                         .alias("baseline")))
    limit = pl.max_horizontal(pl.lit(float(t.user_spike_min) - 1), pl.col("baseline") * t.user_spike_factor)
    hits = per.filter(pl.col("count") > limit).with_columns(limit.alias("limit"))
    return _finish(hits, rule, t.user_window, pl.col("user_id"), pl.col("limit"))


def _unusual_hours(lf: pl.LazyFrame, t: MonitorThresholds) -> pl.LazyFrame:
    hour = timedelta(hours=1)
    per = (lf.filter(pl.col("user_id").is_not_null())
           .with_columns(_window(hour), pl.col("timestamp").dt.hour().alias("hod"))
           .group_by("user_id", "window_start", "hod")
           .agg(pl.len().alias("count"), pl.col("event_id").alias("event_ids"))
           .with_columns(pl.col("count").sum().over("user_id", "hod").alias("hod_total"),
                         pl.col("count").sum().over("user_id").alias("user_total")))
    other = pl.col("user_total") - pl.col("count")
    share = (pl.col("hod_total") - pl.col("count")) / other
    hits = per.filter((pl.col("count") >= t.unusual_hour_min) & (other >= t.unusual_hour_history)
                      & (share < t.unusual_hour_share))
    return _finish(hits, "unusual_hours", hour, pl.col("user_id"), pl.lit(t.unusual_hour_min))


def _recall_sweep(lf: pl.LazyFrame, source: Any, t: MonitorThresholds) -> pl.LazyFrame:
    """Recalls by one user of entries first stored by >= `sweep_owners` other users in a window.
    Owners come from every store in the source, not only the period's."""
    owners = (scan_sources(source, operation=["STORE", "BULK_STORE"])
              .filter((pl.col("status") != "FAILURE") & pl.col("user_id").is_not_null())
              .select("timestamp", "user_id", pl.col("entry_ids").alias("entry_id"))
              .explode("entry_id").drop_nulls("entry_id")
              .group_by("entry_id").agg(pl.col("user_id").sort_by("timestamp").first().alias("owner")))
    hits = (lf.filter((pl.col("operation") == "RECALL") & pl.col("user_id").is_not_null())
            .select("event_id", "user_id", _window(t.sweep_window), pl.col("entry_ids").alias("entry_id"))
            .explode("entry_id")
            .join(owners, on="entry_id", how="inner")
            .filter(pl.col("owner") != pl.col("user_id"))
            .group_by("user_id", "window_start")
            .agg(pl.col("owner").n_unique().alias("count"), pl.col("event_id").unique().alias("event_ids"))
            .filter(pl.col("count") >= t.sweep_owners))
    return _finish(hits, "recall_sweep", t.sweep_window, pl.col("user_id"), pl.lit(t.sweep_owners))
