"""The demo's plan: office-hours traffic tuned to stay under the `SecurityMonitor`'s
thresholds, a few planted incidents (each meant to trip one rule), and the check
of which of them the monitor found.

The traffic is tuned, never the thresholds: a small pilot of the same calendar
measures the busiest hour, quarter hour and day, and the shares of FORGET and
EXPORT and the failure rate are lowered until the busiest window expects well
under its rule's maximum. The incidents are events of the same schema merged
into the traffic by time, so they are logged like everything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import polars as pl

from axon_audit.compliance.monitor import Alert, MonitorThresholds
from axon_audit.workload import OPERATION_MIX, OfficeCalendar, generate_events

__all__ = ["CALENDAR", "Incident", "check_incidents", "office_traffic", "plant_incidents", "quiet_rates"]

CALENDAR = OfficeCalendar()
_DAY, _SECOND = timedelta(days=1), timedelta(seconds=1)
# Expected events in the busiest window of each global rule, against its maximum (100, 10, 5):
# Poisson tails put a false alert over a month at well under one in a hundred.
_TARGET_FORGETS_PER_HOUR = 50.0
_TARGET_FAILURES_PER_QUARTER = 2.0
_TARGET_EXPORTS_PER_DAY = 0.6
# ... and of the busiest user's own forgets or failures in their busiest hour, against user_spike_min
# (10): their baseline counts the nights, so office hours alone sit ~3.6x above it.
_TARGET_USER_PER_HOUR = 1.0
_PILOT = 50_000


@dataclass(frozen=True)
class Incident:
    """One planted incident: what it is, the rule it should trip, whose and when."""

    name: str
    rule: str
    user_id: str
    start: datetime
    end: datetime
    events: int
    story: str
    also: tuple[str, ...] = ()  # rules it trips as well, by its nature

    def explains(self, alert: Alert) -> bool:
        """The alert is about this incident: one of its rules, its window overlaps, its user (or all users)."""
        return ((alert.rule == self.rule or alert.rule in self.also) and alert.window_start < self.end
                and alert.window_end > self.start and alert.user_id in (None, self.user_id))


def quiet_rates(n: int, seed: int, start: datetime, days: float,
                thresholds: MonitorThresholds | None = None) -> tuple[dict[str, float], float]:
    """An operation mix and failure rate for `n` office-hours events that keep the busiest
    window of each global rule well under its maximum (only if the defaults would not)."""
    t = thresholds or MonitorThresholds()
    pilot_n = min(n, _PILOT)
    pilot = generate_events(pilot_n, seed=seed, start=start, days=days, calendar=CALENDAR).lazy()
    scale = n / max(pilot_n, 1)

    def busiest(window: timedelta) -> float:
        counts = pilot.group_by(pl.col("timestamp").dt.truncate(window)).len().collect()["len"]
        # The mean of the top few windows: the maximum of a small pilot is noisy.
        return float(counts.sort(descending=True).head(3).mean() or 0) * scale

    top = pilot.group_by("user_id").len().sort("len", descending=True).head(1).select("user_id").collect()
    per_user = pilot.join(top.lazy(), on="user_id")
    top_hour = float(per_user.group_by(pl.col("timestamp").dt.truncate(t.user_window)).len().collect()["len"]
                     .sort(descending=True).head(3).mean() or 0) * scale
    user_cap = _TARGET_USER_PER_HOUR * t.user_spike_min / 10 / max(top_hour, 1)
    forget = min(OPERATION_MIX["FORGET"], user_cap,
                 _TARGET_FORGETS_PER_HOUR * t.max_deletions / 100 / max(busiest(t.deletion_window), 1))
    export = min(OPERATION_MIX["EXPORT"],
                 _TARGET_EXPORTS_PER_DAY * t.max_exports / 5 / max(busiest(t.export_window), 1))
    failures = min(0.03, user_cap,
                   _TARGET_FAILURES_PER_QUARTER * t.max_failures / 10 / max(busiest(t.failure_window), 1))
    mix = dict(OPERATION_MIX, FORGET=forget, EXPORT=export)
    # What FORGET and EXPORT give up goes to RECALL and STORE, in their proportion.
    slack = 1.0 - sum(mix.values())
    both = OPERATION_MIX["RECALL"] + OPERATION_MIX["STORE"]
    mix["RECALL"] += slack * OPERATION_MIX["RECALL"] / both
    mix["STORE"] += slack * OPERATION_MIX["STORE"] / both
    return mix, failures


def office_traffic(n: int, seed: int, start: datetime, days: float = 30.0) -> pl.DataFrame:
    """`n` events of synthetic office-hours load over `days` days from `start`, tuned by `quiet_rates`."""
    mix, failures = quiet_rates(n, seed, start, days)
    return generate_events(n, seed=seed, start=start, days=days, calendar=CALENDAR, mix=mix,
                           failure_rate=failures, partial_rate=min(0.01, failures))


def _rank(user: str) -> int:
    return int(user.rsplit("_", 1)[1])


def _pick_days(rng: np.random.Generator, start: datetime, days: float, weekend: bool, k: int) -> list[datetime]:
    """`k` UTC midnights of whole days inside the span (not its first or last), weekdays or weekend days."""
    first = (start + _DAY).replace(hour=0, minute=0, second=0, microsecond=0) + _DAY
    end = start + timedelta(days=days) - _DAY
    every = [first + i * _DAY for i in range(max(0, (end - first) // _DAY))]
    fitting = [d for d in every if (d.weekday() >= 5) == weekend] or every or [first]
    return [fitting[i] for i in rng.choice(len(fitting), size=k, replace=len(fitting) < k)]


def _rows(user: str, op: str, times: list[datetime], entries: list[list[str]], *, status: str = "SUCCESS",
          error: str | None = None, source: str = "api", ms: float = 10.0) -> dict[str, list[Any]]:
    n = len(times)
    return {"timestamp": times, "operation": [op] * n, "user_id": [user] * n,
            "session_id": [f"session_{_rank(user) * 1000 + 19}"] * n, "entry_ids": entries,
            "metadata": [f'{{"source":"{source}","importance":0.5,"tags":[]}}'] * n,
            "status": [status] * n, "error_message": [error] * n, "duration_ms": [ms] * n}


def plant_incidents(df: pl.DataFrame, seed: int, start: datetime,
                    days: float = 30.0) -> tuple[pl.DataFrame, list[Incident]]:
    """The traffic with five incidents merged in by time, and the incidents."""
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    rng = np.random.default_rng([seed, 2026])
    counts = df.filter(pl.col("user_id").str.starts_with("user_"))["user_id"].value_counts(sort=True)
    # Mid-sized users of the London office (rank % zones == 0): enough history to have habits.
    london = [u for u, c in counts.iter_rows() if _rank(u) % len(CALENDAR.zones) == 0 and c >= 60 and _rank(u) > 0]
    anyone = [u for u, c in counts.iter_rows() if c >= 60 and _rank(u) > 0] or counts["user_id"].to_list()[1:] \
        or ["user_00001"]
    london = london or anyone
    picks = [london[i] for i in rng.permutation(len(london))[:4]]
    picks += [london[0]] * (4 - len(picks))
    forgetter, failing, exporter, night_owl = picks
    sweeper = next((u for u in anyone if u not in picks), anyone[0])
    d1, d2, d3, d4 = _pick_days(rng, start, days, False, 4)
    sunday, = _pick_days(rng, start, days, True, 1)

    stored = (df.filter(pl.col("operation") == "STORE", pl.col("status") != "FAILURE")
              .select("user_id", pl.col("entry_ids").list.first().alias("entry")))
    incidents: list[Incident] = []
    frames: list[dict[str, list[Any]]] = []

    def add(incident: Incident, rows: dict[str, list[Any]]) -> None:
        incidents.append(incident)
        frames.append(rows)

    # 1. A user forgets 150 entries at 03:00 UTC on a weekday: more than 100 deletions in an hour.
    own = stored.filter(pl.col("user_id") == forgetter)["entry"].unique(maintain_order=True).to_list()[:150]
    own += [f"entry_{10_000_000 + i}" for i in range(150 - len(own))]
    at = d1 + timedelta(hours=3, minutes=2)
    times = [at + timedelta(seconds=18 * i) for i in range(150)]
    add(Incident("mass forgetting at night", "excessive_deletions", forgetter, times[0], times[-1] + _SECOND,
                 150, f"{forgetter} forgets 150 entries between 03:02 and 03:47 UTC on {d1:%a %Y-%m-%d}",
                 ("user_deletion_spike", "unusual_hours")),
        _rows(forgetter, "FORGET", times, [[e] for e in own], ms=8.0))
    # 2. One agent's recalls fail 40 times in 9 minutes (the embedding service is down for it).
    at = d2 + timedelta(hours=14, minutes=1)
    times = [at + timedelta(seconds=13.5 * i) for i in range(40)]
    add(Incident("failure burst from one agent", "failure_burst", failing, times[0], times[-1] + _SECOND, 40,
                 f"{failing}'s recalls fail 40 times from 14:01 UTC on {d2:%a %Y-%m-%d}", ("user_failure_spike",)),
        _rows(failing, "RECALL", times, [[]] * 40, status="FAILURE", error="Embedding service returned 503",
              source="agent", ms=30_000.0))
    # 3. Twelve bulk exports in 90 minutes: more than 5 exports in a day.
    at = d3 + timedelta(hours=16, minutes=5)
    times = [at + timedelta(minutes=8 * i) for i in range(12)]
    add(Incident("unusual bulk export", "export_activity", exporter, times[0], times[-1] + _SECOND, 12,
                 f"{exporter} exports the memory store 12 times from 16:05 UTC on {d3:%a %Y-%m-%d}"),
        _rows(exporter, "EXPORT", times, [[]] * 12, source="batch", ms=2_500.0))
    # 4. One user recalls an entry of each of 30 other users within 6 minutes.
    victims = (stored.filter(pl.col("user_id") != sweeper).unique("user_id", keep="first", maintain_order=True)
               .head(30)["entry"].to_list())
    at = d4 + timedelta(hours=10, minutes=21)
    times = [at + timedelta(seconds=12 * i) for i in range(len(victims))] or [at]
    add(Incident("recall sweep over other users' entries", "recall_sweep", sweeper, times[0],
                 times[-1] + _SECOND, len(victims),
                 f"{sweeper} recalls entries of {len(victims)} other users from 10:21 UTC on {d4:%a %Y-%m-%d}"),
        _rows(sweeper, "RECALL", times[:len(victims)], [[e] for e in victims]))
    # 5. A London user works at 02:10 UTC on a Sunday, an hour they never work.
    mine = stored.filter(pl.col("user_id") == night_owl)["entry"].head(8).to_list()
    mine += [f"entry_{10_000_200 + i}" for i in range(8 - len(mine))]
    at = sunday + timedelta(hours=2, minutes=10)
    times = [at + timedelta(minutes=2.5 * i) for i in range(8)]
    add(Incident("activity at an unusual hour", "unusual_hours", night_owl, times[0], times[-1] + _SECOND,
                 8, f"{night_owl} recalls 8 entries from 02:10 UTC on {sunday:%a %Y-%m-%d}"),
        _rows(night_owl, "RECALL", times, [[e] for e in mine]))

    planted = pl.concat([pl.DataFrame(rows, schema=df.schema) for rows in frames])
    merged = pl.concat([df, planted]).sort("timestamp", maintain_order=True)
    return merged, incidents


def check_incidents(incidents: list[Incident], alerts: list[Alert]) -> tuple[dict[str, bool], list[Alert]]:
    """Whether each incident's rule fired for it (by name), and the alerts no incident explains."""
    found = {i.name: any(a.rule == i.rule and i.explains(a) for a in alerts) for i in incidents}
    others = [a for a in alerts if not any(i.explains(a) for i in incidents)]
    return found, others
