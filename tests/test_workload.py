"""The shared workload generator: deterministic, realistic in shape, and fit for logging."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axon_audit import AuditLogger
from axon_audit.workload import OPERATION_MIX, OfficeCalendar, generate_events, iter_log_calls

START = datetime(2025, 3, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def big() -> pl.DataFrame:
    return generate_events(200_000, seed=7, start=START, days=10)


def test_same_seed_same_events_other_seed_other_events() -> None:
    a = generate_events(5000, seed=3, start=START)
    assert a.equals(generate_events(5000, seed=3, start=START))
    assert not a.equals(generate_events(5000, seed=4, start=START))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 3000), seed=st.integers(0, 2**32), days=st.floats(0.01, 60))
def test_shape_and_order_for_any_size(n: int, seed: int, days: float) -> None:
    df = generate_events(n, seed=seed, start=START, days=days)
    assert df.height == n
    assert df.columns == ["timestamp", "operation", "user_id", "session_id", "entry_ids", "metadata", "status",
                          "error_message", "duration_ms"]
    assert df["timestamp"].is_sorted()
    if n:
        span_us = (df["timestamp"].max() - START).total_seconds() * 1e6
        assert df["timestamp"].min() >= START and span_us < days * 86_400e6
        assert df["operation"].is_in(list(OPERATION_MIX)).all()
        assert (df["error_message"].is_not_null() == (df["status"] == "FAILURE")).all()
        assert (df["duration_ms"] > 0).all()
        with_entries = df["operation"].is_in(["STORE", "FORGET", "RECALL"])
        lens = df["entry_ids"].list.len()
        assert ((lens > 0) == with_entries).all() and (lens <= 3).all()


def test_distribution_is_realistic(big: pl.DataFrame) -> None:
    n = big.height
    shares = big["operation"].value_counts().with_columns(pl.col("count") / n)
    for op, share in shares.iter_rows():
        assert share == pytest.approx(OPERATION_MIX[op], abs=0.01), op
    assert (big["status"] == "FAILURE").mean() == pytest.approx(0.03, abs=0.005)
    assert (big["status"] == "PARTIAL").mean() == pytest.approx(0.01, abs=0.003)
    # Zipf users: the top user alone has a large share, and there is a long tail.
    users = big["user_id"].value_counts(sort=True)["count"].to_numpy()
    assert users[0] / n > 0.1 and users[0] > 10 * users[min(50, len(users) - 1)]
    # Office hours (08-18 UTC) hold 0.5 + 0.5 * 10/24 of the events.
    hours = big["timestamp"].dt.hour()
    assert ((hours >= 8) & (hours < 18)).mean() == pytest.approx(0.5 + 0.5 * 10 / 24, abs=0.01)
    # Log-normal latencies: median near each operation's median, long right tail.
    recall = big.filter(pl.col("operation") == "RECALL")["duration_ms"]
    assert recall.median() == pytest.approx(12.0, rel=0.05)
    assert recall.quantile(0.99) > 5 * recall.median()
    meta = big["metadata"].head(1000).str.json_decode()
    assert set(meta.struct.fields) == {"source", "importance", "tags"}


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="n must be"):
        generate_events(-1)
    with pytest.raises(ValueError, match="days must be"):
        generate_events(10, days=0)


def test_feeds_the_logger_in_bulk_and_per_event() -> None:
    df = generate_events(2000, seed=1, start=START)
    audit = AuditLogger(max_events=100_000)
    assert audit.log_batch(df) == 2000
    for call in iter_log_calls(df.head(100)):
        audit.log(**call)
    stats = audit.get_statistics()
    assert stats["total_events"] == 2100
    expected = df["operation"].value_counts().rows() + df.head(100)["operation"].value_counts().rows()
    counts: dict[str, int] = {}
    for op, c in expected:
        counts[op] = counts.get(op, 0) + c
    assert {k: v for k, v in stats["by_operation"].items() if v} == counts
    first = next(iter_log_calls(df))
    assert isinstance(first["metadata"], dict) and first["entry_ids"] == df["entry_ids"][0].to_list()
    np.testing.assert_allclose(first["duration_ms"], df["duration_ms"][0])


# ---------------------------------------------------------------- office-hours calendar

CAL = OfficeCalendar()


@pytest.fixture(scope="module")
def office() -> pl.DataFrame:
    return generate_events(100_000, seed=5, start=START, days=30, calendar=CAL)


def local_time(df: pl.DataFrame) -> pl.Series:
    """Each event's time in its user's zone (the zone is the user's rank modulo the zones)."""
    rank = df["user_id"].str.slice(5).cast(pl.Int64).to_numpy()
    shifted = df["timestamp"].dt.epoch("us") + pl.Series(CAL.offsets_us(rank))
    return shifted.cast(pl.Datetime("us", "UTC"))


def test_office_hours_time_model(office: pl.DataFrame) -> None:
    ts = office["timestamp"]
    assert ts.is_sorted() and ts.min() >= START and ts.max() < START + timedelta(days=30)
    local = local_time(office)
    weekday_share = (local.dt.weekday() <= 5).mean()
    office_share = ((local.dt.hour() >= 8) & (local.dt.hour() < 19)).mean()
    assert weekday_share > 0.85 and office_share > 0.80
    # Nobody works at night in their own zone; a weekend day is light, but not empty.
    assert office_share == 1.0
    per_day = local.dt.date().value_counts()["count"]
    assert per_day.max() > 5 * per_day.filter(per_day > 0).min()
    # Every weekday carries about the same traffic (no day doubled by the span's edges).
    weekdays = office.filter(pl.col("timestamp").dt.weekday() <= 5)["timestamp"].dt.date().value_counts()["count"]
    assert weekdays.max() < 1.15 * weekdays.min()
    # Every day of the span has traffic in some zone, and the busiest local hours are mid-morning or afternoon.
    assert ts.dt.date().n_unique() == 30
    busiest = local.dt.hour().value_counts(sort=True)["timestamp"][0]
    assert busiest in (10, 11, 14, 15)
    # Three zones: the UTC hours span London's, Berlin's and New York's office hours.
    utc_hours = set(ts.dt.hour().unique().to_list())
    assert {7, 12, 23} <= utc_hours and not {1, 2, 3, 4, 5} & utc_hours


def test_office_hours_are_deterministic_for_a_seed() -> None:
    a = generate_events(20_000, seed=9, start=START, calendar=CAL, mix={"RECALL": 0.6, "STORE": 0.4})
    assert a.equals(generate_events(20_000, seed=9, start=START, calendar=CAL, mix={"RECALL": 0.6, "STORE": 0.4}))
    assert not a.equals(generate_events(20_000, seed=10, start=START, calendar=CAL, mix={"RECALL": 0.6, "STORE": 0.4}))
    assert set(a["operation"].unique()) == {"RECALL", "STORE"}
    assert (a["operation"] == "STORE").mean() == pytest.approx(0.4, abs=0.02)


def test_office_users_touch_only_their_own_entries(office: pl.DataFrame) -> None:
    pairs = office.select("user_id", pl.col("entry_ids").alias("e")).explode("e").drop_nulls().unique()
    assert pairs["e"].n_unique() == pairs.height  # no entry is touched by two users


def test_short_spans_and_bad_calendars() -> None:
    short = generate_events(1000, seed=1, start=START, days=0.5, calendar=CAL)
    assert short["timestamp"].min() >= START and short["timestamp"].max() < START + timedelta(hours=12)
    with pytest.raises(ValueError, match="24 hour weights"):
        OfficeCalendar(hour_weights=(1.0,) * 23)
    with pytest.raises(ValueError, match="mix must map"):
        generate_events(10, mix={"NAP": 1.0})
