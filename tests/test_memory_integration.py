"""MemorySystem auditing, the `audited` decorator, `audit_context`, and the logging bridge."""

from __future__ import annotations

import asyncio
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axon_audit import (
    AuditLogger,
    AuditLogHandler,
    AuditTypeError,
    AuditValueError,
    EventStatus,
    MemoryConfig,
    MemoryEntry,
    MemorySystem,
    OperationType,
    audit_context,
    audit_note,
    audited,
    current_audit_context,
)


@pytest.fixture
def audit():
    return AuditLogger(max_events=100_000)


@pytest.fixture
def memory(audit):
    return MemorySystem(MemoryConfig(default_k=3), audit_logger=audit)


def only(audit, **filters):
    (event,) = audit.query_events(**filters)
    return event


# ---------------------------------------------------------------- MemorySystem


async def test_every_operation_is_one_event_with_its_fields(memory, audit, tmp_path):
    a = await memory.store("Tea preference: green", importance=0.9, tags=["pref"], user_id="u1", session_id="s1")
    b = await memory.store("tea at noon", importance=0.2, user_id="u1", session_id="s1")
    hits = await memory.recall("TEA", k=1, user_id="u1", session_id="s1")
    assert [h.entry_id for h in hits] == [a]
    dump = await memory.export(tmp_path / "mem.json", user_id="u1")
    assert [d["entry_id"] for d in dump] == [a, b]
    assert await memory.forget(b, user_id="u1") == 1
    assert await memory.compact(user_id="admin") == 0
    assert await memory.import_data(dump, user_id="u2") == 2

    ops = [e.operation.value for e in audit.query_events()][::-1]
    assert ops == ["STORE", "STORE", "RECALL", "EXPORT", "FORGET", "COMPACT", "IMPORT"]
    store = audit.query_events(operation="store")[-1]
    assert (store.user_id, store.session_id, store.entry_ids) == ("u1", "s1", [a])
    assert store.metadata == {"content_chars": 21, "importance": 0.9, "tags": ["pref"]}
    recall = only(audit, operation="recall")
    assert recall.entry_ids == [a] and recall.metadata["k"] == 1 and recall.metadata["results"] == 1
    assert recall.metadata["query_chars"] == 3
    assert only(audit, operation="export").metadata["entries"] == 2
    imported = only(audit, operation="import")
    assert imported.user_id == "u2" and sorted(imported.entry_ids) == sorted([a, b])
    assert all(e.duration_ms >= 0 and e.status is EventStatus.SUCCESS for e in audit.query_events(operation=ops[:4]))


async def test_content_is_never_copied_into_the_audit_trail(memory, audit):
    await memory.store("my passport number is X123", user_id="u1")
    await memory.recall("passport", user_id="u1")
    text = str([e.to_dict() for e in audit.query_events()])
    assert "passport" not in text and "X123" not in text


async def test_failure_is_logged_and_the_exception_propagates(memory, audit):
    with pytest.raises(AuditValueError, match="importance"):
        await memory.store("x", importance=2.0, user_id="u1")
    with pytest.raises(AuditValueError, match="k must be"):
        await memory.recall("x", k=0, user_id="u1")
    failures = audit.query_events(status="failure")
    assert [e.operation.value for e in failures] == ["RECALL", "STORE"]
    assert failures[1].error_message == "AuditValueError: importance must be a number in [0, 1], got 2.0"
    assert failures[1].user_id == "u1" and failures[1].duration_ms >= 0
    assert len(memory) == 0


async def test_memory_full_and_atomic_import(audit):
    memory = MemorySystem(MemoryConfig(max_entries=2), audit_logger=audit)
    await memory.import_data(["a", "b"])
    with pytest.raises(AuditValueError, match="max_entries=2"):
        await memory.store("c")
    with pytest.raises(AuditValueError, match="max_entries=2"):
        await memory.import_data(["d"])
    with pytest.raises(AuditValueError, match=r"entries\[1\]\['content'\]"):
        await memory.import_data([{"content": "ok"}, {"content": ""}])
    assert len(memory) == 2
    assert [e.status.value for e in audit.query_events()] == ["FAILURE", "FAILURE", "FAILURE", "SUCCESS"]


async def test_forget_several_reports_partial(memory, audit):
    ids = [await memory.store(f"n{i}") for i in range(3)]
    assert await memory.forget([ids[0], ids[1], "entry_nope", ids[0]]) == 2
    event = only(audit, operation="forget")
    assert event.status is EventStatus.PARTIAL
    assert event.metadata["forgotten"] == 2 and event.metadata["not_found"] == 1
    assert event.error_message == "1 of 3 entries not found"
    assert await memory.forget([ids[2]]) == 1
    assert audit.query_events(operation="forget")[0].status is EventStatus.SUCCESS


async def test_compact_removes_unimportant_and_duplicates(audit):
    memory = MemorySystem(MemoryConfig(compact_below=0.3), audit_logger=audit)
    low = await memory.store("low", importance=0.1)
    dup_lo = await memory.store("same", importance=0.5, user_id="u")
    keep = await memory.store("same", importance=0.8, user_id="u")
    other_user = await memory.store("same", importance=0.5, user_id="v")
    assert await memory.compact() == 2
    assert memory.get(keep) and memory.get(other_user)
    assert memory.get(low) is None and memory.get(dup_lo) is None
    assert sorted(only(audit, operation="compact").entry_ids) == sorted([low, dup_lo])


async def test_no_audit_logger_runs_unaudited():
    memory = MemorySystem()
    entry_id = await memory.store("x", user_id="u")
    assert [e.entry_id for e in await memory.recall("x")] == [entry_id]


def test_bad_constructor_arguments():
    with pytest.raises(AuditTypeError, match="config must be a MemoryConfig"):
        MemorySystem({"max_entries": 3})
    with pytest.raises(AuditTypeError, match="audit_logger must be"):
        MemorySystem(audit_logger="yes")
    with pytest.raises(AuditValueError, match="compact_below"):
        MemoryConfig(compact_below=1.5)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.fixed_dictionaries({
    "content": st.text(min_size=1, max_size=30),
    "importance": st.floats(0, 1),
    "tags": st.lists(st.text(max_size=5), max_size=3),
}), max_size=20))
def test_export_import_round_trip(items):
    async def run():
        audit = AuditLogger()
        source = MemorySystem(audit_logger=audit)
        await source.import_data(items)
        dumped = await source.export()
        target = MemorySystem(audit_logger=audit)
        assert await target.import_data(dumped) == len(items)
        assert await target.export() == dumped
        imports = audit.query_events(operation="import")
        assert [len(e.entry_ids) for e in imports] == [len(items), len(items)]
        assert imports[0].entry_ids == imports[1].entry_ids

    asyncio.run(run())


# ---------------------------------------------------------------- audited / audit_context


async def test_context_is_inherited_by_nested_calls_and_tasks(audit):
    @audited("recall", audit_logger=audit)
    async def inner(query):
        return current_audit_context()

    @audited("bulk_store", audit_logger=audit)
    async def outer(items, user_id=None):
        # Tasks started here copy the context: they see the outer call's user.
        return await asyncio.gather(inner("a"), inner("b", session_id="s2"))

    with audit_context(session_id="s1"):
        seen = await outer([1, 2], user_id="u9")
    assert seen == [("u9", "s1"), ("u9", "s2")]
    assert current_audit_context() == (None, None)
    events = {(e.operation.value, e.session_id) for e in audit.query_events(user_id="u9")}
    assert events == {("BULK_STORE", "s1"), ("RECALL", "s1"), ("RECALL", "s2")}
    assert only(audit, operation="bulk_store").metadata == {"items_count": 2}


async def test_concurrent_tasks_keep_their_own_context(audit):
    @audited("store", audit_logger=audit)
    async def work(i):
        await asyncio.sleep(0.001 * (i % 3))
        return current_audit_context()[0]

    async def agent(i):
        with audit_context(user_id=f"user_{i}"):
            return [await work(j) for j in range(5)]

    results = await asyncio.gather(*(agent(i) for i in range(20)))
    assert results == [[f"user_{i}"] * 5 for i in range(20)]
    for i in range(20):
        assert len(audit.query_events(user_id=f"user_{i}")) == 5


def test_sync_functions_and_custom_summary(audit):
    @audited(OperationType.REINDEX, audit_logger=audit, summarize=lambda args: {"index": args["name"]})
    def reindex(name, *, entry_ids=()):
        audit_note(rebuilt=len(entry_ids))
        if name == "bad":
            raise RuntimeError("index corrupt")
        return "ok"

    assert reindex("vec", entry_ids=["e1", "e2"], user_id="ops") == "ok"
    with pytest.raises(RuntimeError, match="index corrupt"):
        reindex("bad")
    failed, ok = audit.query_events(operation="reindex")
    assert ok.metadata == {"index": "vec", "rebuilt": 2} and ok.entry_ids == ["e1", "e2"] and ok.user_id == "ops"
    assert failed.status is EventStatus.FAILURE and failed.error_message == "RuntimeError: index corrupt"


async def test_cancellation_is_recorded_and_propagates(audit):
    started = asyncio.Event()

    @audited("compact", audit_logger=audit)
    async def slow():
        started.set()
        await asyncio.sleep(10)

    task = asyncio.create_task(slow())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert only(audit, operation="compact").error_message == "CancelledError"


def test_a_failing_audit_never_hides_the_calls_own_exception(caplog):
    class Broken:
        def log(self, *args):
            raise OSError("disk gone")

    @audited("store", audit_logger=Broken())
    async def op():
        raise KeyError("the real problem")

    with pytest.raises(KeyError, match="the real problem") as info:
        asyncio.run(op())
    assert any("not audited: disk gone" in n for n in getattr(info.value, "__notes__", []))
    assert "could not log the failure" in caplog.text


def test_audit_note_validates_and_is_inert_outside_a_call(audit):
    audit_note(anything=object())  # no audited call running: nothing to add to

    @audited("store", audit_logger=audit)
    def bad():
        audit_note(when={1, 2})

    with pytest.raises(AuditValueError, match=r"audit_note\(when=...\)"):
        bad()
    assert only(audit).status is EventStatus.FAILURE


def test_audited_argument_errors(audit):
    with pytest.raises(AuditValueError, match="operation"):
        audited("teleport")
    with pytest.raises(AuditTypeError, match="user_id must be a str"):
        with audit_context(user_id=5):
            pass

    @audited("store", audit_logger=audit)
    async def f(x):
        return x

    with pytest.raises(TypeError):
        asyncio.run(f())  # a wrong call fails like the plain function would, before logging
    assert audit.event_count == 0


@settings(max_examples=60, deadline=None)
@given(secret=st.text(min_size=4).filter(lambda t: t.strip() and not t.strip().lstrip("-").isdigit()),
       tags=st.lists(st.text(max_size=10), max_size=4))
def test_arguments_never_copy_content_into_the_trail(secret, tags):
    audit = AuditLogger()

    @audited("store", audit_logger=audit)
    def save(text, notes, extra, *, tags=None, options=None):
        return None

    save(secret, [secret, "x"], (secret,), tags=tags, options={"k": secret})
    (event,) = audit.query_events()
    assert event.metadata == {"text_chars": len(secret), "notes_count": 2, "extra_count": 1,
                              "tags": tags, "options_count": 1}


# ---------------------------------------------------------------- logging bridge


def test_logging_handler_turns_audit_records_into_events(audit):
    app = logging.getLogger("test.bridge")
    app.propagate = False
    handler = AuditLogHandler(audit)
    app.addHandler(handler)
    try:
        app.info("plain log line")
        with audit_context(user_id="ctx_user", session_id="ctx_sess"):
            app.warning("stored %d", 2, extra={"operation": "store", "entry_ids": ["e1", "e2"],
                                                "duration_ms": 4.0, "metadata": {"source": "api"}})
        try:
            raise TimeoutError("db down")
        except TimeoutError:
            app.exception("recall failed", extra={"operation": "RECALL", "user_id": "u1"})
        app.error("export refused", extra={"operation": "EXPORT", "status": "partial",
                                           "error_message": "2 of 3 skipped"})
        app.warning("bad one", extra={"operation": "teleport"})
    finally:
        app.removeHandler(handler)
    events = audit.query_events()[::-1]
    assert [e.operation.value for e in events] == ["STORE", "RECALL", "EXPORT"]
    store, recall, export = events
    assert (store.user_id, store.session_id, store.entry_ids) == ("ctx_user", "ctx_sess", ["e1", "e2"])
    assert store.metadata == {"source": "api", "logger": "test.bridge", "message": "stored 2"}
    assert store.status is EventStatus.SUCCESS and store.duration_ms == 4.0
    assert recall.status is EventStatus.FAILURE
    assert recall.error_message == "recall failed (TimeoutError: db down)"
    assert export.status is EventStatus.PARTIAL and export.error_message == "2 of 3 skipped"


def test_logging_handler_needs_a_logger():
    with pytest.raises(AuditTypeError, match="audit_logger"):
        AuditLogHandler("nope")


def test_memory_entry_dict():
    entry = MemoryEntry("e1", "text", importance=0.3, tags=["a"], user_id="u")
    assert MemoryEntry(**entry.to_dict()) == entry


def test_readme_integration_example_runs(capsys):
    """The README's "Plugging into an application" example, as printed there."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Plugging into an application", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    events = scope["audit_logger"].query_events()
    assert [e.operation.value for e in events] == ["FORGET", "REINDEX", "RECALL", "STORE"]
    assert {(e.user_id, e.session_id) for e in events[1:]} == {("user_123", "session_abc")}
    assert events[1].metadata == {"collection_chars": 5, "shards": 4}
