"""Shared fixtures for the compliance tests: small, fixed, hand-countable data."""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl
import pytest

from axon_audit import AuditLogger

UTC = timezone.utc


def ts(day: int, hour: int, minute: int = 0, month: int = 11, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def small_logger() -> AuditLogger:
    """Nine events in November 2026 and two in December (hand-counted in the tests)."""
    rows = [
        # event_id, timestamp, operation, user, entries, status, error, duration
        ("evt_a1", ts(3, 9), "STORE", "alice", ["e1", "e2"], "SUCCESS", None, 10.0),
        ("evt_a2", ts(3, 10), "RECALL", "alice", ["e1"], "SUCCESS", None, 20.0),
        ("evt_a3", ts(4, 11), "FORGET", "alice", ["e2"], "SUCCESS", None, 30.0),
        ("evt_a4", ts(5, 12), "EXPORT", "alice", [], "SUCCESS", None, 40.0),
        ("evt_b1", ts(6, 9), "STORE", "bob", ["e3"], "FAILURE", "Quota exceeded", 50.0),
        ("evt_b2", ts(6, 10), "RECALL", "bob", ["e1", "e3"], "SUCCESS", None, 60.0),
        ("evt_b3", ts(7, 10), "RECALL", "bob", ["e1"], "FAILURE", "Entry not found", None),
        ("evt_n1", ts(8, 8), "COMPACT", None, [], "PARTIAL", None, 100.0),
        ("evt_b4", ts(30, 23, 59), "FORGET", "bob", ["e3", "e4"], "SUCCESS", None, 5.0),
        ("evt_d1", ts(1, 0, month=12), "STORE", "carol", ["e5"], "SUCCESS", None, 1.0),
        ("evt_d2", ts(31, 23, month=12), "RECALL", "carol", ["e1"], "SUCCESS", None, 2.0),
    ]
    cols = ["event_id", "timestamp", "operation", "user_id", "entry_ids", "status", "error_message", "duration_ms"]
    df = pl.DataFrame([dict(zip(cols, r, strict=True)) for r in rows])
    audit = AuditLogger(enable_rotation=False)
    audit.log_batch(df)
    return audit
