"""The demo's plan and the demo itself: planted incidents trip their rules, the
synthetic office traffic alone trips none, and the demo writes outside the cwd."""

from __future__ import annotations

import io
import re
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import pytest
from rich.console import Console

from axon_audit import AuditLogger, SecurityMonitor
from axon_audit.app.demo import default_out, run_demo
from axon_audit.app.demo_plan import check_incidents, office_traffic, plant_incidents, quiet_rates
from axon_audit.compliance.monitor import Alerts
from tests.cli_process import env, script

START = datetime(2026, 3, 2, tzinfo=timezone.utc)  # a Monday


def alerts_of(df: pl.DataFrame) -> Alerts:
    audit = AuditLogger(max_events=10, enable_rotation=False)  # everything in memory: no export needed
    audit.log_batch(df)
    return SecurityMonitor().evaluate(audit)


@pytest.fixture(scope="module")
def traffic() -> pl.DataFrame:
    return office_traffic(200_000, seed=4, start=START)


def test_normal_office_traffic_trips_no_rule(traffic: pl.DataFrame) -> None:
    alerts = alerts_of(traffic)
    assert [a.message for a in alerts] == []


def test_each_planted_incident_trips_its_rule_and_nothing_else_fires(traffic: pl.DataFrame) -> None:
    merged, incidents = plant_incidents(traffic, seed=4, start=START)
    assert merged.height == traffic.height + sum(i.events for i in incidents)
    assert merged["timestamp"].is_sorted()
    assert {i.rule for i in incidents} == {"excessive_deletions", "failure_burst", "export_activity",
                                           "recall_sweep", "unusual_hours"}
    # The traffic's events are all still there, unchanged.
    assert merged.join(traffic, on=[*traffic.columns[:4], "status", "duration_ms"], how="anti").height == \
        sum(i.events for i in incidents)
    alerts = alerts_of(merged)
    found, others = check_incidents(incidents, list(alerts))
    assert found == {i.name: True for i in incidents}
    assert others == []
    # Each incident fires its own rule in its own window, for its user or for all users.
    for i in incidents:
        mine = [a for a in alerts if a.rule == i.rule and i.explains(a)]
        assert mine and all(a.user_id in (None, i.user_id) for a in mine), i.name
        assert all(i.start - (a.window_end - a.window_start) <= a.window_start <= i.end for a in mine)


def test_a_missed_incident_is_reported_missed(traffic: pl.DataFrame) -> None:
    merged, incidents = plant_incidents(traffic, seed=4, start=START)
    sweep = next(i for i in incidents if i.rule == "recall_sweep")
    without = merged.filter(~((pl.col("user_id") == sweep.user_id) & (pl.col("timestamp") >= sweep.start)
                              & (pl.col("timestamp") < sweep.end)))
    found, _ = check_incidents(incidents, list(alerts_of(without)))
    assert found[sweep.name] is False and sum(found.values()) == len(incidents) - 1


def test_rates_are_tuned_down_only_when_the_load_needs_it() -> None:
    small_mix, small_fail = quiet_rates(5_000, 0, START, 30)
    big_mix, big_fail = quiet_rates(1_000_000, 0, START, 30)
    assert big_mix["FORGET"] < small_mix["FORGET"] <= 0.05 and big_fail < small_fail <= 0.03
    assert sum(big_mix.values()) == pytest.approx(1.0) and big_mix["EXPORT"] * 1_000_000 < 30


@pytest.mark.slow
def test_a_million_events_of_normal_traffic_trip_no_rule() -> None:
    assert [a.message for a in alerts_of(office_traffic(1_000_000, seed=0, start=START))] == []


def test_run_demo_reports_every_incident_found(tmp_path: Path) -> None:
    text = io.StringIO()
    result = run_demo(events=20_000, out=tmp_path / "d", seed=2, tasks=3, console=Console(file=text, width=200))
    printed = text.getvalue()
    assert len(result.incidents) == 5 and result.found == {i.name: True for i in result.incidents}
    for i in result.incidents:
        assert i.name in printed
    assert printed.count("found") >= 5 and "missed" not in printed
    assert "Alerts from the normal traffic: none." in printed
    assert "synthetic office-hours" in printed
    assert result.folder_bytes == sum(p.stat().st_size for p in (tmp_path / "d").rglob("*") if p.is_file())
    assert f"{result.folder_bytes / 1e6:,.1f} MB" in printed and str(tmp_path / "d") in printed
    # Every event is exported once, with the simulated month's timestamps.
    parts = pl.scan_parquet(tmp_path / "d" / "parquet" / "**" / "*.parquet", hive_partitioning=True)
    got = parts.select(pl.len(), pl.col("event_id").n_unique(), pl.col("timestamp").min().alias("first"),
                       pl.col("timestamp").max().alias("last")).collect().row(0)
    assert got[0] == got[1] == result.total_events
    assert (got[3] - got[2]).days >= 25


def test_the_console_script_writes_to_the_temp_dir_not_the_cwd(tmp_path: Path) -> None:
    cwd, temp = tmp_path / "cwd", tmp_path / "temp"
    cwd.mkdir()
    temp.mkdir()
    proc = subprocess.run([script(), "demo", "--events", "20000", "--tasks", "2"], cwd=cwd, capture_output=True,
                          text=True, timeout=180, env=env(TMPDIR=str(temp)))
    assert proc.returncode == 0, proc.stderr
    assert list(cwd.iterdir()) == []
    folder = temp / "axon_audit_demo"
    assert (folder / ".axon_audit_demo").exists() and list((folder / "parquet").rglob("*.parquet"))
    assert f"Output: {folder}/" in proc.stdout
    rows = [line for line in proc.stdout.splitlines() if re.search(r"│\s+found\s+│", line)]
    assert len(rows) == 5 and "missed" not in proc.stdout, proc.stdout
    assert "Planted incidents found: 5 of 5." in proc.stdout
    assert "\r" not in proc.stdout and "Traceback" not in proc.stderr  # no progress bar in a pipe
    # A rerun replaces its own folder (the marker), as with --out.
    again = subprocess.run([script(), "demo", "--events", "2000", "--tasks", "1"], cwd=cwd, capture_output=True,
                           text=True, timeout=180, env=env(TMPDIR=str(temp)))
    assert again.returncode == 0, again.stderr
    assert list(cwd.iterdir()) == [] and list(temp.iterdir()) == [folder]


def test_default_out_is_under_the_temp_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import tempfile  # tempfile caches its answer: reset it so TMPDIR is read again

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    assert default_out() == tmp_path / "axon_audit_demo"


def test_progress_bars_go_to_a_terminal_stderr_only(tmp_path: Path) -> None:
    import os  # only here: the pty plumbing of this one test
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen([script(), "demo", "--events", "20000", "--tasks", "2", "--out", str(tmp_path / "d")],
                            stdout=subprocess.PIPE, stderr=slave, env=env(COLUMNS="120"), text=True)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    out, _ = proc.communicate(timeout=180)
    os.close(master)
    assert proc.returncode == 0
    bars = seen.decode(errors="replace")
    for label in ("logging", "writing the last exports", "queries", "compliance report", "security alerts",
                  "integrity check"):
        assert label in bars, label
    assert "━" in bars and "\x1b" not in out and "Planted incidents found: 5 of 5." in out
