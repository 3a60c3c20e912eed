"""Faults: an export that cannot be written keeps its events in memory, is retried,
counted and logged; memory stays bounded by the caller's policy; the host is
never broken unless it asked for fail-closed behaviour."""

from __future__ import annotations

import errno
import logging
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import axon_audit
from axon_audit import AuditLogger, AuditUnavailableError, ExportError
from axon_audit.io import parquet as _parquet
from tests.exported import listed_ids


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB file system (needs mount privileges; skipped without them)."""
    point = tmp_path / "small"
    point.mkdir()
    if not _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(point)):
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


@pytest.fixture
def blocked_folder(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """An export folder that cannot be created: its parent is a regular file (a
    real ENOTDIR from the OS, for any user). Remove the file to unblock it."""
    blocker = tmp_path / "blocked"
    blocker.write_text("not a folder")
    yield blocker, blocker / "exports"


def fill(audit: AuditLogger, n: int, tag: str = "u") -> list[str]:
    return [audit.log("store", user_id=tag, metadata={"i": i, "pad": "x" * 200}).event_id for i in range(n)]


def test_unwritable_folder_keeps_events_retries_counts_and_logs(blocked_folder, caplog) -> None:
    blocker, folder = blocked_folder
    audit = AuditLogger(max_events=100, auto_export_path=folder)
    with caplog.at_level(logging.ERROR, logger="axon_audit"):
        ids = fill(audit, 250)  # two rotations; the first fails, the second waits behind it
        with pytest.raises(ExportError, match="200 events could not be exported"):
            audit.flush()  # what it promises (those exports written) it cannot do: it says so
    stats = audit.get_stats()
    assert stats["export_failures"] >= 1
    assert stats["pending_export_events"] == 200 and stats["events_in_memory"] == 50
    assert "NotADirectoryError" in stats["last_export_error"] or "Not a directory" in stats["last_export_error"]
    assert any("kept in memory for retry" in r.getMessage() for r in caplog.records)
    blocker.unlink()  # the folder becomes writable: the next flush() retries
    audit.flush()
    assert audit.get_stats()["pending_export_events"] == 0
    assert listed_ids(folder) == ids[:200]  # in logging order, each once
    audit.close()
    assert listed_ids(folder) == ids
    assert axon_audit.verify(folder).ok


def test_retry_happens_at_next_rotation(blocked_folder) -> None:
    blocker, folder = blocked_folder
    audit = AuditLogger(max_events=100, auto_export_path=folder)
    ids = fill(audit, 100)
    with pytest.raises(ExportError, match="100 events could not be exported"):
        audit.flush()
    assert audit.get_stats()["pending_export_events"] == 100
    blocker.unlink()
    ids += fill(audit, 100)  # this rotation first retries the failed export
    audit.flush()
    assert listed_ids(folder) == ids


def test_close_reports_what_could_not_be_written(blocked_folder) -> None:
    _, folder = blocked_folder
    audit = AuditLogger(max_events=100, auto_export_path=folder)
    fill(audit, 30)
    with pytest.raises(ExportError, match="30 events could not be exported"):
        audit.close()
    assert audit.event_count == 0 and audit.get_stats()["pending_export_events"] == 30


def test_disk_full_on_a_real_small_tmpfs(small_tmpfs: Path, caplog) -> None:
    audit = AuditLogger(max_events=200, auto_export_path=small_tmpfs / "exp")
    with caplog.at_level(logging.ERROR, logger="axon_audit"):
        ids = fill(audit, 600)  # ~3 × 60 KB of JSON + Parquet: more than 64 KiB
        with pytest.raises(ExportError, match="No space left"):
            audit.flush()
    stats = audit.get_stats()
    assert stats["export_failures"] >= 1 and "No space left" in stats["last_export_error"]
    # All or nothing: the failed export left no partial or temporary file behind.
    on_disk = listed_ids(small_tmpfs / "exp") if (small_tmpfs / "exp" / "manifest.json").exists() else []
    assert len(on_disk) + stats["pending_export_events"] == 600
    assert not list((small_tmpfs / "exp").rglob("*.tmp"))
    assert _mount("-o", "remount,size=16m", str(small_tmpfs))  # space freed
    audit.close()
    assert listed_ids(small_tmpfs / "exp") == ids
    assert axon_audit.verify(small_tmpfs / "exp").ok


def test_injected_enospc_in_the_parquet_writer(tmp_path: Path, monkeypatch) -> None:
    real = _parquet.pq.write_table
    broken = [True]

    def write_table(*args, **kwargs):
        if broken[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(_parquet.pq, "write_table", write_table)
    audit = AuditLogger(max_events=50, auto_export_path=tmp_path)
    ids = fill(audit, 50)
    with pytest.raises(ExportError, match="50 events could not be exported"):
        audit.flush()
    assert audit.get_stats()["export_failures"] == 1
    assert not list(tmp_path.glob("audit_*.json"))  # the JSON written before it was removed again
    broken[0] = False
    audit.flush()
    assert listed_ids(tmp_path) == ids and axon_audit.verify(tmp_path).ok


def test_backlog_policy_raise_refuses_new_events_and_loses_none(blocked_folder) -> None:
    blocker, folder = blocked_folder
    audit = AuditLogger(max_events=50, auto_export_path=folder, max_backlog=100, backlog_policy="raise")
    accepted = []
    with pytest.raises(AuditUnavailableError, match="backlog full: 100 events wait"):
        for i in range(1000):
            accepted.append(audit.log("store", metadata={"i": i}).event_id)
            if i % 50 == 49:
                with pytest.raises(ExportError):
                    audit.flush()
    stats = audit.get_stats()
    assert stats["refused_events"] == 1
    # Every accepted event is held (in memory or awaiting export); the refused one was not taken.
    assert stats["events_in_memory"] + stats["pending_export_events"] == len(accepted)
    assert stats["pending_export_events"] <= 100 + 50  # bounded: backlog + one rotation's worth
    blocker.unlink()
    audit.flush()
    audit.log("store")  # room again
    audit.close()
    assert listed_ids(folder)[: len(accepted)] == accepted


def test_backlog_policy_block_waits_until_exports_succeed(blocked_folder) -> None:
    blocker, folder = blocked_folder
    audit = AuditLogger(max_events=50, auto_export_path=folder, max_backlog=100, backlog_policy="block")
    ids: list[str] = []
    done = threading.Event()

    def host() -> None:
        for i in range(400):
            ids.append(audit.log("store", metadata={"i": i}).event_id)
        done.set()

    t = threading.Thread(target=host)
    t.start()
    time.sleep(1.0)
    assert not done.is_set()  # blocked while the folder is unwritable
    assert audit.get_stats()["pending_export_events"] <= 150
    blocker.unlink()
    t.join(30)
    assert done.is_set()
    audit.close()
    assert listed_ids(folder) == ids and audit.get_stats()["blocked_waits"] >= 1


def test_fail_closed_refuses_while_exports_fail_and_recovers(blocked_folder) -> None:
    blocker, folder = blocked_folder
    audit = AuditLogger(max_events=20, auto_export_path=folder, fail_closed=True)
    ids = fill(audit, 20)
    with pytest.raises(ExportError):
        audit.flush()
    with pytest.raises(AuditUnavailableError, match=r"fail_closed: exports to .* are failing"):
        audit.log("store")
    blocker.unlink()
    audit.flush()
    ids.append(audit.log("store").event_id)
    audit.close()
    assert listed_ids(folder) == ids


def test_fail_open_is_the_default_and_never_raises_from_log(blocked_folder) -> None:
    _, folder = blocked_folder
    audit = AuditLogger(max_events=10, auto_export_path=folder)
    for i in range(300):
        audit.log("store")
        if i % 25 == 24:
            with pytest.raises(ExportError):
                audit.flush()
    assert audit.get_stats()["export_failures"] >= 10
    assert audit.event_count + audit.get_stats()["pending_export_events"] == 300


def test_policy_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(axon_audit.AuditValueError, match="max_backlog must be"):
        AuditLogger(max_backlog=0)
    with pytest.raises(axon_audit.AuditValueError, match="backlog_policy must be one of"):
        AuditLogger(backlog_policy="drop")
    with pytest.raises(axon_audit.AuditTypeError, match="fail_closed must be a bool"):
        AuditLogger(fail_closed="yes")
    with pytest.raises(axon_audit.AuditTypeError, match="hmac_key must be"):
        AuditLogger(hmac_key=3)


def test_wal_on_a_full_disk_fail_closed_raises_fail_open_logs(small_tmpfs: Path, tmp_path: Path, caplog) -> None:
    closed = AuditLogger(max_events=10**9, auto_export_path=tmp_path / "e1", wal_path=small_tmpfs / "w1",
                         fail_closed=True)
    with pytest.raises(AuditUnavailableError, match="not written to the write-ahead log"):
        for i in range(10_000):
            closed.log("store", metadata={"pad": "y" * 500, "i": i})
    subprocess.run(["umount", "-l", str(small_tmpfs)], capture_output=True)
    assert _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small_tmpfs))
    opened = AuditLogger(max_events=10**9, auto_export_path=tmp_path / "e2", wal_path=small_tmpfs / "w2")
    with caplog.at_level(logging.ERROR, logger="axon_audit"):
        for i in range(300):
            opened.log("store", metadata={"pad": "y" * 500, "i": i})
    assert opened.event_count == 300  # the host went on; every event is in memory
    assert opened.get_stats()["wal_not_durable_events"] > 0
    assert any("write-ahead log" in r.getMessage() for r in caplog.records)


def test_read_only_file_system_then_writable_again(tmp_path: Path) -> None:
    point = tmp_path / "ro"
    point.mkdir()
    if not _mount("-t", "tmpfs", "-o", "size=16m", "tmpfs", str(point)):
        pytest.skip("cannot mount a tmpfs here")
    try:
        (point / "exp").mkdir()
        assert _mount("-o", "remount,ro", str(point))  # read-only even for root
        audit = AuditLogger(max_events=50, auto_export_path=point / "exp")
        ids = fill(audit, 120)
        with pytest.raises(ExportError, match="Read-only file system"):
            audit.flush()
        stats = audit.get_stats()
        assert stats["export_failures"] >= 1 and "Read-only file system" in stats["last_export_error"]
        assert stats["pending_export_events"] == 100
        assert _mount("-o", "remount,rw", str(point))
        audit.close()
        assert listed_ids(point / "exp") == ids and axon_audit.verify(point / "exp").ok
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)
