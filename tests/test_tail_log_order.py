"""`axon-audit tail` on a folder follows the export log (`axon_audit.read.log_order`): while a
logger rotates many times, every new event prints once, in the log's order, even when the
files' time ranges interleave (a listing or a sort by time would print them in another order)."""

from __future__ import annotations

import random
import re
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from axon_audit import AuditLogger
from axon_audit.io.location import resolve
from axon_audit.read.log_order import LogFollower, log_parts, read_log_part
from tests.cli_process import env, script

SESSION = re.compile(r".*  (s\d+)  entries=\d+.*")
START = datetime(2025, 6, 1, tzinfo=timezone.utc)


def _log_order(folder: Path) -> list[str]:
    root = resolve(folder)
    return [s for p in log_parts(root) for s in read_log_part(root, p)[0]["session_id"].to_list()]


def _rows(first: int, n: int, rng: random.Random) -> list[dict]:
    # Times out of order within and across rotations: the log's order is not the time order.
    return [{"operation": "store", "user_id": f"u{i % 3}", "session_id": f"s{i}",
             "timestamp": START + timedelta(seconds=rng.randrange(0, 3 * 86_400))} for i in range(first, first + n)]


@pytest.mark.slow
def test_tail_prints_each_new_event_once_in_log_order_while_a_logger_writes(tmp_path: Path) -> None:
    folder = tmp_path / "live"
    rng = random.Random(7)
    audit = AuditLogger(max_events=20, auto_export_path=folder)
    audit.log_batch(_rows(0, 20, rng))
    audit.close()  # a first rotation is there before tail starts
    before = len(_log_order(folder))
    proc = subprocess.Popen([script(), "tail", str(folder), "-n", "0", "--interval", "0.1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    lines: list[str] = []
    errors: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()  # type: ignore[arg-type]
    threading.Thread(target=lambda: errors.extend(proc.stderr), daemon=True).start()  # type: ignore[arg-type]
    try:
        deadline = time.monotonic() + 30
        while not any(e.startswith("axon-audit: following") for e in errors) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(e.startswith("axon-audit: following") for e in errors), errors
        for k in range(12):  # 12 x 25 events with max_events=20: many rotations, several per poll at times
            audit.log_batch(_rows(20 + 25 * k, 25, rng))
            time.sleep(rng.choice([0.0, 0.02, 0.15]))
        audit.close()
        expected = _log_order(folder)[before:]
        assert len(expected) == 300
        while len(lines) < len(expected) and time.monotonic() < deadline + 30:
            time.sleep(0.05)
        time.sleep(0.4)  # more looks: nothing is printed twice
    finally:
        proc.kill()
        proc.wait(timeout=10)
    printed = [m.group(1) for line in lines if (m := SESSION.fullmatch(line.rstrip("\n")))]
    assert len(printed) == len(lines), lines[:5]
    assert printed == expected  # each once, in the log's order


def test_the_follower_reads_parts_in_log_order_not_by_name(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    with AuditLogger(max_events=5, auto_export_path=folder) as audit:
        audit.log("store", session_id="s0")
    follower = LogFollower(resolve(folder))
    rng = random.Random(1)
    with AuditLogger(max_events=5, auto_export_path=folder) as audit:
        audit.log_batch(_rows(1, 23, rng))
    got = [s for df in follower.fresh() for s in df["session_id"].to_list()]
    assert got == _log_order(folder)[1:] and sorted(got) == sorted(f"s{i}" for i in range(1, 24))
    assert follower.fresh() == []
    parts = log_parts(resolve(folder))
    assert [p.file for p in parts] != sorted(p.file for p in parts)  # by name (day folders first) would differ
