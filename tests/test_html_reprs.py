"""The notebook views: every result a notebook user meets renders as escaped HTML
with its key figures formatted one way (counts "1,234", rates "96.06%", times
"2026-11-03 10:21:00 UTC"), and the list/dict results stay plain lists/dicts."""

from __future__ import annotations

import json
import pickle
import re
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest

from axon_audit import (
    AuditArchive,
    AuditLogger,
    SecurityMonitor,
    VerifyResult,
    compliance_report,
    verify,
)
from axon_audit.compliance.retention import RetentionResult
from axon_audit.display.html import table
from axon_audit.model.results import EventList, Statistics

HOSTILE = "<script>alert('x')</script>"
_HEAD = re.compile(r"<th[ >][^>]*>(.*?)</th>")
T0 = datetime(2026, 11, 3, 10, 21, 0, tzinfo=timezone.utc)


class _Text(HTMLParser):
    """The text a browser shows, and the tags it builds."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def shown(html: str) -> str:
    return " ".join(_Text(html).text)


def assert_escaped(html: str) -> None:
    parsed = _Text(html)
    assert "script" not in parsed.tags
    assert HOSTILE in "".join(parsed.text)
    assert "<script>" not in html


@pytest.fixture
def audit() -> AuditLogger:
    """1,250 events (every 8th a failure) of two users, one of them hostile, a minute apart."""
    a = AuditLogger(max_events=5000)
    a.log_batch([{"operation": "store" if i % 3 else "recall", "user_id": HOSTILE if i % 2 else "bob",
                  "session_id": "s1", "entry_ids": [f"e{i}"], "metadata": {"note": HOSTILE},
                  "status": "failure" if i % 8 == 0 else "success", "duration_ms": float(i % 50),
                  "error_message": HOSTILE if i % 8 == 0 else None,
                  "timestamp": T0 + timedelta(minutes=i)} for i in range(1250)])
    return a


def test_event_list_is_a_list_with_a_table_of_its_first_rows(audit):
    events = audit.query_events()
    assert isinstance(events, EventList) and isinstance(events, list)
    plain = list(events)
    assert events == plain and plain == events and len(events) == 1250
    assert events[:3] == plain[:3] and events[0] is plain[0]
    assert pickle.loads(pickle.dumps(events)) == plain
    assert json.dumps([e.to_dict() for e in events[:2]]) == json.dumps([e.to_dict() for e in plain[:2]])
    html = events._repr_html_()
    text = shown(html)
    assert "1,250 events" in text and "first 20 shown" in text
    assert html.count("<tr>") == 1 + 20  # the header, then 20 rows
    newest = events[0]
    assert newest.timestamp == T0 + timedelta(minutes=1249)
    assert "2026-11-04 07:10:00 UTC" in text and newest.event_id in text
    assert_escaped(html)
    assert "1,240 more" in repr(events) and "(1,250 events)" in repr(events)


def test_a_short_event_list_reprs_as_the_list_and_an_empty_one_says_so(audit):
    few = audit.query_events(limit=2)
    assert repr(few) == repr(list(few))
    none = audit.query_events(user_id="nobody")
    assert none == [] and "0 events" in shown(none._repr_html_())


def test_event_card(audit):
    event = audit.query_events(status="failure", limit=1)[0]
    html = event._repr_html_()
    text = shown(html)
    assert event.event_id in text and event.operation.value in text and "FAILURE" in text
    assert event.timestamp.strftime("%Y-%m-%d %H:%M:%S UTC") in text
    assert f"{event.duration_ms:,.2f} ms" in text and event.entry_ids[0] in text
    assert_escaped(html)  # user id, error message and metadata


def test_statistics_is_the_plain_dict_with_a_card(audit):
    s = audit.get_statistics()
    assert isinstance(s, Statistics) and s == dict(s) and dict(s) == s
    assert json.dumps(s, default=str) == json.dumps(dict(s), default=str)
    assert json.loads(json.dumps(s, default=str))["total_events"] == 1250
    assert pickle.loads(pickle.dumps(s)) == dict(s)
    empty = AuditLogger().get_statistics()  # no times to stringify: json.dumps as it is
    assert json.loads(json.dumps(empty)) == json.loads(json.dumps(dict(empty))) and empty["total_events"] == 0
    text = shown(s._repr_html_())
    assert f"{s['success_rate']:.2%}" in text and "87.44%" in text  # 1,093 of 1,250
    assert "1,250" in text and "2026-11-03 10:21:00 UTC" in text and "2026-11-04 07:10:00 UTC" in text
    assert f"{s['p95_duration_ms']:,.2f} ms" in text
    assert str(s["by_operation"]["STORE"]) in text and "source counters" in text


def test_user_statistics_card_escapes_the_user(audit):
    s = audit.get_user_statistics(HOSTILE)
    assert isinstance(s, Statistics) and s == dict(s) and json.dumps(s, default=str)
    html = s._repr_html_()
    assert_escaped(html)
    text = shown(html)
    assert f"User statistics: {HOSTILE}" in text and f"{s['total_operations']:,}" in text
    assert f"{s['success_rate']:.2%}" in text


def _folder(tmp_path: Path, n: int = 1200) -> Path:
    folder = tmp_path / "audit"
    with AuditLogger(auto_export_path=folder) as a:
        a.log_batch([{"operation": "store", "user_id": HOSTILE, "timestamp": T0 + timedelta(seconds=i)}
                     for i in range(n)])
    return folder


def test_archive_card(tmp_path):
    folder = _folder(tmp_path)
    archive = AuditArchive(folder)
    html = archive._repr_html_()
    text = shown(html)
    files = archive.files()
    assert str(archive.path) in text and "1,200" in text and f"{len(files):,} files" in text
    assert files[0].name in text
    assert "2026-11-03 10:21:00 UTC – 2026-11-03 10:40:59 UTC" in text and "100.00%" in text
    assert repr(archive) == f"AuditArchive({str(folder)!r}, source='parquet')"


def test_archive_card_of_a_corrupt_folder_says_why(tmp_path):
    folder = _folder(tmp_path, 5)
    part = next(folder.glob("parquet/*/*.parquet"))
    part.write_bytes(b"not parquet")  # a scratch copy made by this test, not evidence
    text = shown(AuditArchive(folder)._repr_html_())
    assert "error" in text and part.name in text


def test_verify_card_ok_and_failed(tmp_path):
    folder = _folder(tmp_path, 30)
    ok = verify(folder)
    text = shown(ok._repr_html_())
    assert ok.ok and "OK" in text and "FAILED" not in text and f"{ok.events_checked:,}" in text
    bad = VerifyResult(ok=False, files_checked=1234, events_checked=5678,
                       problems=[f"{HOSTILE} #{i}" for i in range(25)])
    html = bad._repr_html_()
    assert_escaped(html)
    text = shown(html)
    assert "FAILED" in text and "1,234" in text and "5,678" in text and "25 problems" in text
    assert f"{HOSTILE} #19" in text and f"{HOSTILE} #20" not in text and "5 more" in text


def test_security_monitor_repr_and_card():
    m = SecurityMonitor(max_deletions=5000, failure_window=timedelta(minutes=5))
    r = repr(m)
    assert r.startswith("SecurityMonitor(rules=all 7,") and "max_deletions=5000" in r
    assert "failure_window=5 min" in r and "export_window=1 day" in r
    text = shown(m._repr_html_())
    assert "5,000" in text and "5 min" in text and "recall_sweep (high)" in text
    assert "SecurityMonitor object at" not in r


def test_compliance_report_html_has_no_dtype_rows_and_a_percentage(audit):
    r = compliance_report(audit, "2026-11")
    html = r._repr_html_()
    heads = _HEAD.findall(html)
    assert heads and all("<" not in h for h in heads)  # a column name only, no type under it
    assert "user_id" in heads and "count" in heads
    for dtype in ("dtype", "i64", "f64", "str", "datetime[", "u32", "list["):
        assert dtype not in heads
    text = shown(html)
    assert f"{r['success_rate']:.2%}" in text and "87.44%" in text and "0.874" not in text
    assert "2026-11-03 10:21:00 UTC" in text and "1,250" in text
    assert_escaped(html)


def test_frame_headers_are_names_only_and_times_are_utc():
    df = pl.DataFrame({"n": [1234567], "s": [HOSTILE], "t": [T0]})
    html = table(df)
    heads = _HEAD.findall(html)
    assert heads == ["n", "s", "t"]
    text = shown(html)
    assert "1,234,567" in text and "2026-11-03 10:21:00 UTC" in text and "1 row × 3 columns" in text
    assert_escaped(html)


def test_retention_card_shows_times_in_utc(tmp_path):
    r = RetentionResult(T0, True, partitions=[tmp_path / HOSTILE], events=12345, bytes=67890)
    html = r._repr_html_()
    text = shown(html)
    assert "2026-11-03 10:21:00 UTC" in text and "12,345" in text and "67,890" in text
    assert_escaped(html)
