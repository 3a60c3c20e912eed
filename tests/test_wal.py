"""Durability: the write-ahead log survives SIGKILL of a real child process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import polars as pl
import pytest

import axon_audit
from axon_audit import AuditLogger, AuditValueError
from axon_audit.write import wal as _wal

CHILD = Path(__file__).with_name("wal_child.py")


def run_child(tmp: Path, sync: str, crash_at: str, acks_before_kill: int = 3000,
              max_events: int = 500, syncs_before_kill: int = 0, export: str | None = None,
              env: dict[str, str] | None = None) -> list[str]:
    """Run the child until it dies by SIGKILL; return the acknowledged ids. It exports
    to `export` (default: the folder tmp/exp) with its log in tmp/wal."""
    env = dict(os.environ, **(env or {}), PYTHONPATH=str(Path(axon_audit.__file__).parent.parent))
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), export or str(tmp / "exp"), str(tmp / "wal"), sync, crash_at, str(max_events)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    assert proc.stdout is not None
    watchdog = threading.Timer(120, proc.kill)  # a hung child fails the test instead of hanging it
    watchdog.start()
    acks: list[str] = []
    deadline = time.monotonic() + 60
    if crash_at == "stream":
        syncs = 0
        while (len(acks) < acks_before_kill or syncs < syncs_before_kill) and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acks.append(line.decode().strip())
            syncs += acks[-1] == "SYNC-END"
        proc.send_signal(signal.SIGKILL)  # mid-stream: threads are inside log() right now
    # The rest through the reader readline used: communicate() reads the raw pipe, past what
    # that reader already holds, and would cut an id in two (a "lost" fragment).
    rest = proc.stdout.read()
    _, err = proc.communicate(timeout=150)
    watchdog.cancel()
    acks += [x for x in rest.decode().split("\n") if x]
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    return acks


def exported_ids(folder: Path) -> list[str]:
    """Event ids of every JSON export listed in the manifest."""
    manifest = orjson.loads((folder / "manifest.json").read_bytes()) if (folder / "manifest.json").exists() else {}
    ids: list[str] = []
    for e in manifest.get("entries", []):
        if e["kind"] == "json":
            ids += [ev["event_id"] for ev in orjson.loads((folder / e["file"]).read_bytes())["events"]]
    return ids


def parquet_ids(folder: Path) -> list[str]:
    files = sorted((folder / "parquet").rglob("*.parquet")) if (folder / "parquet").exists() else []
    return pl.concat([pl.read_parquet(f, columns=["event_id"]) for f in files])["event_id"].to_list() if files else []


def memory_ids(audit: AuditLogger) -> list[str]:
    return audit.scan(include_archived=False).select("event_id").collect()["event_id"].to_list()


def check_exactly_once(tmp: Path, acks: list[str]) -> AuditLogger:
    recovered = AuditLogger(max_events=10**9, auto_export_path=tmp / "exp", wal_path=tmp / "wal", hmac_key="k")
    in_memory = memory_ids(recovered)
    on_disk = exported_ids(tmp / "exp")
    counts = Counter(in_memory + on_disk)
    assert not [i for i, c in counts.items() if c > 1], "an event came back twice"
    missing = set(acks) - set(counts)
    assert not missing, f"{len(missing)} acknowledged events lost"
    assert Counter(parquet_ids(tmp / "exp")) == Counter(on_disk)  # Parquet holds the same events
    assert recovered.get_stats()["wal_recovered_events"] == len(in_memory)
    result = axon_audit.verify(tmp / "exp", key="k")
    assert result.ok, result.problems
    return recovered


@pytest.mark.slow
@pytest.mark.parametrize("crash_at", ["stream", "before_commit", "before_release"])
def test_sigkill_recovers_every_acknowledged_event_exactly_once(tmp_path: Path, crash_at: str) -> None:
    acks = run_child(tmp_path, "always", crash_at)
    assert len(acks) > 500  # at least one rotation happened before the kill
    recovered = check_exactly_once(tmp_path, acks)
    # Exporting the recovered events keeps them exactly once, and empties the log.
    recovered.close()
    ids = exported_ids(tmp_path / "exp")
    assert len(ids) == len(set(ids)) and set(acks) <= set(ids)
    assert _wal.existing_epochs(tmp_path / "wal") == []
    assert axon_audit.verify(tmp_path / "exp", key="k").ok


@pytest.mark.slow
def test_sigkill_interval_policy_keeps_everything_synced(tmp_path: Path) -> None:
    lines = run_child(tmp_path, "interval", "stream", acks_before_kill=5000, syncs_before_kill=3,
                      max_events=5000)
    synced_upto = max(i for i, x in enumerate(lines) if x == "SYNC-START" and "SYNC-END" in lines[i:])
    synced = [x for x in lines[:synced_upto] if x.startswith("evt_")]
    recovered = AuditLogger(max_events=10**9, auto_export_path=tmp_path / "exp", wal_path=tmp_path / "wal")
    have = Counter(memory_ids(recovered) + exported_ids(tmp_path / "exp"))
    assert max(have.values()) == 1
    assert len(synced) > 300 and set(synced) <= set(have)  # acknowledged before a completed flush(): kept
    recovered.close()
    assert axon_audit.verify(tmp_path / "exp").ok


def test_torn_tail_is_dropped_reported_and_cut(tmp_path: Path) -> None:
    audit = AuditLogger(max_events=10**9, auto_export_path=tmp_path / "exp", wal_path=tmp_path / "wal")
    logged = [audit.log("store", user_id=f"u{i}").event_id for i in range(20)]
    audit.flush()
    seg = _wal.segment_path(tmp_path / "wal", _wal.existing_epochs(tmp_path / "wal")[-1])
    crash_copy = tmp_path / "crash"
    shutil.copytree(tmp_path / "wal", crash_copy)  # the disk as a crash would leave it
    copy_seg = crash_copy / seg.name
    whole = copy_seg.stat().st_size
    torn = _wal.encode_record(b"R", orjson.dumps([[1, 2, "abcdef", "STORE"]]))[:-5]  # a record cut by the crash
    with open(copy_seg, "ab") as fh:
        fh.write(torn)
    again = AuditLogger(max_events=10**9, auto_export_path=tmp_path / "exp2", wal_path=crash_copy)
    stats = again.get_stats()
    assert stats["wal_dropped_bytes"] == len(torn)
    assert stats["wal_recovered_events"] == 20
    assert memory_ids(again) == logged
    assert copy_seg.stat().st_size == whole  # the torn tail was cut off


def test_corrupt_record_in_the_middle_is_skipped_and_later_records_kept(tmp_path: Path) -> None:
    rows = [[i, i, "abcdef", "STORE", None, None, [], None, "SUCCESS", None, None] for i in range(3)]
    good = [_wal.encode_record(b"R", orjson.dumps([r])) for r in rows]
    bad = bytearray(good[1])
    bad[-3] ^= 0xFF  # flips a payload byte: its CRC no longer matches
    data = good[0] + bytes(bad) + good[2]
    records, skipped, end = _wal.scan_segment(data)
    assert [orjson.loads(p)[0][0] for _, p in records] == [0, 2]
    assert skipped == [(len(good[0]), len(bad))]
    assert end == len(data)


def test_recovery_after_abandoned_logger_then_export_truncates_wal(tmp_path: Path) -> None:
    a = AuditLogger(max_events=10**9, auto_export_path=tmp_path / "exp", wal_path=tmp_path / "wal")
    ids = [a.log("recall", user_id="u", entry_ids=[f"e{i}"]).event_id for i in range(50)]
    a.flush()
    snapshot = tmp_path / "snap"
    shutil.copytree(tmp_path / "wal", snapshot)
    b = AuditLogger(max_events=10**9, auto_export_path=tmp_path / "exp_b", wal_path=snapshot)
    assert memory_ids(b) == ids
    b.close()  # exported: the WAL is truncated
    assert _wal.existing_epochs(snapshot) == []
    del b  # a logger holds its WAL folder until it is gone
    c = AuditLogger(max_events=10**9, auto_export_path=tmp_path / "exp_b", wal_path=snapshot)
    assert memory_ids(c) == [] and exported_ids(tmp_path / "exp_b") == ids


def test_log_batch_and_clear_are_logged_too(tmp_path: Path) -> None:
    a = AuditLogger(max_events=10**9, auto_export_path=tmp_path / "exp", wal_path=tmp_path / "wal",
                    wal_sync="interval")
    a.log("store", user_id="single")
    a.log_batch([{"operation": "import", "user_id": "batch", "event_id": "evt_custom_1"}])
    a.flush()
    copy1 = tmp_path / "c1"
    shutil.copytree(tmp_path / "wal", copy1)
    asyncio_clear(a)
    a.log("forget", user_id="after_clear")
    a.flush()
    copy2 = tmp_path / "c2"
    shutil.copytree(tmp_path / "wal", copy2)
    b = AuditLogger(max_events=10**9, auto_export_path=tmp_path / "e1", wal_path=copy1)
    assert sorted(b.scan().select("user_id").collect()["user_id"].cast(pl.String).to_list()) == ["batch", "single"]
    assert "evt_custom_1" in memory_ids(b)
    c = AuditLogger(max_events=10**9, auto_export_path=tmp_path / "e2", wal_path=copy2)
    assert c.scan().select("user_id").collect()["user_id"].cast(pl.String).to_list() == ["after_clear"]


def asyncio_clear(audit: AuditLogger) -> None:
    import asyncio

    asyncio.run(audit.clear())


def test_wal_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(AuditValueError, match="wal_path needs auto_export_path"):
        AuditLogger(wal_path=tmp_path / "w")
    with pytest.raises(AuditValueError, match="wal_sync must be one of"):
        AuditLogger(auto_export_path=tmp_path / "e", wal_path=tmp_path / "w", wal_sync="sometimes")
    with pytest.raises(AuditValueError, match="wal_interval"):
        AuditLogger(auto_export_path=tmp_path / "e", wal_path=tmp_path / "w", wal_sync="interval", wal_interval=-1)
    with pytest.raises(axon_audit.AuditTypeError, match="wal_path must be a path"):
        AuditLogger(auto_export_path=tmp_path / "e", wal_path=3)


def test_group_commit_shares_fsyncs_between_threads(tmp_path: Path) -> None:
    import threading

    audit = AuditLogger(max_events=10**9, auto_export_path=tmp_path / "exp", wal_path=tmp_path / "wal")
    n_threads, per_thread = 8, 100

    def work() -> None:
        for _ in range(per_thread):
            audit.log("store")

    threads = [threading.Thread(target=work) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = audit.get_stats()
    assert stats["total_events_logged"] == n_threads * per_thread
    # Each log() returned only after an fsync covering it; concurrent callers shared them.
    assert 0 < stats["wal_fsyncs"] < n_threads * per_thread


async def test_log_event_awaits_the_fsync_and_tasks_share_it(tmp_path: Path) -> None:
    import asyncio

    audit = AuditLogger(max_events=10**9, auto_export_path=tmp_path / "exp", wal_path=tmp_path / "wal")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    tick = asyncio.create_task(ticker())
    events = await asyncio.gather(*(audit.log_event("store", user_id=f"task{k}") for k in range(200)))
    tick.cancel()
    stats = audit.get_stats()
    assert stats["total_events_logged"] == 200
    assert 0 < stats["wal_fsyncs"] < 200  # the 200 tasks shared fsyncs
    assert ticks > 0  # the loop ran while the fsyncs were done
    snapshot = tmp_path / "snap"
    shutil.copytree(tmp_path / "wal", snapshot)  # every awaited event is already on disk
    again = AuditLogger(max_events=10**9, auto_export_path=tmp_path / "exp2", wal_path=snapshot)
    assert set(memory_ids(again)) == {e.event_id for e in events}


def test_unusable_wal_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(axon_audit.ExportError, match="cannot open the write-ahead log"):
        AuditLogger(auto_export_path=tmp_path / "exp", wal_path=tmp_path / "file" / "wal")


def test_one_logger_per_wal_folder(tmp_path: Path) -> None:
    first = AuditLogger(auto_export_path=tmp_path / "exp", wal_path=tmp_path / "wal")
    first.log("store")
    with pytest.raises(AuditValueError, match="is in use by another logger"):
        AuditLogger(auto_export_path=tmp_path / "exp", wal_path=tmp_path / "wal")
    other_process = subprocess.run(
        [sys.executable, "-c", "import sys, axon_audit\n"
         "try:\n axon_audit.AuditLogger(auto_export_path=sys.argv[1], wal_path=sys.argv[2])\n"
         "except axon_audit.AuditValueError as e:\n print(e)", str(tmp_path / "exp"), str(tmp_path / "wal")],
        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(Path(axon_audit.__file__).parent.parent)))
    assert "is in use by another logger" in other_process.stdout
    first.close()
    del first
    again = AuditLogger(auto_export_path=tmp_path / "exp", wal_path=tmp_path / "wal")
    assert again.get_stats()["wal_recovered_events"] == 0  # closed: everything was exported


def test_stale_temp_files_of_dead_writers_are_removed_at_recovery(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "exp" / "parquet").mkdir(parents=True)
    stale = tmp_path / "exp" / f".audit_2025_01_01_000000.json.{dead.stdout.strip()}-deadbeef.tmp"
    live = tmp_path / "exp" / "parquet" / f".part-x.parquet.{os.getppid()}-cafe0000.tmp"
    stale.write_text("half")
    live.write_text("being written")
    AuditLogger(auto_export_path=tmp_path / "exp", wal_path=tmp_path / "wal")
    assert not stale.exists() and live.exists()
