"""The CLI's contract where a command asked for something that is not there: one line,
exit 1, never a clean-looking "0 events, 100.00% success"; and `axon-audit` alone."""

from __future__ import annotations

import re
import socket
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from axon_audit import AuditLogger, AuditValueError, open_archive
from axon_audit.workload import generate_events
from tests.cli_process import env, script


def run(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([script(), *map(str, args)], capture_output=True, text=True, timeout=120, env=env())


def one_failure_line(proc: subprocess.CompletedProcess, code: int, pattern: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in proc.stderr and "100.00%" not in proc.stdout


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export")
    with AuditLogger(auto_export_path=root) as audit:
        audit.log_batch(generate_events(500, seed=3, start=datetime(2025, 1, 1, tzinfo=timezone.utc), days=10))
    return root


def test_no_arguments_prints_the_help_and_exits_0():
    proc = run()
    assert proc.returncode == 0 and proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("Usage: axon-audit")
    # laid out as help (one command a line), not folded into one error line
    assert any(re.match(r"\s+query\s+Events matching", line) for line in lines)
    assert any(re.match(r"\s+verify\s+", line) for line in lines)


def test_stats_of_an_empty_folder_is_a_note_and_exit_1(tmp_path):
    one_failure_line(run("stats", tmp_path), 1, r"^axon-audit: error: no audit events in '.*'")


def test_stats_of_an_unknown_user_is_a_note_and_exit_1(folder):
    one_failure_line(run("stats", folder, "-u", "nobody"), 1, r"no events for user 'nobody'")
    known = run("stats", folder, "-u", "user_00000", "-f", "json")
    assert known.returncode == 0, known.stderr


def test_report_of_an_empty_month_is_a_note_and_exit_1(folder):
    one_failure_line(run("report", folder, "--month", "2020-01"), 1, r"no audit events in '.*' for 2020-01")
    assert run("report", folder, "--month", "2025-01").returncode == 0


def test_unreachable_object_storage_is_one_short_line(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = run("stats", "s3://nobucket/x", "--endpoint-url", f"http://127.0.0.1:{port}", "-O", "region=us-east-1")
    one_failure_line(proc, 1, rf"^axon-audit: failed: cannot reach object storage at 127\.0\.0\.1:{port}")
    assert len(proc.stderr) < 200


@pytest.mark.parametrize("text", ["", "  \n", "-- a comment only"])
def test_empty_sql_is_refused_in_python_too(folder, text):
    with pytest.raises(AuditValueError, match="query is empty"):
        open_archive(folder).sql(text)
