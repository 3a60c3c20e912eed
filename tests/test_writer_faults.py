"""Faults in the writer threads: nothing hangs, nothing is lost, nothing is a false alarm.

The WAL writer survives any error (not only OSError), a record too large for the
u32 length is refused before it is acknowledged, `flush()` raises when it cannot
make what it promises durable, `close()` counts only its own failures,
erasure waits for a cut (not for an empty backlog), and one poison export batch
never blocks the exports behind it.
"""

from __future__ import annotations

import logging
import shutil
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import axon_audit
from axon_audit import AuditLogger, AuditUnavailableError, AuditValueError, ExportError, erase_subject
from axon_audit.io import parquet as _parquet
from axon_audit.write import targets as _targets
from axon_audit.write import wal as _wal
from axon_audit.write import wal_records as _records
from tests.exported import listed_ids


def within(fn: Callable[[], Any], seconds: float = 20.0) -> Any:
    """`fn()` on a thread; fails the test (instead of hanging it) if it has not returned in time."""
    out: list[Any] = []
    err: list[BaseException] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            err.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"{fn} still blocked after {seconds} s"
    if err:
        raise err[0]
    return out[0] if out else None


def until(cond: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def segment_records(wdir: Path) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    for epoch in _wal.existing_epochs(wdir):
        out += _wal.scan_segment(_wal.segment_path(wdir, epoch).read_bytes())[0]
    return out




# ---------------------------------------------------------------- the WAL writer thread


@pytest.mark.parametrize("exc", [MemoryError(), struct.error("'I' format requires 0 <= number <= 4294967295"),
                                 RuntimeError("encoder bug")], ids=type)
def test_wal_writer_survives_any_error_then_catches_up(tmp_path: Path, monkeypatch, exc: BaseException) -> None:
    real = _wal.encode_rows
    broken = [True]

    def encode_rows(rows):
        if broken[0]:
            raise exc
        return real(rows)

    monkeypatch.setattr(_wal, "encode_rows", encode_rows)
    audit = AuditLogger(max_events=10**6, auto_export_path=tmp_path / "exp", wal_path=tmp_path / "wal")
    ids = within(lambda: [audit.log("store", user_id=f"u{i}").event_id for i in range(20)])  # fail-open: returns
    stats = audit.get_stats()
    assert stats["wal_write_failures"] >= 1 and type(exc).__name__ in stats["wal_last_error"]
    assert stats["wal_not_durable_events"] == 20 and not stats["wal_writer_stopped"]
    with pytest.raises(ExportError, match="not durable in the write-ahead log"):
        within(audit.flush)
    broken[0] = False  # the writer retries what it kept, in order, once each
    until(lambda: audit._wal is not None and audit._wal.durable == audit._wal.appended)
    within(audit.flush)
    rows = [r for kind, payload in segment_records(tmp_path / "wal") if kind == "R" for r in orjson.loads(payload)]
    assert len(rows) == 20 and [r[1] for r in rows] == sorted(r[1] for r in rows)
    within(audit.close)
    assert listed_ids(tmp_path / "exp") == ids


def test_wal_writer_error_under_fail_closed_raises(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(_wal, "encode_rows", lambda rows: (_ for _ in ()).throw(MemoryError()))
    audit = AuditLogger(max_events=10**6, auto_export_path=tmp_path / "exp", wal_path=tmp_path / "wal",
                        fail_closed=True)
    with pytest.raises(AuditUnavailableError, match="write-ahead log"):
        within(lambda: audit.log("store"))
    with pytest.raises(AuditUnavailableError, match=r"fail_closed: the write-ahead log .* cannot be written"):
        within(lambda: audit.log("store"))  # refused at the door now: not stored
    assert audit.event_count == 1


@pytest.mark.parametrize("fail_closed", [False, True])
def test_a_stopped_wal_writer_never_blocks_logging_or_close(tmp_path: Path, monkeypatch, fail_closed: bool) -> None:
    def loop(self):
        raise RuntimeError("writer bug")

    monkeypatch.setattr(_wal.WriteAheadLog, "_loop", loop)
    audit = AuditLogger(max_events=10**6, auto_export_path=tmp_path / "exp", wal_path=tmp_path / "wal",
                        fail_closed=fail_closed)
    until(lambda: audit.get_stats()["wal_writer_stopped"])
    if fail_closed:
        with pytest.raises(AuditUnavailableError, match="writer bug"):
            within(lambda: audit.log("store"))
        assert audit.event_count == 0
    else:
        within(lambda: [audit.log("store") for _ in range(5)])
        assert audit.event_count == 5 and audit.get_stats()["wal_not_durable_events"] == 5
        with pytest.raises(ExportError, match="write-ahead log"):
            within(audit.flush)
    assert "writer bug" in audit.get_stats()["wal_last_error"]
    within(audit.close)  # exports what memory holds, does not wait for the dead writer
    assert audit.get_stats()["exported_events"] == (0 if fail_closed else 5)
    assert fail_closed or len(listed_ids(tmp_path / "exp")) == 5


def test_deleted_wal_folder_is_a_write_failure_not_an_acknowledgement(tmp_path: Path) -> None:
    audit = AuditLogger(max_events=10**6, auto_export_path=tmp_path / "exp", wal_path=tmp_path / "wal")
    for _ in range(3):
        audit.log("store")
    audit.flush()
    fsyncs = audit.get_stats()["wal_fsyncs"]
    shutil.rmtree(tmp_path / "wal")  # its open segment is unlinked: an fsync of it proves nothing
    within(lambda: audit.log("store"))
    stats = audit.get_stats()
    assert stats["wal_write_failures"] >= 1 and stats["wal_fsyncs"] == fsyncs
    assert "deleted while open" in stats["wal_last_error"] or "No such file" in stats["wal_last_error"]
    assert stats["wal_not_durable_events"] == 1
    with pytest.raises(ExportError, match=r"not durable in the write-ahead log .*wal"):
        audit.flush()
    closed = AuditLogger(max_events=10**6, auto_export_path=tmp_path / "exp2", wal_path=tmp_path / "wal2",
                         fail_closed=True)
    closed.log("store")
    shutil.rmtree(tmp_path / "wal2")
    with pytest.raises(AuditUnavailableError, match="not written to the write-ahead log"):
        closed.log("store")


# ---------------------------------------------------------------- the u32 record length


@pytest.fixture
def small_records(monkeypatch) -> int:
    monkeypatch.setattr(_records, "MAX_PAYLOAD", 20_000)
    return 20_000


def test_an_event_too_large_for_one_record_is_refused_before_it_is_acknowledged(tmp_path: Path,
                                                                                 small_records: int) -> None:
    audit = AuditLogger(max_events=10**6, auto_export_path=tmp_path / "exp", wal_path=tmp_path / "wal")
    with pytest.raises(AuditValueError, match=rf"at most {small_records} bytes \(its length is a u32\).*nothing"):
        audit.log("store", metadata={"pad": "x" * 25_000})
    with pytest.raises(AuditValueError, match=rf"error_message.*at most {small_records} bytes"):
        audit.log("store", error_message="\x01" * 4_000)  # 6 bytes each once encoded
    with pytest.raises(AuditValueError, match=rf"events: a row of this batch holds \d+ bytes.*{small_records}"):
        audit.log_batch([{"operation": "store", "metadata": {"pad": "y" * 25_000}}])
    assert audit.event_count == 0 and audit._wal is not None and audit._wal.appended == 0
    # Each event fits, together they do not: the writer splits them into records that fit.
    audit.log_batch([{"operation": "store", "metadata": {"pad": "z" * 3_000, "i": i}} for i in range(20)])
    ids = [audit.log("store", metadata={"pad": "w" * 3_000}).event_id for _ in range(20)]
    audit.flush()
    records = segment_records(tmp_path / "wal")
    assert all(len(p) <= small_records for _, p in records) and len(records) >= 4
    assert sum(len(orjson.loads(p)) for k, p in records if k == "R") == 20
    audit.close()
    assert set(ids) <= set(listed_ids(tmp_path / "exp")) and len(listed_ids(tmp_path / "exp")) == 40


_TEXT = st.text(st.characters(codec="utf-8"), max_size=900) | st.text(st.sampled_from('\x00\x1f"\\é€😀a'),
                                                                      max_size=900)


@settings(max_examples=150, deadline=None)
@given(meta=_TEXT, err=st.none() | _TEXT, user=st.none() | _TEXT, entries=st.lists(_TEXT, max_size=4))
def test_the_size_check_agrees_with_the_encoding(meta: str, err: str | None, user: str | None,
                                                 entries: list[str]) -> None:
    limit = 2_500
    row = (1, 2, "node", "STORE", user, None, tuple(entries), meta, "SUCCESS", err, None)
    size = len(orjson.dumps([row]))
    old = _records.MAX_PAYLOAD
    _records.MAX_PAYLOAD = limit
    try:
        assert (_records.row_too_large(row) is not None) == (size > limit)
        if size <= limit:  # what passes is written in one record and read back unaltered
            [record] = _records.encode_rows([row])
            [(kind, payload)] = _wal.scan_segment(record)[0]
            assert kind == "R" and _records._decode_rows(payload) == [row]
    finally:
        _records.MAX_PAYLOAD = old


# ---------------------------------------------------------------- close() and erasure under concurrent logging


def _slow_exports(monkeypatch, seconds: float) -> list[bool]:
    real = _targets.FolderTarget.export
    slow = [True]

    def export(self, *args, **kwargs):  # exports lag behind logging
        if slow[0]:
            time.sleep(seconds)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(_targets.FolderTarget, "export", export)
    return slow


def test_close_under_concurrent_logging_is_no_false_alarm(tmp_path: Path, monkeypatch) -> None:
    slow = _slow_exports(monkeypatch, 0.01)
    audit = AuditLogger(max_events=100, auto_export_path=tmp_path)
    stop = threading.Event()
    logged: list[str] = []

    def host() -> None:  # rotations queue up behind the export being written
        while not stop.is_set():
            logged.extend(audit.log("store", metadata={"i": i}).event_id for i in range(50))
            time.sleep(0.008)

    t = threading.Thread(target=host)
    t.start()
    try:
        until(lambda: len(logged) > 1_000)
        for _ in range(2):
            within(audit.close, 60)  # nothing failed: never "could not be exported"
    finally:
        stop.set()
        t.join()
    slow[0] = False
    audit.close()
    assert Counter(listed_ids(tmp_path)) == Counter(logged) and axon_audit.verify(tmp_path).ok


def test_close_counts_exactly_its_own_failures(tmp_path: Path) -> None:
    blocker = tmp_path / "blocked"
    blocker.write_text("not a folder")
    audit = AuditLogger(max_events=100, auto_export_path=blocker / "exp", max_backlog=None)
    for _ in range(150):
        audit.log("store")
    with pytest.raises(ExportError):
        audit.flush()
    assert audit._exporter is not None
    hold = threading.Event()
    audit._exporter.submit_call(hold.wait)  # the export thread waits: close's jobs queue behind it
    errors: list[BaseException] = []

    def close() -> None:
        try:
            audit.close()
        except ExportError as exc:
            errors.append(exc)

    closing = threading.Thread(target=close)
    closing.start()
    until(lambda: audit.get_stats()["pending_export_events"] == 150)  # close has taken its cut
    for _ in range(300):  # three more rotations, after close's own export
        audit.log("store")
    hold.set()
    closing.join(30)
    assert not closing.is_alive() and len(errors) == 1
    assert str(errors[0]).startswith("150 events could not be exported")
    assert audit.get_stats()["pending_export_events"] == 450  # nothing dropped


def test_erasure_waits_for_a_cut_not_for_an_empty_backlog(tmp_path: Path, monkeypatch) -> None:
    slow = _slow_exports(monkeypatch, 0.03)
    audit = AuditLogger(max_events=100, auto_export_path=tmp_path)
    ann = [audit.log("store", user_id="ann", session_id="s-ann", metadata={"i": i}).event_id for i in range(250)]
    stop = threading.Event()
    logged: list[str] = []

    def host() -> None:
        while not stop.is_set():
            logged.extend(audit.log("store", user_id="bob").event_id for _ in range(100))
            time.sleep(0.002)

    t = threading.Thread(target=host)
    t.start()
    try:
        until(lambda: len(logged) > 1_000)
        result = within(lambda: erase_subject(audit, "ann"), 60)
    finally:
        stop.set()
        t.join()
    slow[0] = False
    audit.close()
    everything = axon_audit.AuditArchive(tmp_path).scan().select("event_id", "user_id").collect()
    users = dict(zip(everything["event_id"], everything["user_id"], strict=True))
    assert not any(u == "ann" for u in users.values())  # nothing of ann's escaped the erasure
    assert all(users[i] == result.pseudonym for i in ann)
    assert set(logged) <= set(users) and len(users) == len(ann) + len(logged) + 1  # + the FORGET record


# ---------------------------------------------------------------- one poison batch


def _poison_parquet(monkeypatch) -> list[bool]:
    real = _parquet.pq.write_table
    armed = [True]

    def write_table(table, *args, **kwargs):
        if armed[0] and "poison" in table.column("user_id").to_pylist():
            raise ValueError("cannot encode this batch")
        return real(table, *args, **kwargs)

    monkeypatch.setattr(_parquet.pq, "write_table", write_table)
    return armed


def test_a_poison_batch_never_blocks_the_exports_behind_it(tmp_path: Path, monkeypatch, caplog) -> None:
    armed = _poison_parquet(monkeypatch)
    audit = AuditLogger(max_events=50, auto_export_path=tmp_path / "exp", wal_path=tmp_path / "wal")
    with caplog.at_level(logging.ERROR, logger="axon_audit"):
        first = [audit.log("store", user_id="poison" if i == 7 else "ok").event_id for i in range(50)]
        later = [audit.log("store", user_id="ok").event_id for _ in range(100)]
        with pytest.raises(ExportError, match=r"^50 events could not be exported.*ValueError"):
            audit.flush()
    assert listed_ids(tmp_path / "exp") == later  # exported past the bad batch, in order
    stats = audit.get_stats()
    assert stats["poisoned_export_events"] == 50 and stats["pending_export_events"] == 50
    assert any("failed on their data" in r.getMessage() for r in caplog.records)
    assert audit.query_events(user_id="poison", include_archived=True)  # kept, queryable
    with pytest.raises(ExportError, match=r"^50 events could not be exported"):
        audit.close()
    assert audit._wal is not None
    audit._wal.close()  # as a crash would: the poison batch is only in memory and in the log
    del audit
    armed[0] = False
    again = AuditLogger(max_events=10**6, auto_export_path=tmp_path / "exp", wal_path=tmp_path / "wal")
    assert again.get_stats()["wal_recovered_events"] == 50  # the committed exports were not replayed
    again.close()
    assert Counter(listed_ids(tmp_path / "exp")) == Counter(first + later)
    assert axon_audit.verify(tmp_path / "exp").ok


def test_a_poison_batch_is_retried_and_exported_once_it_can_be(tmp_path: Path, monkeypatch) -> None:
    armed = _poison_parquet(monkeypatch)
    audit = AuditLogger(max_events=20, auto_export_path=tmp_path)
    ids = [audit.log("store", user_id="poison" if i == 0 else "ok").event_id for i in range(60)]
    with pytest.raises(ExportError, match=r"^20 events"):
        audit.flush()
    assert audit.get_stats()["export_failures"] >= 1
    armed[0] = False
    audit.flush()  # the retry succeeds: nothing was dropped
    audit.close()
    assert Counter(listed_ids(tmp_path)) == Counter(ids) and axon_audit.verify(tmp_path).ok
    assert pl.DataFrame({"id": listed_ids(tmp_path)}).height == 60


# ---------------------------------------------------------------- a crash between an export's files and its commit

_CRASHING_CHILD = """
import os, sys
from axon_audit import AuditLogger
from axon_audit.integrity import manifest as _integrity

real = _integrity.append_entries
calls = [0]

def append_entries(*args, **kwargs):  # the second export dies after its files, before its commit
    calls[0] += 1
    if calls[0] == 2:
        os._exit(9)
    return real(*args, **kwargs)

_integrity.append_entries = append_entries
audit = AuditLogger(max_events=100, auto_export_path=sys.argv[1])
for i in range(100):
    audit.log("store", user_id="committed")
audit.flush()
for i in range(100):
    audit.log("store", user_id="cut-off")
audit.flush()
"""


@pytest.mark.filterwarnings("error")
def test_a_crash_before_the_commit_is_no_tamper_alarm_and_serves_nothing_uncommitted(tmp_path: Path,
                                                                                      caplog) -> None:
    import subprocess
    import sys

    folder = tmp_path / "exp"
    watcher = AuditLogger(max_events=10**6, auto_export_path=folder)  # started before: reads while it runs
    env = {"PYTHONPATH": str(Path(axon_audit.__file__).parent.parent), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", _CRASHING_CHILD, str(folder)], env=env, capture_output=True,
                          timeout=120)
    assert proc.returncode == 9, proc.stderr.decode()[-2000:]
    layout = axon_audit.io.layout.ExportLayout(folder)
    on_disk = {f.name for f in layout.parts()} | {d.name for d in layout.json_documents()}
    listed = layout.listed_names()
    assert listed is not None
    leftovers = sorted(on_disk - listed)
    assert len(leftovers) >= 2  # the cut-off export's JSON document and Parquet part are there, unlisted
    [intended] = layout.intents().values()
    assert set(leftovers) <= set(intended)

    result = axon_audit.verify(folder)
    assert result.ok, result.problems  # no false tamper alarm
    assert sorted(x.split(":")[0] for x in result.leftovers) == leftovers
    assert all("uncommitted leftover of an interrupted export" in x for x in result.leftovers)

    # Every reader serves the committed events only (the leftovers an intent names: without a warning).
    users = {"committed"}
    assert set(axon_audit.open_archive(folder).scan().collect()["user_id"].to_list()) == users
    assert axon_audit.AuditArchive(folder).sql("SELECT count(*) AS n FROM archived")["n"][0] == 100
    assert axon_audit.AuditArchive(folder, source="json").scan().collect().height == 100
    assert set(axon_audit.scan_lake(str(folder)).collect()["user_id"].to_list()) == users
    assert {e.user_id for e in watcher.query_events(include_archived=True, limit=1000)} == users

    # A file no intent names is still a tamper finding.
    fake = folder / "audit_2020_01_01_000000.json"
    shutil.copy(folder / leftovers[0] if leftovers[0].endswith(".json") else folder / leftovers[-1], fake)
    tampered = axon_audit.verify(folder)
    assert not tampered.ok and tampered.problems == [f"{fake.name}: not listed in the manifest (inserted file)"]
    fake.unlink()

    # The next logger on the folder removes the leftovers (their events were never committed) and the intent.
    with caplog.at_level(logging.WARNING, logger="axon_audit"):
        nxt = AuditLogger(max_events=100, auto_export_path=folder)
    assert any("interrupted before its commit" in r.getMessage() for r in caplog.records)
    assert not any((folder / name).exists() for name in leftovers) and not layout.intents()
    after = axon_audit.verify(folder)
    assert after.ok and not after.leftovers
    nxt.log("store", user_id="later")
    nxt.close()
    assert axon_audit.open_archive(folder).scan().collect().height == 101 and axon_audit.verify(folder).ok
