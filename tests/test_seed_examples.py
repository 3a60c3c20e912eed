"""Every logger example of the seed document "Audit Logging", imports changed to axon_audit.

The snippets are copied as they stand in the seed; only `from axon.… import` lines
became `from axon_audit import`. (Snippets that need a MemorySystem are in the
memory-system tests.)
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from axon_audit import AuditLogger, EventStatus, OperationType
from tests import seed_report


@pytest.fixture
def audit_logger(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return AuditLogger(max_events=10000)


async def log_seed_events(audit_logger):
    # --- Manual Logging ---------------------------------------------------------
    # Log successful operation
    await audit_logger.log_event(
        operation=OperationType.STORE,
        user_id="user_123",
        session_id="session_abc",
        entry_ids=["entry_1", "entry_2"],
        metadata={"source": "api", "batch_size": 2},
        status=EventStatus.SUCCESS,
        duration_ms=45.2
    )

    # Log failed operation
    await audit_logger.log_event(
        operation=OperationType.RECALL,
        user_id="user_456",
        status=EventStatus.FAILURE,
        error_message="Database connection timeout",
        duration_ms=5000.0
    )


def test_configuration(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # Basic configuration
    audit_logger = AuditLogger(
        max_events=10000,              # Keep 10K events in memory
        auto_export_path=None,         # No auto-export
        enable_rotation=True           # Rotate when max reached
    )
    assert audit_logger.get_stats()["auto_export_enabled"] is False

    # With auto-export
    audit_logger = AuditLogger(
        max_events=10000,
        auto_export_path=Path("./audit_logs"),
        enable_rotation=True
    )
    assert audit_logger.get_stats()["auto_export_enabled"] is True


def test_event_types():
    # Supported operations
    assert OperationType.STORE.value == "STORE"  # Storing new entries
    assert OperationType.RECALL.value == "RECALL"  # Querying/searching
    assert OperationType.FORGET.value == "FORGET"  # Deleting entries
    assert OperationType.COMPACT.value == "COMPACT"  # Compaction operations
    assert OperationType.EXPORT.value == "EXPORT"  # Data exports
    assert OperationType.IMPORT.value == "IMPORT"  # Data imports
    assert EventStatus.SUCCESS.value == "SUCCESS"  # Operation succeeded
    assert EventStatus.FAILURE.value == "FAILURE"  # Operation failed
    assert EventStatus.PARTIAL.value == "PARTIAL"  # Partially succeeded (e.g., some entries)
    assert OperationType.IMPORT.value == "IMPORT" and EventStatus.PARTIAL.value == "PARTIAL"


async def test_manual_logging_and_querying(audit_logger):
    await log_seed_events(audit_logger)

    # --- By User
    # All events for a user
    events = audit_logger.query_events(user_id="user_123")
    assert len(events) == 1
    # Specific operation
    events = audit_logger.query_events(
        user_id="user_123",
        operation=OperationType.STORE
    )
    assert [e.entry_ids for e in events] == [["entry_1", "entry_2"]]

    # --- By Time Range
    # Last hour
    events = audit_logger.query_events(
        start_time=datetime.now() - timedelta(hours=1)
    )
    assert len(events) == 2
    # Specific date range
    events = audit_logger.query_events(
        start_time=datetime(2025, 1, 1),
        end_time=datetime(2025, 1, 31)
    )
    assert events == []

    # --- By Status
    # Failed operations only
    failures = audit_logger.query_events(status=EventStatus.FAILURE)
    assert [f.error_message for f in failures] == ["Database connection timeout"]
    # Successful stores
    successful_stores = audit_logger.query_events(
        operation=OperationType.STORE,
        status=EventStatus.SUCCESS
    )
    assert len(successful_stores) == 1

    # --- Complex Queries
    # Failed recalls for specific user in last 24 hours
    events = audit_logger.query_events(
        user_id="user_123",
        operation=OperationType.RECALL,
        status=EventStatus.FAILURE,
        start_time=datetime.now() - timedelta(days=1)
    )
    assert events == []
    # All operations on specific entries
    events = audit_logger.query_events(entry_ids=["entry_1", "entry_2"])
    assert len(events) == 1


async def test_basic_usage_query(audit_logger, capsys):
    await log_seed_events(audit_logger)
    # Query audit trail
    events = audit_logger.query_events(
        user_id="user_123",
        operation="STORE",
        start_time=datetime.now() - timedelta(hours=1)
    )

    print(f"User stored {len(events)} entries in the last hour")
    assert capsys.readouterr().out == "User stored 1 entries in the last hour\n"


async def test_exporting(audit_logger):
    await log_seed_events(audit_logger)
    # Export to JSON file
    audit_logger.export_to_file(Path("./audit_trail.json"))

    # Export filtered events
    events = audit_logger.query_events(user_id="user_123")
    audit_logger.export_events(events, Path("./user_123_audit.json"))

    trail = json.loads(Path("./audit_trail.json").read_text())
    assert trail["total_events"] == 2 and len(trail["events"]) == 2
    user = json.loads(Path("./user_123_audit.json").read_text())
    assert [e["user_id"] for e in user["events"]] == ["user_123"]


def test_auto_export_on_rotation(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # Automatically export when max_events reached
    audit_logger = AuditLogger(
        max_events=10000,
        auto_export_path=Path("./audit_logs"),
        enable_rotation=True
    )
    for i in range(10_000):
        audit_logger.log(OperationType.STORE, user_id=f"user_{i % 10}")
    audit_logger.flush()
    # Files created: audit_2025_01_15_103045.json, etc.
    [f] = list(Path("./audit_logs").glob("audit_*.json"))
    assert json.loads(f.read_text())["total_events"] == 10_000
    assert audit_logger.event_count == 0


async def test_statistics(audit_logger, capsys):
    await log_seed_events(audit_logger)
    # Get statistics
    stats = audit_logger.get_statistics()

    print(f"Total events: {stats['total_events']}")
    print(f"Success rate: {stats['success_rate']:.2%}")
    print(f"Average latency: {stats['avg_duration_ms']:.2f}ms")

    # By operation
    print(f"Stores: {stats['by_operation']['STORE']}")
    print(f"Recalls: {stats['by_operation']['RECALL']}")

    # Activity by user
    user_stats = audit_logger.get_user_statistics("user_123")

    print(f"Total operations: {user_stats['total_operations']}")
    print(f"Last activity: {user_stats['last_activity']}")
    print(f"Most common operation: {user_stats['most_common_operation']}")

    out = capsys.readouterr().out.splitlines()
    assert out[:5] == ["Total events: 2", "Success rate: 50.00%", "Average latency: 2522.60ms", "Stores: 1",
                       "Recalls: 1"]
    assert out[5] == "Total operations: 1" and out[7] == "Most common operation: STORE"
    assert out[6].startswith("Last activity: 20")


async def test_compliance_report_example(audit_logger, monkeypatch):
    import time

    monkeypatch.setenv("TZ", "UTC")  # the example's naive datetimes are local time
    time.tzset()
    await log_seed_events(audit_logger)
    audit_logger.log_batch([
        {"operation": "STORE", "user_id": "user_123", "timestamp": datetime(2025, 3, 3, 12)},
        {"operation": "FORGET", "user_id": "user_123", "timestamp": datetime(2025, 3, 4, 12)},
        {"operation": "RECALL", "user_id": None, "timestamp": datetime(2025, 3, 31, 23)},
        {"operation": "RECALL", "user_id": "user_9", "timestamp": datetime(2025, 4, 2, 12)},
    ])

    # Generate monthly compliance report: the seed's function, verbatim, in tests/seed_report.py
    seed_report.audit_logger = audit_logger
    generate_compliance_report = seed_report.generate_compliance_report

    report = await generate_compliance_report(3, 2025)
    monkeypatch.delenv("TZ")
    time.tzset()
    assert report["period"] == "2025-03"
    assert report["total_events"] == 3 and report["users"] == 2
    assert report["user_activity"]["anonymous"] == {"total": 1, "stores": 0, "recalls": 1, "deletions": 0}
    assert report["user_activity"]["user_123"] == {"total": 2, "stores": 1, "recalls": 0, "deletions": 1}
    assert report["operations"]["STORE"] == 1 and report["operations"]["FORGET"] == 1


async def test_security_monitoring_example(audit_logger, caplog):
    logger = logging.getLogger("security")
    for i in range(101):
        await audit_logger.log_event(OperationType.FORGET, user_id="mallory", entry_ids=[f"e{i}"])
    for _ in range(11):
        await audit_logger.log_event(OperationType.RECALL, user_id="mallory", status=EventStatus.FAILURE)
    for _ in range(6):
        await audit_logger.log_event(OperationType.EXPORT, user_id="mallory")

    # Monitor for suspicious activity
    async def monitor_security():
        """Check for unusual patterns."""

        # Excessive deletions
        recent_deletes = audit_logger.query_events(
            operation=OperationType.FORGET,
            start_time=datetime.now() - timedelta(hours=1)
        )

        if len(recent_deletes) > 100:
            logger.warning(f"Excessive deletions: {len(recent_deletes)} in last hour")

        # Failed access attempts
        failures = audit_logger.query_events(
            status=EventStatus.FAILURE,
            start_time=datetime.now() - timedelta(minutes=15)
        )

        if len(failures) > 10:
            logger.warning(f"Multiple failures: {len(failures)} in 15 minutes")

        # Unusual export activity
        exports = audit_logger.query_events(
            operation=OperationType.EXPORT,
            start_time=datetime.now() - timedelta(hours=24)
        )

        if len(exports) > 5:
            logger.warning(f"Unusual export activity: {len(exports)} in 24 hours")

    with caplog.at_level(logging.WARNING, logger="security"):
        await monitor_security()
    assert [r.getMessage() for r in caplog.records] == [
        "Excessive deletions: 101 in last hour",
        "Multiple failures: 11 in 15 minutes",
        "Unusual export activity: 6 in 24 hours",
    ]


async def test_monitor_statistics_best_practice(audit_logger, caplog):
    logger = logging.getLogger("health")
    await log_seed_events(audit_logger)
    with caplog.at_level(logging.WARNING, logger="health"):
        # Check health periodically
        stats = audit_logger.get_statistics()

        if stats['success_rate'] < 0.95:
            logger.warning("Low success rate: investigate failures")

        if stats['avg_duration_ms'] > 1000:
            logger.warning("High latency: performance issue")
    assert [r.getMessage() for r in caplog.records] == [
        "Low success rate: investigate failures", "High latency: performance issue"]


def test_bounded_memory_tip():
    # 2. Limit max_events for bounded memory
    audit_logger = AuditLogger(max_events=10000)  # ~10MB max
    for _ in range(25_000):
        audit_logger.log(OperationType.RECALL)
    assert audit_logger.event_count <= 10000
