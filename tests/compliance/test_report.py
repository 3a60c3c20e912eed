"""compliance_report: every section against a hand count; the seed's example agrees."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axon_audit import (
    AuditLogger,
    AuditTypeError,
    AuditValueError,
    compliance_report,
    month_period,
)
from axon_audit.workload import generate_events
from tests import seed_report

UTC = timezone.utc


def test_seed_shape_sections_hand_counted(small_logger):
    r = compliance_report(small_logger, "2026-11").to_dict()
    assert r["period"] == "2026-11"
    assert r["total_events"] == 9
    assert r["users"] == 3  # alice, bob, anonymous
    assert r["operations"] == {"STORE": 2, "RECALL": 3, "FORGET": 2, "EXPORT": 1, "COMPACT": 1}
    assert r["user_activity"] == {
        "alice": {"total": 4, "stores": 1, "recalls": 1, "deletions": 1},
        "bob": {"total": 4, "stores": 1, "recalls": 2, "deletions": 1},
        "anonymous": {"total": 1, "stores": 0, "recalls": 0, "deletions": 0},
    }
    assert r["statuses"] == {"SUCCESS": 6, "FAILURE": 2, "PARTIAL": 1}
    assert r["success_rate"] == pytest.approx(6 / 9)
    f = r["failures_by_operation"]
    assert f["STORE"] == {"total": 2, "failures": 1, "partial": 0, "most_common_error": "Quota exceeded",
                          "failure_rate": 0.5}
    assert f["RECALL"]["failures"] == 1 and f["RECALL"]["failure_rate"] == pytest.approx(1 / 3)
    assert f["COMPACT"]["partial"] == 1 and f["COMPACT"]["failures"] == 0
    assert r["exports_and_deletions"] == {
        "alice": {"exports": 1, "deletions": 1, "entries_deleted": 1},
        "bob": {"exports": 0, "deletions": 1, "entries_deleted": 2},
    }
    lat = r["latency_ms"]
    assert lat["STORE"]["count"] == 2 and lat["STORE"]["p50"] == pytest.approx(30.0)
    assert lat["RECALL"]["count"] == 2 and lat["RECALL"]["max"] == 60.0  # one recall has no duration
    assert lat["ALL"]["count"] == 8 and lat["ALL"]["mean"] == pytest.approx(315.0 / 8)
    assert r["entry_access"] == []  # none asked for


def test_entry_access_lists_every_touch_in_period(small_logger):
    r = compliance_report(small_logger, "2026-11", entry_ids=["e1", "e4"])
    acc = r.frames["entry_access"]
    assert acc.select("entry_id", "event_id").rows() == [
        ("e1", "evt_a1"), ("e1", "evt_a2"), ("e1", "evt_b2"), ("e1", "evt_b3"), ("e4", "evt_b4")]
    assert r["entry_access"][0]["timestamp"] == "2026-11-03T09:00:00.000000Z"


def test_december_and_half_open_bounds(small_logger):
    dec = compliance_report(small_logger, "2026-12")
    assert dec.period == "2026-12" and dec.total_events == 2
    assert dec["user_activity"] == {"carol": {"total": 2, "stores": 1, "recalls": 1, "deletions": 0}}
    # The period is [start, end): the event at exactly Dec 1 00:00 belongs to December only.
    nov = compliance_report(small_logger, *month_period(2026, 11))
    assert nov.total_events + dec.total_events == 11
    start, end = month_period(2026, 12)
    assert (start, end) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    custom = compliance_report(small_logger, datetime(2026, 11, 6, tzinfo=UTC), datetime(2026, 11, 8, tzinfo=UTC))
    assert custom.total_events == 3 and custom.period.startswith("2026-11-06T00:00:00+00:00/")


def test_frames_dict_and_html(small_logger):
    r = compliance_report(small_logger, "2026-11", entry_ids="e1")
    assert set(r.frames) == {"summary", "operations", "statuses", "user_activity", "failures_by_operation",
                             "exports_and_deletions", "entry_access", "latency_ms"}
    assert all(isinstance(df, pl.DataFrame) for df in r.frames.values())
    html = r._repr_html_()
    assert "Compliance report" in html and "2026-11" in html and "failures_by_operation" in html
    assert '"total_events": 9' in r.to_json()


def test_empty_period_and_bad_arguments(small_logger):
    r = compliance_report(small_logger, "2025-01")
    assert r.to_dict()["total_events"] == 0 and r["users"] == 0 and r["operations"] == {}
    assert r["success_rate"] == 1.0
    with pytest.raises(AuditValueError, match="start"):
        compliance_report(small_logger, "November")
    with pytest.raises(AuditValueError, match="start must be before end"):
        compliance_report(small_logger, datetime(2026, 2, 1), datetime(2026, 1, 1))
    with pytest.raises(AuditTypeError, match="source"):
        compliance_report(object())
    with pytest.raises(AuditTypeError, match="end"):
        compliance_report(small_logger, datetime(2026, 1, 1), "2026-02-01")
    with pytest.raises(AuditValueError, match="month"):
        month_period(2026, 13)


def test_seed_example_agrees_and_ours_works_in_december():
    seed_report.audit_logger = audit_logger = AuditLogger(enable_rotation=False)
    df = generate_events(20_000, seed=11, start=datetime(2026, 10, 20, tzinfo=UTC), days=60)
    # Some anonymous events too.
    df = df.with_columns(pl.when(pl.int_range(pl.len()) % 97 == 0).then(None).otherwise("user_id").alias("user_id"))
    audit_logger.log_batch(df)
    seed = asyncio.run(seed_report.generate_compliance_report(11, 2026))
    ours = compliance_report(audit_logger, datetime(2026, 11, 1), datetime(2026, 12, 1)).to_dict()
    assert seed["total_events"] > 5000
    assert {k: ours[k] for k in seed} == seed
    with pytest.raises(ValueError):  # the seed's version: month 13
        asyncio.run(seed_report.generate_compliance_report(12, 2026))
    dec = compliance_report(audit_logger, "2026-12")
    expected = df.filter(pl.col("timestamp").dt.month() == 12).height
    assert dec.total_events == expected > 0


events_strategy = st.lists(
    st.tuples(
        st.integers(0, 90 * 86_400),  # seconds from Oct 1, 2026
        st.sampled_from(["STORE", "RECALL", "FORGET", "EXPORT"]),
        st.sampled_from(["u1", "u2", None]),
        st.sampled_from(["SUCCESS", "FAILURE"]),
    ),
    max_size=60,
)


@settings(max_examples=40, deadline=None)
@given(events_strategy)
def test_months_partition_the_quarter(rows):
    audit = AuditLogger(enable_rotation=False)
    base = datetime(2026, 10, 1, tzinfo=UTC)
    if rows:
        audit.log_batch([{"timestamp": base + timedelta(seconds=s), "operation": op, "user_id": u, "status": stt}
                         for s, op, u, stt in rows])
    months = [compliance_report(audit, f"2026-{m:02d}").to_dict() for m in (10, 11, 12)]
    quarter = compliance_report(audit, base, datetime(2027, 1, 1, tzinfo=UTC)).to_dict()
    assert sum(m["total_events"] for m in months) == quarter["total_events"] == len(rows)
    # A plain-Python model of the seed's sections, month by month.
    for month, m in zip((10, 11, 12), months, strict=True):
        mine = [(op, u or "anonymous", stt) for sec, op, u, stt in rows
                if (base + timedelta(seconds=sec)).month == month]
        ops: dict = {}
        users: dict = {}
        for op, u, _stt in mine:
            ops[op] = ops.get(op, 0) + 1
            a = users.setdefault(u, {"total": 0, "stores": 0, "recalls": 0, "deletions": 0})
            a["total"] += 1
            a["stores"] += op == "STORE"
            a["recalls"] += op == "RECALL"
            a["deletions"] += op == "FORGET"
        assert (m["operations"], m["user_activity"], m["users"]) == (ops, users, len(users))
        assert m["statuses"].get("FAILURE", 0) == sum(stt == "FAILURE" for *_, stt in mine)
    for m in [*months, quarter]:
        assert sum(m["operations"].values()) == m["total_events"]
        assert sum(u["total"] for u in m["user_activity"].values()) == m["total_events"]
        assert m["users"] == len(m["user_activity"])
        assert sum(m["statuses"].values()) == m["total_events"]


def test_logger_summary_card(small_logger):
    html = small_logger._repr_html_()
    assert "AuditLogger (max_events=10,000)" in html
    assert "total events logged" in html and "<b>11</b>" in html and "RECALL" in html


def test_several_sources_are_unioned_and_each_event_counted_once(small_logger):
    other = AuditLogger()
    other.log("store", user_id="dora")
    both = compliance_report([small_logger, other, small_logger])
    assert both.total_events == 12 and "dora" in both["user_activity"]
