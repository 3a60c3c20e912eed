"""The seed's memory-system snippets (Basic Usage, Best Practices 1-2, Optimization
Tips; Best Practice 3 is in test_seed_examples.py), run as written. Only the imports
differ (`axon`/`axon.core.*` → `axon_audit`), and the seed's undefined `config` and
`entries` are given values."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from axon_audit import AuditLogger, EventStatus, MemoryConfig, MemorySystem, OperationType  # the changed imports


async def test_basic_usage(capsys):
    config = MemoryConfig()

    # Enable audit logging
    audit_logger = AuditLogger(max_events=10000)
    memory = MemorySystem(config, audit_logger=audit_logger)

    # Operations are automatically logged
    await memory.store("Important data", user_id="user_123")
    await memory.recall("query", user_id="user_123")
    await memory.forget("entry_id", user_id="user_123")

    # Query audit trail
    events = audit_logger.query_events(
        user_id="user_123",
        operation="STORE",
        start_time=datetime.now() - timedelta(hours=1)
    )

    print(f"User stored {len(events)} entries in the last hour")

    assert capsys.readouterr().out == "User stored 1 entries in the last hour\n"
    trail = audit_logger.query_events(user_id="user_123")
    assert [e.operation for e in trail] == [OperationType.FORGET, OperationType.RECALL, OperationType.STORE]
    store, recall, forget = trail[::-1]
    assert store.status is EventStatus.SUCCESS and len(store.entry_ids) == 1
    assert store.metadata["content_chars"] == len("Important data")
    assert recall.metadata["results"] == 0 and recall.entry_ids == []
    # "entry_id" does not exist: forgetting it is not an error, but the event says so.
    assert forget.status is EventStatus.PARTIAL and forget.entry_ids == ["entry_id"]
    assert forget.metadata["not_found"] == 1
    assert all(e.duration_ms is not None and e.duration_ms >= 0 for e in trail)


async def test_best_practice_1_include_user_context():
    audit_logger = AuditLogger(max_events=10000)
    memory = MemorySystem(MemoryConfig(), audit_logger=audit_logger)

    # ✓ Good: Trackable
    await memory.store("data", user_id="user_123", session_id="session_abc")

    # ✗ Bad: Anonymous
    await memory.store("data")

    anonymous, good = audit_logger.query_events(operation=OperationType.STORE)
    assert (good.user_id, good.session_id) == ("user_123", "session_abc")
    assert (anonymous.user_id, anonymous.session_id) == (None, None)


def test_best_practice_2_regular_exports(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    audit_logger = AuditLogger(max_events=10000)
    audit_logger.log(OperationType.STORE, user_id="user_123")

    # Export daily for compliance
    import schedule

    def export_daily():
        timestamp = datetime.now().strftime("%Y%m%d")
        audit_logger.export_to_file(Path(f"./audit_{timestamp}.json"))

    schedule.every().day.at("00:00").do(export_daily)

    try:
        schedule.run_all()
    finally:
        schedule.clear()
    written = list(tmp_path.glob("audit_*.json"))
    assert len(written) == 1
    import orjson

    doc = orjson.loads(written[0].read_bytes())
    assert doc["total_events"] == 1 and doc["events"][0]["user_id"] == "user_123"


async def test_optimization_tips(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    audit_logger = AuditLogger(max_events=10000)
    memory = MemorySystem(MemoryConfig(), audit_logger=audit_logger)
    entries = [f"note {i}" for i in range(25)]

    # 1. Batch operations reduce log entries
    await memory.import_data(entries)  # 1 log entry
    assert audit_logger.event_count == 1
    # vs
    for entry in entries:
        await memory.store(entry)      # N log entries
    assert audit_logger.event_count == 1 + len(entries)
    (imported,) = audit_logger.query_events(operation="IMPORT")
    assert len(imported.entry_ids) == len(entries) and imported.metadata["imported"] == len(entries)

    # 2. Limit max_events for bounded memory
    audit_logger = AuditLogger(max_events=10000)  # ~10MB max

    # 3. Enable rotation and export
    audit_logger = AuditLogger(
        max_events=10000,
        enable_rotation=True,
        auto_export_path=Path("./logs")
    )

    for _i in range(10_001):
        audit_logger.log("store", user_id="user_1")
    audit_logger.flush()
    assert len(list((tmp_path / "logs").glob("audit_*.json"))) == 1
    assert len(list((tmp_path / "logs" / "parquet").rglob("*.parquet"))) >= 1
    audit_logger.close()
