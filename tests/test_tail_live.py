"""`axon-audit tail PATH --wal WAL` on a live logger in another process
(`axon_audit.read.live_tail`): the events not yet exported show as the logger's
write-ahead log receives them, and each event shows once, in log order, across its
export (the rule: read live, in logging order; what the export has that was not
read live, in the export's order), across rotations, a half-exported start, a
segment deleted while it is read, a SIGKILL and a restarted logger's recovery."""

from __future__ import annotations

import gc
import re
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from axon_audit import AuditLogger
from axon_audit.io.location import Location, resolve
from axon_audit.query.filters import Filters
from axon_audit.read import live_tail
from axon_audit.read.live_tail import LiveFollower
from axon_audit.read.log_order import log_parts, read_log_part
from axon_audit.write import wal as _wal
from axon_audit.write.durability import WalLane
from tests.cli_process import ROOT, env, script

SESSION = re.compile(r".*  (s\d+)  entries=\d+.*")
CHILD = str(ROOT / "tests" / "live_tail_child.py")


def _exports(folder: Path | Location) -> list[list[str]]:
    """Each export's sessions, in the export log's order."""
    root = resolve(folder) if isinstance(folder, Path) else folder
    out: dict[tuple[str, int], list[str]] = {}
    for p in log_parts(root):
        out.setdefault((p.manifest, p.commit), []).extend(read_log_part(root, p)[0]["session_id"].to_list())
    return list(out.values())


def _check_log_order(printed: list[str], folder: Path | Location, logged: list[str]) -> None:
    """Each logged event once; per export: a prefix in logging order (read live), then the
    rest in the export's order; then what is not exported yet, in logging order."""
    assert sorted(printed) == sorted(logged) and len(set(printed)) == len(printed)
    rank = {s: i for i, s in enumerate(logged)}
    pos = 0
    for block in _exports(folder):
        got = printed[pos:pos + len(block)]
        assert sorted(got) == sorted(block), (pos, got, block)
        k = 0
        while k < len(got) and (k == 0 or rank[got[k]] > rank[got[k - 1]]):
            k += 1
        rest = set(got[k:])
        assert got[k:] == [s for s in block if s in rest], (got, block)
        pos += len(block)
    assert printed[pos:] == sorted(printed[pos:], key=rank.__getitem__)


class _Tail:
    """The real console script, its lines collected."""

    def __init__(self, folder: Path, wal: Path, *more: str) -> None:
        self.proc = subprocess.Popen([script(), "tail", str(folder), "--wal", str(wal), "--interval", "0.05", *more],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
        self.lines: list[str] = []
        self.errors: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()  # type: ignore
        threading.Thread(target=lambda: self.errors.extend(self.proc.stderr), daemon=True).start()  # type: ignore
        self.wait(lambda: any(e.startswith("axon-audit: following") for e in self.errors))

    def wait(self, cond: Any, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not cond() and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        assert cond(), (self.lines[-3:], self.errors)

    def sessions(self) -> list[str]:
        got = [m.group(1) for line in self.lines if (m := SESSION.fullmatch(line.rstrip("\n")))]
        assert len(got) == len(self.lines), self.lines[:5]
        return got

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


def _child(folder: Path, wal: Path, first: int, count: int, max_events: int, pause: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, CHILD, str(folder), str(wal), str(first), str(count), str(max_events),
                             str(pause)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env())


def _read_until(proc: subprocess.Popen, stop: Any) -> list[str]:
    got = []
    for line in proc.stdout:  # type: ignore[union-attr]
        line = line.strip()
        if line == "logged":
            break
        got.append(line)
        if stop(got):
            break
    return got


@pytest.mark.slow
def test_tail_shows_a_live_loggers_events_once_in_log_order_across_rotations(tmp_path: Path) -> None:
    folder, wal = tmp_path / "export", tmp_path / "wal"
    folder.mkdir()
    tail = _Tail(folder, wal, "-n", "0")
    child = _child(folder, wal, 0, 260, 100, 0.003)  # two rotations, then 60 events in the WAL only
    try:
        assert len(_read_until(child, lambda got: False)) == 260
        tail.wait(lambda: len(tail.lines) >= 260)
        assert len(_exports(folder)) == 2  # 60 events are not exported: tail showed them from the WAL
        child.stdin.close()  # type: ignore[union-attr]
        child.wait(timeout=60)  # close() exports the last 60 and deletes the WAL's segments
        assert _wal.existing_epochs(wal) == [] and len(_exports(folder)) == 3
        time.sleep(0.6)  # more looks: their export does not show them again
        _check_log_order(tail.sessions(), folder, [f"s{i}" for i in range(260)])
    finally:
        child.kill()
        tail.stop()


@pytest.mark.slow
def test_tail_after_a_sigkill_shows_what_the_wal_held_and_nothing_twice_after_recovery(tmp_path: Path) -> None:
    folder, wal = tmp_path / "export", tmp_path / "wal"
    folder.mkdir()
    tail = _Tail(folder, wal, "-n", "0")
    first = _child(folder, wal, 0, 1000, 70, 0.002)
    try:
        acked = _read_until(first, lambda got: len(got) >= 170)  # acknowledged: on the WAL (sync "always")
        first.kill()  # SIGKILL mid-stream
        first.wait(timeout=10)
        tail.wait(lambda: len(tail.lines) >= len(acked))
        time.sleep(0.5)  # the killed logger may have written one more than it acknowledged
        assert _wal.existing_epochs(wal)  # some of them only there
        killed_at = len(tail.lines)  # acked, or a few more logged before the kill
        assert len(set(tail.sessions())) == killed_at and set(acked) <= {s[1:] for s in tail.sessions()}
        second = _child(folder, wal, 5000, 150, 70, 0.002)  # recovers and exports the first one's rest
        assert len(_read_until(second, lambda got: False)) == 150
        second.stdin.close()  # type: ignore[union-attr]
        second.wait(timeout=60)
        logged = [s for block in _exports(folder) for s in block]
        assert len(logged) == killed_at + 150
        tail.wait(lambda: len(tail.lines) >= len(logged))
        time.sleep(0.6)
        printed = tail.sessions()
        rank = {s: (int(s[1:]), 0) for s in logged}
        _check_log_order(printed, folder, sorted(logged, key=rank.__getitem__))
    finally:
        first.kill()
        tail.stop()


def test_the_backlog_is_what_is_not_exported_and_a_half_exported_epoch_is_not_read(tmp_path: Path,
                                                                                  monkeypatch: Any) -> None:
    folder, wal = tmp_path / "export", tmp_path / "wal"
    monkeypatch.setattr(WalLane, "release_locked", lambda self: None)  # committed, never released
    audit = AuditLogger(max_events=5, auto_export_path=folder, wal_path=wal)
    for i in range(7):
        audit.log("store", session_id=f"s{i}")
    audit.flush()
    assert _wal.existing_epochs(wal) == [1, 2] and list(wal.glob("job-*.json"))
    follower = LiveFollower(resolve(folder), wal)
    assert follower.backlog["session_id"].to_list() == ["s5", "s6"]
    audit.log("store", session_id="s7")
    assert [s for df in follower.fresh() for s in df["session_id"]] == ["s7"]
    audit.close()  # exports s5..s7
    assert follower.fresh() == []


def test_an_epoch_exported_while_it_is_read_shows_its_rest_before_the_next_epoch(tmp_path: Path,
                                                                                 monkeypatch: Any) -> None:
    folder, wal = tmp_path / "export", tmp_path / "wal"
    audit = AuditLogger(max_events=3, auto_export_path=folder, wal_path=wal)
    gate = threading.Event()
    audit._exporter.submit_call(gate.wait)  # holds the exports
    follower = LiveFollower(resolve(folder), wal)
    audit.log("store", session_id="s0")
    assert [s for df in follower.fresh() for s in df["session_id"]] == ["s0"]
    for i in range(1, 5):  # epoch 1: s0..s2 (exported), epoch 2: s3, s4
        audit.log("store", session_id=f"s{i}")
    assert _wal.existing_epochs(wal) == [1, 2]
    real = LiveFollower._exported

    def exported(self: LiveFollower) -> set[int]:  # the export lands and epoch 1 goes after the manifest read
        gate.set()
        audit.flush()
        assert _wal.existing_epochs(wal) == [2]
        return real(self)

    monkeypatch.setattr(LiveFollower, "_exported", exported)
    assert follower.fresh() == []  # epoch 1's rest is not there for this look, so epoch 2 waits
    monkeypatch.setattr(LiveFollower, "_exported", real)
    assert [s for df in follower.fresh() for s in df["session_id"]] == ["s1", "s2", "s3", "s4"]
    audit.close()
    assert follower.fresh() == []


def test_an_epoch_exported_during_the_manifest_read_is_not_overtaken_by_the_next(tmp_path: Path) -> None:
    """The segments are listed before the manifests are read: a segment deleted after that
    read is in the listing, so it stops the look (its export shows next time, first)."""
    folder, wal = tmp_path / "export", tmp_path / "wal"
    audit = AuditLogger(max_events=3, auto_export_path=folder, wal_path=wal)
    gate = threading.Event()
    audit._exporter.submit_call(gate.wait)  # holds the exports
    follower = LiveFollower(resolve(folder), wal)
    for i in range(4):  # epoch 1: s0..s2, not read live; epoch 2: s3
        audit.log("store", session_id=f"s{i}")
    real = follower._log.fresh

    def manifest_read() -> list:  # the export of epoch 1 lands and its segment goes just after it
        got = real()
        gate.set()
        audit.flush()
        assert _wal.existing_epochs(wal) == [2]
        return got

    follower._log.fresh = manifest_read  # type: ignore[method-assign]
    assert follower.fresh() == []
    follower._log.fresh = real  # type: ignore[method-assign]
    got = [s for df in follower.fresh() for s in df["session_id"]]
    assert sorted(got[:3]) == ["s0", "s1", "s2"] and got[3:] == ["s3"]
    audit.close()
    assert follower.fresh() == []


def test_an_export_s_parts_count_once_its_manifest_lists_them_all(tmp_path: Path, monkeypatch: Any) -> None:
    """The first export of a folder, its parts (two days) written but not committed: the look
    then reads the WAL, not the parts (a listing would give a part now and the WAL's copy of
    its events after, as the job's other part is not seen)."""
    from axon_audit.integrity import manifest as _integrity  # here: only this test patches it

    folder, wal = tmp_path / "export", tmp_path / "wal"
    follower = LiveFollower(resolve(folder), wal)
    got: list[str] = []
    real = _integrity.append_entries

    def append_entries(*args: Any, **kwargs: Any) -> Any:  # a look between the files and their commit
        assert len(list(folder.rglob("*.parquet"))) == 2
        got.extend(s for df in follower.fresh() for s in df["session_id"])
        return real(*args, **kwargs)

    monkeypatch.setattr(_integrity, "append_entries", append_entries)
    start = datetime(2025, 6, 1, tzinfo=timezone.utc)
    with AuditLogger(max_events=2, auto_export_path=folder, wal_path=wal) as audit:
        audit.log_batch([{"operation": "store", "session_id": f"s{i}", "timestamp": start + timedelta(days=1 - i)}
                         for i in range(2)])  # a rotation: two parts
        audit.flush()
    got += [s for df in follower.fresh() for s in df["session_id"]]
    assert got == ["s0", "s1"]


def test_a_torn_last_record_is_read_once_it_is_whole(tmp_path: Path) -> None:
    wal, folder = tmp_path / "wal", tmp_path / "export"
    with AuditLogger(max_events=100, auto_export_path=tmp_path / "first", wal_path=tmp_path / "w0") as audit:
        audit.log("store", session_id="s0")
        seg = _wal.segment_path(tmp_path / "w0", 1)
        one = seg.read_bytes()
        audit.log("store", session_id="s1")
        two = seg.read_bytes()[len(one):]
    wal.mkdir()
    (wal / seg.name).write_bytes(one + two[: len(two) // 2])
    follower = LiveFollower(resolve(folder), wal)
    assert follower.backlog["session_id"].to_list() == ["s0"]
    assert follower.fresh() == []
    with open(wal / seg.name, "ab") as fh:
        fh.write(two[len(two) // 2:])
    assert [s for df in follower.fresh() for s in df["session_id"]] == ["s1"]
    assert follower.fresh() == []


def test_a_restarted_logger_numbers_its_epochs_on_and_the_follower_sees_them(tmp_path: Path) -> None:
    folder, wal = tmp_path / "export", tmp_path / "wal"
    follower = LiveFollower(resolve(folder), wal)
    with AuditLogger(max_events=2, auto_export_path=folder, wal_path=wal) as audit:
        for i in range(3):
            audit.log("store", session_id=f"s{i}")
        got = [s for df in follower.fresh() for s in df["session_id"]]
    assert _wal.existing_epochs(wal) == []
    del audit  # a logger holds its WAL folder until it is gone
    gc.collect()
    audit = AuditLogger(max_events=2, auto_export_path=folder, wal_path=wal)
    audit.log("store", session_id="s3")
    assert _wal.existing_epochs(wal) and min(_wal.existing_epochs(wal)) > 2  # not wal-00000001 again
    got += [s for df in follower.fresh() for s in df["session_id"]]
    audit.close()
    got += [s for df in follower.fresh() for s in df["session_id"]]
    assert got == ["s0", "s1", "s2", "s3"]


def test_follow_frames_yields_filtered_looks(tmp_path: Path) -> None:
    folder, wal = tmp_path / "export", tmp_path / "wal"
    with AuditLogger(max_events=50, auto_export_path=folder, wal_path=wal) as audit:
        follower = LiveFollower(resolve(folder), wal)
        for i in range(6):
            audit.log("store", session_id=f"s{i}", status="failure" if i % 2 else "success")
        looks = iter([False, True])
        failures = Filters.build(status="failure").expr()
        frames = list(live_tail.follow_frames(follower, 0.01, failures, lambda: next(looks)))
    assert [s for df in frames for s in df["session_id"]] == ["s1", "s3", "s5"]


def test_tail_n_shows_the_newest_exported_then_the_wals_not_exported_and_no_follow_stops(tmp_path: Path) -> None:
    folder, wal = tmp_path / "export", tmp_path / "wal"
    audit = AuditLogger(max_events=5, auto_export_path=folder, wal_path=wal)
    for i in range(7):
        audit.log("store", session_id=f"s{i}", status="failure" if i in (1, 3, 6) else "success")
    audit.flush()  # s0..s4 exported, s5 and s6 only in the WAL

    def tail(*args: str) -> list[str]:
        done = subprocess.run([script(), "tail", str(folder), *args, "--no-follow"], capture_output=True, text=True,
                              env=env(), timeout=60)
        assert done.returncode == 0, done.stderr
        return [m.group(1) for line in done.stdout.splitlines() if (m := SESSION.fullmatch(line))]

    assert tail("-n", "4") == ["s1", "s2", "s3", "s4"]
    assert tail("-n", "4", "--wal", str(wal)) == ["s3", "s4", "s5", "s6"]
    assert tail("-n", "1", "--wal", str(wal)) == ["s6"]
    assert tail("-n", "9", "--wal", str(wal), "-s", "failure") == ["s1", "s3", "s6"]
    audit.close()
    bad = subprocess.run([script(), "tail", str(next(folder.rglob("*.parquet"))), "--wal", str(wal)],
                         capture_output=True, text=True, env=env(), timeout=60)
    assert bad.returncode != 0 and "--wal" in bad.stderr


STEP = st.one_of(st.tuples(st.just("log"), st.integers(1, 7)), st.just(("look",)), st.just(("flush",)),
                 st.just(("restart",)))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEP, min_size=1, max_size=14), sync=st.sampled_from(["always", "interval"]),
       seconds=st.lists(st.integers(0, 10_000), min_size=60, max_size=60))
def test_any_interleaving_of_logging_exports_restarts_and_looks_prints_each_event_once_in_log_order(
        tmp_path_factory: pytest.TempPathFactory, steps: list[tuple], sync: str, seconds: list[int]) -> None:
    """Exports run on the logger's own thread, so a look may come at any point of one
    (before its commit, between its commit and the segment's deletion, after)."""
    tmp = tmp_path_factory.mktemp("live")
    folder, wal = tmp / "export", tmp / "wal"
    start = datetime(2025, 6, 1, tzinfo=timezone.utc)

    def open_logger() -> AuditLogger:
        return AuditLogger(max_events=4, auto_export_path=folder, wal_path=wal, wal_sync=sync)

    audit = open_logger()
    follower = LiveFollower(resolve(folder), wal)
    printed: list[str] = []
    logged: list[str] = []
    for step in steps:
        if step[0] == "log":  # times out of order: an export's order is not the logging order
            rows = [{"operation": "store", "session_id": f"s{len(logged) + k}",
                     "timestamp": start + timedelta(seconds=seconds[(len(logged) + k) % 60])} for k in range(step[1])]
            audit.log_batch(rows)
            logged += [r["session_id"] for r in rows]
        elif step[0] == "flush":
            audit.flush()
        elif step[0] == "restart":
            audit.close()
            del audit  # a logger holds its WAL folder until it is gone
            gc.collect()
            audit = open_logger()
        printed += [s for df in follower.fresh() for s in df["session_id"]]  # a look at once: any point of an export
        deadline = time.monotonic() + 5
        while len(printed) < len(logged) and time.monotonic() < deadline:  # live: all of it shows, exported or not
            time.sleep(0.01)
            printed += [s for df in follower.fresh() for s in df["session_id"]]
        assert sorted(printed) == sorted(logged)
    audit.flush()  # the logger lives on: what it has not exported is in the WAL only
    printed += [s for df in follower.fresh() for s in df["session_id"]]
    audit.close()
    printed += [s for df in follower.fresh() for s in df["session_id"]]
    assert follower.fresh() == []
    _check_log_order(printed, folder, logged)


def test_a_lake_on_object_storage_with_a_local_wal_is_followed_once_in_log_order(s3_server: Any, s3_bucket: str,
                                                                               tmp_path: Path) -> None:
    """The export on S3 (each writer's own manifest log), the WAL local: the job records name
    the objects as the writer's manifest lists them."""
    uri, opts = f"s3://{s3_bucket}/audit", {"endpoint_url": s3_server.endpoint}
    wal = tmp_path / "wal"
    audit = AuditLogger(max_events=4, auto_export_path=uri, storage_options=opts, wal_path=wal)
    follower = LiveFollower(resolve(uri, storage_options=opts), wal)
    start = datetime(2025, 6, 1, tzinfo=timezone.utc)
    printed: list[str] = []
    logged: list[str] = []
    for n in (3, 2, 6, 2):  # rotations at 4: the times out of order
        rows = [{"operation": "store", "session_id": f"s{len(logged) + k}",
                 "timestamp": start + timedelta(hours=(7 * (len(logged) + k)) % 11)} for k in range(n)]
        audit.log_batch(rows)
        logged += [r["session_id"] for r in rows]
        printed += [s for df in follower.fresh() for s in df["session_id"]]
        assert sorted(printed) == sorted(logged)  # live: what is not exported yet shows from the WAL
    audit.close()
    printed += [s for df in follower.fresh() for s in df["session_id"]]
    assert follower.fresh() == []
    root = resolve(uri, storage_options=opts)
    assert len(_exports(root)) == 3 and log_parts(root)[0].manifest.startswith("manifests/")  # batches rotate whole
    _check_log_order(printed, root, logged)
