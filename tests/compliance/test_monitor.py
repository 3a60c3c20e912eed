"""SecurityMonitor: every rule fires on a planted pattern and stays quiet on normal traffic."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from axon_audit import AuditLogger, AuditTypeError, AuditValueError, MonitorThresholds, SecurityMonitor
from axon_audit.workload import generate_events

UTC = timezone.utc
START = datetime(2026, 11, 1, tzinfo=UTC)
# Normal traffic: 20 K events in November. The seed's global thresholds are absolute, sized for
# a small system; exports here run ~7 a day, so the export threshold is raised to fit the volume.
SCALED = {"max_exports": 30}


def background() -> pl.DataFrame:
    return generate_events(20_000, seed=5, start=START, days=30)


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=UTC)


def events(n: int, op: str, user: str, first: datetime, step: timedelta, prefix: str, **extra) -> list[dict]:
    return [{"event_id": f"{prefix}{i:04d}", "timestamp": first + i * step, "operation": op, "user_id": user,
             **extra} for i in range(n)]


def logger_with(*planted: list[dict]) -> AuditLogger:
    audit = AuditLogger(enable_rotation=False)
    audit.log_batch(background())
    for rows in planted:
        audit.log_batch(rows)
    return audit


def fired(alerts, rule):
    return [a for a in alerts if a.rule == rule]


def test_quiet_on_normal_traffic():
    alerts = SecurityMonitor(**SCALED).evaluate(logger_with())
    assert list(alerts) == [], [a.message for a in alerts]


def test_excessive_deletions_fires_with_the_events_behind_it():
    planted = events(150, "FORGET", "mallory", at(10, 10), timedelta(seconds=10), "evt_del", entry_ids=["x"])
    audit = logger_with(planted)
    alerts = SecurityMonitor(**SCALED).evaluate(audit)
    (a,) = fired(alerts, "excessive_deletions")
    assert a.user_id is None and a.window_start == at(10, 10) and a.window_end == at(10, 11)
    assert {r["event_id"] for r in planted} <= set(a.event_ids)
    in_window = audit.scan(operation="FORGET", start_time=at(10, 10), end_time=at(10, 11) - timedelta(microseconds=1))
    assert a.count == len(a.event_ids) == in_window.collect().height
    assert a.severity == "high" and "Excessive deletions" in a.message
    # mallory never deleted before: a per-user spike as well
    assert [x.user_id for x in fired(alerts, "user_deletion_spike")] == ["mallory"]


def test_failure_burst_and_export_activity():
    burst = events(15, "RECALL", "x1", at(12, 3, 0), timedelta(seconds=20), "evt_f", status="FAILURE")
    exports = events(40, "EXPORT", "x2", at(20, 1), timedelta(minutes=20), "evt_x")
    alerts = SecurityMonitor(**SCALED).evaluate(logger_with(burst, exports))
    (f,) = fired(alerts, "failure_burst")
    assert f.window_start == at(12, 3) and {r["event_id"] for r in burst} <= set(f.event_ids)
    (x,) = fired(alerts, "export_activity")
    assert x.window_start == at(20, 0) and x.count >= 40 and x.threshold == 30


def test_user_spikes_compare_a_user_with_their_own_baseline():
    # dave deletes twice a day all month, then 25 times in one hour; erin fails daily, then 12 times in an hour.
    dave = events(60, "FORGET", "dave", at(1, 9), timedelta(hours=12), "evt_dv")
    dave += events(25, "FORGET", "dave", at(15, 14), timedelta(minutes=2), "evt_ds")
    erin = events(30, "STORE", "erin", at(1, 9), timedelta(days=1), "evt_ev", status="FAILURE")
    erin += events(12, "STORE", "erin", at(16, 9), timedelta(minutes=4), "evt_es", status="FAILURE")
    alerts = SecurityMonitor(**SCALED).evaluate(logger_with(dave, erin))
    (d,) = fired(alerts, "user_deletion_spike")
    assert d.user_id == "dave" and d.window_start == at(15, 14) and d.count == 25
    assert set(d.event_ids) == {f"evt_ds{i:04d}" for i in range(25)}
    (e,) = fired(alerts, "user_failure_spike")
    assert e.user_id == "erin" and e.window_start == at(16, 9)
    assert not fired(alerts, "excessive_deletions")  # 25 is far below the global 100
    # the same 25 deletions from someone who deletes 25 an hour all day long are normal
    busy = events(24 * 30 * 3, "FORGET", "dave", at(1, 0), timedelta(minutes=20), "evt_db")
    assert not fired(SecurityMonitor(**SCALED).evaluate(logger_with(busy, dave)), "user_deletion_spike")


def test_unusual_hours():
    # grace works 09:00-17:00 every day, then logs in at 03:00 on the 22nd.
    grace = [r for day in range(1, 31) for r in events(6, "RECALL", "grace", at(day, 9), timedelta(hours=1),
                                                      f"evt_g{day:02d}_")]
    night = events(8, "RECALL", "grace", at(22, 3, 5), timedelta(minutes=3), "evt_gn")
    alerts = SecurityMonitor(**SCALED).evaluate(logger_with(grace, night))
    (u,) = fired(alerts, "unusual_hours")
    assert u.user_id == "grace" and u.window_start == at(22, 3) and set(u.event_ids) == {r["event_id"] for r in night}
    assert not fired(SecurityMonitor(**SCALED).evaluate(logger_with(grace)), "unusual_hours")


def test_recall_sweep_across_many_owners():
    stores = [{"event_id": f"evt_s{i:03d}", "timestamp": at(2, 9, i), "operation": "STORE", "user_id": f"owner{i}",
               "entry_ids": [f"private_{i}"]} for i in range(30)]
    sweep = [{"event_id": f"evt_r{i:03d}", "timestamp": at(18, 2) + timedelta(seconds=10 * i), "operation": "RECALL",
              "user_id": "frank", "entry_ids": [f"private_{i}"]} for i in range(30)]
    alerts = SecurityMonitor(**SCALED).evaluate(logger_with(stores, sweep))
    (s,) = fired(alerts, "recall_sweep")
    assert s.user_id == "frank" and s.count == 30 and set(s.event_ids) == {r["event_id"] for r in sweep}
    # the owners were stored before the evaluated period: found anyway
    late = SecurityMonitor(**SCALED).evaluate(logger_with(stores, sweep), start=at(10, 0), end=at(30, 0))
    assert [a.user_id for a in fired(late, "recall_sweep")] == ["frank"]


def test_thresholds_rules_logging_and_html(caplog):
    audit = AuditLogger()
    audit.log_batch(events(6, "FORGET", "m", at(1, 1), timedelta(seconds=1), "evt_m"))
    mon = SecurityMonitor(MonitorThresholds(max_deletions=5), rules=["excessive_deletions"])
    with caplog.at_level(logging.INFO, logger="axon_audit.security"):
        alerts = mon.evaluate(audit, log=True)
    assert [a.rule for a in alerts] == ["excessive_deletions"]
    assert caplog.records[0].levelno == logging.ERROR and "6 in 1:00:00" in caplog.records[0].getMessage()
    assert SecurityMonitor(max_deletions=6).evaluate(audit, start=at(1, 0), end=at(2, 0)).by_rule().get(
        "excessive_deletions") is None
    frame = alerts.to_frame()
    assert frame.height == 1 and frame["event_ids"].list.len().item() == 6
    assert "Security alerts" in alerts._repr_html_() and "excessive_deletions" in alerts[0]._repr_html_()
    assert alerts[0].to_dict()["window_start"] == "2026-11-01T01:00:00+00:00"
    assert SecurityMonitor().evaluate(AuditLogger()) == []
    with pytest.raises(AuditTypeError, match="max_delete"):
        SecurityMonitor(max_delete=3)
    with pytest.raises(AuditValueError, match="rules"):
        SecurityMonitor(rules=["nope"])
    with pytest.raises(AuditValueError, match="deletion_window"):
        MonitorThresholds(deletion_window=timedelta(0))


from hypothesis import given, settings  # noqa: E402 - the property tests below import what they use here
from hypothesis import strategies as st  # noqa: E402 - the property tests below import what they use here


@settings(max_examples=40, deadline=None)
@given(seconds=st.lists(st.integers(0, 6 * 3600 - 1), max_size=40), fail=st.lists(st.booleans(), max_size=40),
       maximum=st.integers(0, 4))
def test_window_rules_match_a_plain_python_count(seconds, fail, maximum):
    rows = [{"event_id": f"evt_{i:03d}", "timestamp": at(3, 0) + timedelta(seconds=s), "operation": "FORGET",
             "user_id": "u", "status": "FAILURE" if i < len(fail) and fail[i] else "SUCCESS"}
            for i, s in enumerate(seconds)]
    audit = AuditLogger()
    if rows:
        audit.log_batch(rows)
    alerts = SecurityMonitor(max_deletions=maximum, max_failures=maximum,
                             rules=["excessive_deletions", "failure_burst"]).evaluate(audit)
    for rule, width, pick in (("excessive_deletions", 3600, lambda r: True),
                              ("failure_burst", 900, lambda r: r["status"] == "FAILURE")):
        buckets: dict[int, set] = {}
        for r, s in zip(rows, seconds, strict=True):
            if pick(r):
                buckets.setdefault(s // width, set()).add(r["event_id"])
        expected = {(at(3, 0) + timedelta(seconds=b * width), frozenset(ids))
                    for b, ids in buckets.items() if len(ids) > maximum}
        assert {(a.window_start, frozenset(a.event_ids)) for a in alerts if a.rule == rule} == expected
