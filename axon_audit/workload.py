"""A seeded, realistic audit workload shared by the benchmarks, the demo and the notebook.

Events of a memory system for AI agents: Zipf-distributed users and entries,
sessions per user, an operation mix dominated by RECALL and STORE, a few
percent failures with error messages, log-normal latencies per operation, and
small metadata dicts, in time order with office hours busier than the night.
With an `OfficeCalendar` the traffic is office hours instead: each user works
in one of a few time zones, on weekdays (weekends light), 08:00-19:00 local
with a diurnal curve, and recalls and forgets their own entries.

Generation is vectorized end to end: numpy draws small integer codes, and every
string column is a polars gather from a small table of names (users, sessions,
entries, the ~2 000 distinct metadata texts), so no string is formatted per
event. 1 M events take a fraction of a second, 10 M a few seconds.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from axon_audit.model.enums import OPERATIONS
from axon_audit.model.timestamps import from_us, to_us

__all__ = ["OPERATION_MIX", "OfficeCalendar", "generate_events", "iter_log_calls"]

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
_ERRORS = (
    "Database connection timeout",
    "Vector index unavailable",
    "Permission denied for entry",
    "Entry not found",
    "Embedding service returned 503",
    "Quota exceeded",
)
_SOURCES = ("api", "agent", "batch", "ui")
_TAGS = ('["verified"]', '["draft"]', '["pii"]', '["verified","shared"]', "[]")
_STATUSES = ("SUCCESS", "FAILURE", "PARTIAL")
_SESSIONS_PER_USER = 20
_MAX_ENTRIES = 3  # STORE / FORGET / RECALL touch 1..3 entries; other operations none
_ENTRY_OPS = ("STORE", "FORGET", "RECALL")

_OPS = tuple(OPERATION_MIX)
# The mix in whole percent: an operation is one draw of 0..99 looked up here.
_OP_TABLE = np.repeat(np.arange(len(_OPS)), [round(p * 100) for p in OPERATION_MIX.values()])
_OP_MEDIAN = np.array([_MEDIAN_MS[o] for o in _OPS])
_OP_HAS_ENTRIES = np.array([o in _ENTRY_OPS for o in _OPS])
# Every metadata text there is: source x importance (0.00..1.00) x tags.
_METADATA = pl.Series(
    "metadata",
    [
        f'{{"source":"{src}","importance":{imp / 100!r},"tags":{tags}}}'
        for src in _SOURCES
        for imp in range(101)
        for tags in _TAGS
    ],
)

_HOUR_US, _DAY_US, _WEEK_US = 3_600_000_000, 86_400_000_000, 7 * 86_400_000_000


@dataclass(frozen=True)
class OfficeCalendar:
    """When people work: time zones (name, fixed UTC offset in hours) shared out
    by user rank, weights of each local hour of day, and a weekend day's weight
    relative to a weekday. Fixed offsets: no daylight saving in a simulation.

    Example:
        >>> from axon_audit.workload import OfficeCalendar
        >>> cal = OfficeCalendar()
        >>> cal.zone_of(0), cal.zone_of(2), round(sum(cal.hour_weights[8:19]) / sum(cal.hour_weights), 3)
        (('London', 0), ('New York', -5), 1.0)
    """

    zones: tuple[tuple[str, int], ...] = (("London", 0), ("Berlin", 1), ("New York", -5))
    #: 00..23 local: nobody before 08:00 or after 19:00, a lunch dip, a slow start and end
    hour_weights: tuple[float, ...] = (0, 0, 0, 0, 0, 0, 0, 0, 0.5, 0.9, 1.0, 1.0, 0.7, 0.8, 1.0, 1.0, 0.9,
                                       0.7, 0.4, 0, 0, 0, 0, 0)
    weekend: float = 0.08

    def __post_init__(self) -> None:
        if not self.zones or len(self.hour_weights) != 24 or min(self.hour_weights) < 0 \
                or sum(self.hour_weights) <= 0 or self.weekend < 0:
            raise ValueError("an OfficeCalendar needs zones, 24 hour weights >= 0 (not all 0) and weekend >= 0")

    def zone_of(self, rank: int) -> tuple[str, int]:
        """The time zone of the user of this 0-based rank."""
        return self.zones[rank % len(self.zones)]

    def offsets_us(self, ranks: np.ndarray) -> np.ndarray:
        """The UTC offset (microseconds) of each user rank."""
        table = np.array([off for _, off in self.zones], dtype=np.int64) * _HOUR_US
        return table[ranks % len(self.zones)]

    def times(self, rng: np.random.Generator, offsets_us: np.ndarray, start_us: int, span_us: int) -> np.ndarray:
        """One UTC microsecond time in [start, start + span) per event, unsorted,
        in office hours of the event's time zone (given as its UTC offset).

        A local day is drawn by weight (weekday 1, weekend `weekend`), then an hour
        by `hour_weights`, then a uniform time within it. A time that falls outside
        the span (the edge days of a zone) moves by whole weeks into it, which keeps
        its weekday and hour; a span under a week is clipped.
        """
        n = len(offsets_us)
        # Local days are the span's own days: drawing the edge days as well (and moving
        # their events a week in) doubled the traffic of two days of the month.
        first_day = start_us // _DAY_US
        n_days = max(1, -(-(start_us + span_us) // _DAY_US) - first_day)
        days = first_day + np.arange(n_days)
        weekday = (days + 3) % 7  # 1970-01-01 was a Thursday: Monday is 0
        w_day = np.where(weekday < 5, 1.0, self.weekend)
        if w_day.sum() == 0:
            w_day = np.ones(n_days)
        day = np.searchsorted(np.cumsum(w_day) / w_day.sum(), rng.random(n), side="right")
        w_hour = np.asarray(self.hour_weights, dtype=np.float64)
        hour = np.searchsorted(np.cumsum(w_hour) / w_hour.sum(), rng.random(n), side="right")
        within = (rng.random(n) * _HOUR_US).astype(np.int64)
        t = (first_day + np.minimum(day, n_days - 1)) * _DAY_US + np.minimum(hour, 23) * _HOUR_US + within \
            - offsets_us
        end_us = start_us + span_us
        t = np.where(t < start_us, t + -(-(start_us - t) // _WEEK_US) * _WEEK_US, t)
        t = np.where(t >= end_us, t - ((t - end_us) // _WEEK_US + 1) * _WEEK_US, t)
        return np.clip(t, start_us, end_us - 1)


def _zipf_ranks(rng: np.random.Generator, s: float, k: int | np.ndarray, size: int) -> np.ndarray:
    """0-based ranks in [0, k) with P(rank r) ~ (r + 1) ** -s: a Zipf law truncated at k
    (`k` may be one bound per draw).

    Inverse CDF of the continuous power law on [0.5, k + 0.5), rounded to the
    nearest rank (midpoint rule): one vectorized pass, unlike numpy's rejection
    sampler, and no pile-up at k.
    """
    if size == 0:
        return np.zeros(0, dtype=np.int64)
    a = 0.5 ** (1.0 - s)
    if np.ndim(k) == 0:
        width = np.float32((k + 0.5) ** (1.0 - s) - a)
    else:
        width = ((np.asarray(k, dtype=np.float64) + 0.5) ** (1.0 - s) - a).astype(np.float32)
    # float32 is exact enough for ranks below 2**24 and twice as fast as float64.
    u = rng.random(size, dtype=np.float32) * width + np.float32(a)
    x = np.exp(np.log(u) * np.float32(1.0 / (1.0 - s))) + np.float32(0.5)
    return np.clip(x.astype(np.int64), 1, k) - 1


def _sorted_times(rng: np.random.Generator, n: int, start_us: int, span_us: int) -> np.ndarray:
    """`n` sorted UTC microsecond times in [start, start + span): half of the
    events fall in 08:00-18:00 UTC, the rest spread over the whole day.

    Sorted uniforms come from normalized cumulative exponential gaps (order
    statistics), mapped through the inverse of the piecewise-linear time CDF:
    a monotone map, so the times come out sorted without sorting n values.
    """
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    hour, day = 3_600_000_000, 86_400_000_000
    end_us = start_us + span_us
    first_day = start_us // day * day
    n_days = -(-(end_us - first_day) // day)
    # Cumulative mass at 08:00, 18:00 and 24:00 of each day (density: 0.5 flat + 0.5 on 08-18h).
    day_knots = np.array([8 * hour, 18 * hour, 24 * hour], dtype=np.float64)
    day_mass = np.array([0.5 * 8 / 24, 0.5 * 18 / 24 + 0.5, 1.0])
    knots = np.concatenate([[0.0], (np.arange(n_days)[:, None] * float(day) + day_knots).ravel()]) + first_day
    mass = np.concatenate([[0.0], (np.arange(n_days)[:, None] + day_mass).ravel()])
    lo, hi = np.interp([start_us, end_us], knots, mass)
    gaps = rng.standard_exponential(n + 1)
    u = lo + np.cumsum(gaps[:-1]) * ((hi - lo) / gaps.sum())
    return np.clip(np.interp(u, mass, knots).astype(np.int64), start_us, end_us - 1)


def _gather(table: pl.Series, codes: np.ndarray) -> pl.Series:
    return table.gather(pl.Series(codes, dtype=pl.UInt32))


def generate_events(
    n: int,
    *,
    seed: int = 0,
    start: datetime | None = None,
    days: float = 30.0,
    n_users: int | None = None,
    failure_rate: float = 0.03,
    partial_rate: float = 0.01,
    calendar: OfficeCalendar | None = None,
    mix: Mapping[str, float] | None = None,
) -> pl.DataFrame:
    """`n` events in time order over `days` days from `start` (default: `days` ago).

    The frame has the export format's columns (without `event_id`) and goes
    straight into `AuditLogger.log_batch`; the same arguments give the same events.
    `calendar`: office-hours traffic (see `OfficeCalendar`) in which each user
    touches only their own entries; `mix`: operation shares instead of `OPERATION_MIX`.

    Example:
        >>> from datetime import datetime, timezone
        >>> from axon_audit.workload import generate_events
        >>> df = generate_events(1000, seed=1, start=datetime(2025, 1, 1, tzinfo=timezone.utc))
        >>> df.height, df["operation"].value_counts(sort=True)["operation"][0]
        (1000, 'RECALL')
        >>> df["timestamp"].is_sorted(), df.equals(generate_events(1000, seed=1, start=datetime(2025, 1, 1,
        ...                                                                                  tzinfo=timezone.utc)))
        (True, True)
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")
    if not days > 0:
        raise ValueError(f"days must be > 0, got {days!r}")
    n = int(n)
    rng = np.random.default_rng(seed)
    if start is None:
        start = datetime.now(timezone.utc) - timedelta(days=days)
    elif start.tzinfo is None:  # the one naive-time rule (local time unless AXON_AUDIT_NAIVE_TIME=utc)
        start = from_us(to_us(start, "start"))
    n_users = n_users or max(10, min(50_000, int(n ** 0.6)))
    start_us = int(start.timestamp()) * 1_000_000 + start.microsecond

    span_us = max(1, int(days * 86_400_000_000))
    if calendar is None:
        ts = _sorted_times(rng, n, start_us, span_us)
        users = _zipf_ranks(rng, 1.3, n_users, n)
    else:  # the user first: their time zone decides the time
        users = _zipf_ranks(rng, 1.3, n_users, n)
        ts = calendar.times(rng, calendar.offsets_us(users), start_us, span_us)
        order = np.argsort(ts, kind="stable")
        ts, users = ts[order], users[order]
    sessions = users * _SESSIONS_PER_USER + rng.integers(0, _SESSIONS_PER_USER, n)
    if mix is None:
        ops = _OP_TABLE[rng.integers(0, len(_OP_TABLE), n, dtype=np.int16)]
    else:
        ops = _draw_ops(rng, mix, n)
    u = rng.random(n)
    status = np.where(u < failure_rate, 1, np.where(u < failure_rate + partial_rate, 2, 0))
    error = rng.integers(0, len(_ERRORS), n)
    duration = np.round(_OP_MEDIAN[ops] * np.exp(rng.normal(0.0, 0.8, n)), 3)
    n_entries = np.where(_OP_HAS_ENTRIES[ops], rng.integers(1, _MAX_ENTRIES + 1, n), 0)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(n_entries, out=offsets[1:])
    if calendar is None:
        entry_pool = max(100, n // 5)
        entry_ranks = _zipf_ranks(rng, 1.2, entry_pool, int(offsets[-1]))
    else:  # a user's memories are theirs: a pool per user, sized by their activity
        pools = np.maximum(3, np.bincount(users, minlength=n_users) // 5)
        bases = np.concatenate([[0], np.cumsum(pools)[:-1]])
        owner = np.repeat(users, n_entries)
        entry_pool = int(pools.sum())
        entry_ranks = bases[owner] + _zipf_ranks(rng, 1.2, pools[owner], int(offsets[-1]))
    meta = (rng.integers(0, len(_SOURCES), n) * 101 + np.rint(rng.random(n) * 100).astype(np.int64)) * len(_TAGS) \
        + rng.integers(0, len(_TAGS), n)

    # Name tables: one string per distinct value, gathered by code.
    user_names = pl.select("user_" + pl.int_range(0, n_users).cast(pl.String).str.zfill(5)).to_series()
    session_names = pl.select(
        "session_" + (pl.int_range(0, n_users * _SESSIONS_PER_USER) // _SESSIONS_PER_USER * 1000
                      + pl.int_range(0, n_users * _SESSIONS_PER_USER) % _SESSIONS_PER_USER).cast(pl.String)
    ).to_series()
    present = np.zeros(entry_pool, dtype=bool)
    present[entry_ranks] = True  # a scatter, not a sort: only drawn entries get a name
    used = np.flatnonzero(present)
    entry_code = np.zeros(entry_pool, dtype=np.int64)
    entry_code[used] = np.arange(len(used))
    entry_names = pl.select("entry_" + pl.Series(used + 1).cast(pl.String).str.zfill(7)).to_series()
    # The list column straight from offsets + values (polars' concat_list costs ~1 us/row).
    entry_values = _gather(entry_names, entry_code[entry_ranks]).to_arrow(compat_level=pl.CompatLevel.newest())
    entry_lists = pl.Series("entry_ids", pa.LargeListArray.from_arrays(pa.array(offsets), entry_values))

    frame = pl.DataFrame(
        {
            "timestamp": pl.Series(ts, dtype=pl.Int64).cast(pl.Datetime("us", "UTC")),
            "operation": _gather(pl.Series(_OPS), ops),
            "user_id": _gather(user_names, users),
            "session_id": _gather(session_names, sessions),
            "entry_ids": entry_lists,
            "metadata": _gather(_METADATA, meta),
            "status": _gather(pl.Series(_STATUSES), status),
            "error": _gather(pl.Series(_ERRORS), error),
            "duration_ms": duration,
        }
    )
    return frame.select(
        "timestamp",
        "operation",
        "user_id",
        "session_id",
        "entry_ids",
        "metadata",
        "status",
        pl.when(pl.col("status") == "FAILURE").then(pl.col("error")).alias("error_message"),
        "duration_ms",
    )


def _draw_ops(rng: np.random.Generator, mix: Mapping[str, float], n: int) -> np.ndarray:
    """Operation codes (indexes into `_OPS`) drawn with the shares of `mix`."""
    unknown = set(mix) - set(_OPS)
    weights = np.array([float(mix.get(op, 0.0)) for op in _OPS])
    if unknown or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"mix must map some of {list(_OPS)} to shares >= 0, got {dict(mix)!r}")
    cum = np.cumsum(weights) / weights.sum()
    return np.minimum(np.searchsorted(cum, rng.random(n), side="right"), len(_OPS) - 1)


def iter_log_calls(df: pl.DataFrame) -> Iterator[dict[str, Any]]:
    """Keyword arguments for `log_event`/`log`, one dict per event of `df`
    (the logger stamps its own time and id).

    Example:
        >>> from axon_audit.workload import generate_events, iter_log_calls
        >>> sorted(next(iter_log_calls(generate_events(5))))[:3]
        ['duration_ms', 'entry_ids', 'error_message']
    """
    import orjson

    loads = orjson.loads
    # Per-event Python here is the point: it feeds the per-event logging path.
    for op, user, session, entries, meta, status, error, duration in df.select(
        "operation", "user_id", "session_id", "entry_ids", "metadata", "status", "error_message", "duration_ms"
    ).iter_rows():
        yield {
            "operation": op,
            "user_id": user,
            "session_id": session,
            "entry_ids": entries,
            "metadata": loads(meta) if meta is not None else None,
            "status": status,
            "error_message": error,
            "duration_ms": duration,
        }


assert set(OPERATION_MIX) == set(OPERATIONS) and len(_OP_TABLE) == 100
