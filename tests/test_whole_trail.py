"""Reads cover the whole trail by default when a logger exports, and a read that
leaves accepted events out (memory only, or events dropped at rotation) says so."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import orjson
import polars as pl
import pytest

from axon_audit import AuditLogger
from axon_audit.exceptions import AuditTypeError

N, MAX = 2_503, 1_000  # the 25,003 events over max_events=10,000, at a tenth of the size
USERS = ("alice", "bob", "carol")


def _fill(audit: AuditLogger, n: int = N) -> None:
    for i in range(n):
        audit.log("store" if i % 2 else "recall", user_id=USERS[i % 3], status="failure" if i % 5 == 0 else "success",
                  duration_ms=float(i % 7))


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "axon_audit" and r.levelno >= logging.WARNING]


@pytest.fixture
def exporting(tmp_path: Path) -> AuditLogger:
    audit = AuditLogger(max_events=MAX, auto_export_path=tmp_path / "trail")
    _fill(audit)
    audit.flush()
    assert audit.event_count < N  # rotated: most events live in the export folder now
    return audit


def test_reads_cover_the_whole_trail_by_default(exporting: AuditLogger, tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="axon_audit")
    bob = [i for i in range(N) if i % 3 == 1]
    events = exporting.query_events(user_id="bob")
    assert len(events) == len(bob)
    assert [e.timestamp for e in events] == sorted((e.timestamp for e in events), reverse=True)

    us = exporting.get_user_statistics("bob")
    assert us["total_operations"] == len(bob)
    assert us["success_rate"] == pytest.approx(sum(1 for i in bob if i % 5) / len(bob))

    s = exporting.get_statistics()
    assert (s["total_events"], s["unique_users"], s["covers"], s["events_not_covered"]) == (N, 3, "trail", 0)
    assert s["total_events_logged"] == N and s["events_in_memory"] == exporting.event_count  # old keys kept

    target = tmp_path / "out" / "all.json"
    target.parent.mkdir()
    assert exporting.export_to_file(target) == N
    written = orjson.loads(target.read_bytes())["events"]
    assert len({e["event_id"] for e in written}) == N

    assert exporting.scan().select(pl.len()).collect().item() == N
    assert exporting.to_arrow(user_id="alice").num_rows == len([i for i in range(N) if i % 3 == 0])
    oldest = events[-1]  # long since rotated out of memory
    assert exporting.get_event(oldest.event_id) == oldest
    assert len(asyncio.run(exporting.get_events(user_id="carol"))) == len([i for i in range(N) if i % 3 == 2])
    assert asyncio.run(exporting.export_to_json(tmp_path / "out" / "async.json")) == N

    card = exporting._repr_html_()
    assert "<b>whole trail</b>" in card
    assert "users</td><td style='padding:1px 0'><b>3</b>" in card
    assert _warnings(caplog) == []  # nothing is left out: nothing to say


def test_memory_only_on_request_warns_once(exporting: AuditLogger, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="axon_audit")
    in_memory = exporting.event_count
    exported = N - in_memory
    assert len(exporting.query_events(include_archived=False)) == in_memory
    s = exporting.get_statistics(include_archived=False)
    assert (s["total_events"], s["covers"], s["events_not_covered"]) == (in_memory, "memory", exported)
    assert exporting.get_user_statistics("bob", include_archived=False)["total_operations"] < in_memory
    assert exporting.scan(include_archived=False).select(pl.len()).collect().item() == in_memory

    (message,) = _warnings(caplog)  # three reads, one warning
    assert f"{exported:,} exported events are not covered" in message
    assert "include_archived=True" in message

    assert exporting.get_statistics(include_archived=True)["covers"] == "trail"
    with pytest.raises(AuditTypeError, match="include_archived must be a bool or None"):
        exporting.query_events(include_archived="yes")  # type: ignore[arg-type]


def test_rotation_without_export_path_warns_with_the_count(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="axon_audit")
    audit = AuditLogger(max_events=MAX)
    _fill(audit)
    dropped = audit.get_stats()["dropped_events"]
    assert dropped == N - audit.event_count > 0
    rotations = _warnings(caplog)
    assert rotations == [f"axon_audit: rotation dropped {MAX // 2:,} events (no auto_export_path); "
                         "set auto_export_path to keep them"] * audit.get_stats()["rotations"]
    caplog.clear()

    s = audit.get_statistics()
    assert (s["total_events"], s["covers"], s["events_not_covered"]) == (audit.event_count, "memory", dropped)
    audit.query_events(user_id="bob")
    (message,) = _warnings(caplog)  # the first read says it, once
    assert f"{dropped:,} events were dropped at rotation" in message and "set auto_export_path" in message
    assert f"({dropped:,} events not covered)" in audit._repr_html_()


def test_no_warning_in_the_normal_cases(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="axon_audit")
    small = AuditLogger(max_events=MAX)
    _fill(small, 300)
    assert len(small.query_events(include_archived=False)) == 300
    s = small.get_statistics()
    assert (s["total_events"], s["covers"], s["events_not_covered"]) == (300, "memory", 0)
    assert "<b>events in memory</b>" in small._repr_html_()

    unexported = AuditLogger(max_events=MAX, auto_export_path=tmp_path / "t")
    _fill(unexported, 300)  # below max_events: nothing exported yet, memory is the whole trail
    assert len(unexported.query_events(include_archived=False)) == 300
    assert unexported.get_statistics()["total_events"] == 300
    assert _warnings(caplog) == []


def test_sql_names_what_it_reads(exporting: AuditLogger, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="axon_audit")
    counts = exporting.sql("SELECT (SELECT count(*) FROM events) AS memory, (SELECT count(*) FROM archived) AS "
                           "rotated, (SELECT count(DISTINCT event_id) FROM all_events) AS trail").row(0)
    assert counts == (exporting.event_count, N - exporting.event_count, N)  # `events` stays memory, by name
    assert _warnings(caplog) == []
