"""The compliance tools on archives: the same answers from memory, from files, and from both."""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl

from axon_audit import (
    AuditLogger,
    SecurityMonitor,
    compliance_report,
    erase_subject,
    open_archive,
    subject_access_report,
)
from axon_audit.workload import generate_events

UTC = timezone.utc


def _rounded(value):
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def test_report_monitor_and_access_agree_between_live_and_archived(tmp_path):
    events = generate_events(30_000, seed=8, start=datetime(2026, 11, 1, tzinfo=UTC), days=30)
    events = events.with_columns(pl.format("evt_{}", pl.int_range(pl.len()).cast(pl.String).str.zfill(8))
                                 .alias("event_id"))  # the same ids in both loggers
    live = AuditLogger(enable_rotation=False)
    live.log_batch(events)
    rotating = AuditLogger(max_events=7_000, auto_export_path=tmp_path)
    for start in range(0, events.height, 4_000):
        rotating.log_batch(events.slice(start, 4_000))
    rotating.flush()
    assert 0 < rotating.event_count < 30_000  # part in memory, part in files
    archive = open_archive(tmp_path)

    def report(source):  # float sums depend on the order of the pieces: compare to 12 digits
        return _rounded(compliance_report(source, "2026-11", entry_ids=["entry_0000003"]).to_dict())

    expected = report(live)
    # A logger's report includes its rotated exports; an archive plus its logger count each event once.
    for source in (rotating, [rotating, archive]):
        assert report(source) == expected
    rotating.close()
    assert report(archive) == expected

    mon = SecurityMonitor(max_exports=30, max_failures=3)  # low enough to fire on normal traffic
    a, b = mon.evaluate(live).to_frame(), mon.evaluate(archive).to_frame()
    assert a.height > 0 and a.drop("event_ids").equals(b.drop("event_ids"))
    assert a["event_ids"].list.sort().equals(b["event_ids"].list.sort())

    sar_live = subject_access_report(live, "user_00002").frames
    sar_arch = subject_access_report(archive, "user_00002").frames
    for k in ("events", "accessed_by_others"):
        assert sar_live[k]["event_id"].sort().equals(sar_arch[k]["event_id"].sort())


def test_erasure_through_an_archive_object(tmp_path):
    with AuditLogger(max_events=500, auto_export_path=tmp_path) as audit:
        audit.log_batch(generate_events(2_000, seed=3))
    archive = open_archive(tmp_path)
    before = archive.query_events(user_id="user_00001")
    assert before
    result = erase_subject(archive, "user_00001", requested_by="dpo")
    assert result.events == len(before)
    fresh = open_archive(tmp_path)
    assert fresh.query_events(user_id="user_00001") == [] and archive.query_events(user_id="user_00001") == []
    assert len(fresh.query_events(user_id=result.pseudonym)) == len(before)
    assert fresh.get_statistics()["total_events"] == 2_001  # + the erasure record
    for p in tmp_path.rglob("*.json"):
        assert b'"user_00001"' not in p.read_bytes()
