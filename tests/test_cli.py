"""The `axon-audit` console script, run in a subprocess on real export folders."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import orjson
import polars as pl
import pytest

from axon_audit import COLUMNS, AuditLogger
from axon_audit.workload import generate_events

START = datetime(2025, 1, 1, tzinfo=timezone.utc)
N = 3_000


def _script() -> str:
    found = Path(sys.executable).parent / "axon-audit"
    return str(found) if found.exists() else shutil.which("axon-audit") or "axon-audit"


def run(*args: str, check_ok: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([_script(), *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd)
    if check_ok:
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == "" or "Traceback" not in proc.stderr
    return proc


@pytest.fixture(scope="module")
def workload() -> pl.DataFrame:
    return generate_events(N, seed=7, start=START, days=30)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, workload) -> Path:
    """An export folder written by a real logger: three rotations over 30 days of events."""
    root = tmp_path_factory.mktemp("export")
    with AuditLogger(max_events=1_000, auto_export_path=root) as audit:
        audit.log_batch(workload)
    return root


def test_help_for_every_command():
    top = run("--help").stdout
    for command in ("query", "sql", "stats", "report", "alerts", "verify", "export", "tail", "demo"):
        assert command in top
        out = run(command, "--help").stdout
        assert out.startswith(f"Usage: axon-audit {command}")


def test_query_json_matches_the_filters(folder, workload):
    proc = run("query", folder, "--user", "user_00000", "-o", "store", "-o", "forget", "-f", "json")
    doc = orjson.loads(proc.stdout)
    expected = workload.filter((pl.col("user_id") == "user_00000") & pl.col("operation").is_in(["STORE", "FORGET"]))
    assert doc["total_events"] == expected.height > 0
    events = doc["events"]
    assert all(list(e)[:len(COLUMNS)] == list(COLUMNS) for e in events)
    assert {e["operation"] for e in events} == {"STORE", "FORGET"}
    stamps = [e["timestamp"] for e in events]
    assert stamps == sorted(stamps, reverse=True)  # newest first


def test_query_time_window_and_limit(folder, workload):
    since, until = "2025-01-10", "2025-01-12T12:00:00Z"
    lo, hi = datetime(2025, 1, 10, tzinfo=timezone.utc), datetime(2025, 1, 12, 12, tzinfo=timezone.utc)
    expected = workload.filter(pl.col("timestamp").is_between(lo, hi)).height
    doc = orjson.loads(run("query", folder, "--since", since, "--until", until, "-f", "json").stdout)
    assert doc["total_events"] == expected > 0
    # Relative times: these events are all long ago.
    assert orjson.loads(run("query", folder, "--since", "1h", "-f", "json").stdout)["total_events"] == 0
    assert orjson.loads(run("query", folder, "--since", "1000w", "-f", "json").stdout)["total_events"] == N
    assert orjson.loads(run("query", folder, "--limit", "7", "-f", "json").stdout)["total_events"] == 7


def test_query_metadata_error_and_duration_filters(folder, workload):
    meta = workload["metadata"].str.json_decode()
    expected = workload.filter(
        (meta.struct.field("source") == "api") & pl.col("error_message").str.contains("timeout")
        & (pl.col("duration_ms") >= 10.0) & (pl.col("duration_ms") <= 500.0)
    )
    doc = orjson.loads(run("query", folder, "--meta", "source=api", "--error-contains", "timeout",
                           "--min-ms", "10", "--max-ms", "500", "-f", "json").stdout)
    assert sorted(e["event_id"] for e in doc["events"]) == sorted(
        e["event_id"] for e in orjson.loads(run("query", folder, "-f", "json").stdout)["events"]
        if e["metadata"]["source"] == "api" and "timeout" in (e["error_message"] or "")
        and 10.0 <= e["duration_ms"] <= 500.0)
    assert doc["total_events"] == expected.height > 0
    one = doc["events"][0]["event_id"]
    assert [e["event_id"] for e in orjson.loads(run("query", folder, "--event-id", one, "-f", "json").stdout)
            ["events"]] == [one]


def test_query_table_fits_and_says_how_many(folder, workload):
    failures = workload.filter(pl.col("status") == "FAILURE").height
    out = run("query", folder, "-s", "failure").stdout
    assert f"50 of {failures:,} matching events (use --limit)" in out
    assert max(len(line) for line in out.splitlines()) <= 120
    assert sum("FAILURE" in line for line in out.splitlines()) == 50


def test_query_csv_and_parquet_round_trip(folder, workload, tmp_path):
    csv = pl.read_csv(io.StringIO(run("query", folder, "--entry", "entry_0000001", "-f", "csv").stdout))
    expected = workload.filter(pl.col("entry_ids").list.contains("entry_0000001"))
    assert csv.height == expected.height > 0
    assert csv.columns == list(COLUMNS)
    assert all("entry_0000001" in orjson.loads(ids) for ids in csv["entry_ids"])
    target = tmp_path / "q.parquet"
    run("query", folder, "--entry", "entry_0000001", "-f", "parquet", "--output", target)
    back = pl.read_parquet(target)
    assert sorted(back["event_id"].to_list()) == sorted(csv["event_id"].to_list())


def test_sql(folder, workload):
    proc = run("sql", folder, "SELECT operation::VARCHAR AS op, count(*) AS n FROM events GROUP BY 1 ORDER BY 1",
               "-f", "json")
    got = {r["op"]: r["n"] for r in orjson.loads(proc.stdout)}
    expected = dict(workload.group_by("operation").len().iter_rows())
    assert got == expected
    table = run("sql", folder, "SELECT count(*) AS n FROM events").stdout
    assert f"{N:,}" in table and "1 rows" in table


def test_stats(folder, workload):
    stats = orjson.loads(run("stats", folder, "-f", "json").stdout)
    assert stats["total_events"] == N
    assert stats["by_operation"] == {op: workload.filter(pl.col("operation") == op).height
                                     for op in stats["by_operation"]}
    user = orjson.loads(run("stats", folder, "--user", "user_00000", "-f", "json").stdout)
    assert user["total_operations"] == workload.filter(pl.col("user_id") == "user_00000").height
    table = run("stats", folder).stdout
    assert "success_rate" in table and "by_operation RECALL" in table


@pytest.mark.parametrize("suffix", [".json", ".csv", ".parquet"])
def test_export(folder, workload, tmp_path, suffix):
    target = tmp_path / f"user_00001_audit{suffix}"
    proc = run("export", folder, "--user", "user_00001", "--to", target)
    expected = workload.filter(pl.col("user_id") == "user_00001")
    assert f"wrote {expected.height:,} events" in proc.stderr
    if suffix == ".json":
        doc = orjson.loads(target.read_bytes())
        assert doc["total_events"] == expected.height
        stamps = [e["timestamp"] for e in doc["events"]]
        assert stamps == sorted(stamps)  # oldest first, like export_to_file
    else:
        back = pl.read_csv(target) if suffix == ".csv" else pl.read_parquet(target)
        assert back.height == expected.height and set(back["user_id"].cast(pl.String)) == {"user_00001"}


def test_tail_no_follow(folder, workload):
    lines = run("tail", folder, "-n", "5", "--no-follow").stdout.splitlines()
    assert len(lines) == 5
    newest = workload.sort("timestamp")["timestamp"][-1].strftime("%Y-%m-%d %H:%M:%S")
    assert lines[-1].startswith(newest)


def test_tail_follows_new_files(folder, tmp_path):
    live = tmp_path / "live"
    shutil.copytree(folder, live)
    proc = subprocess.Popen([_script(), "tail", str(live), "-n", "0", "--interval", "0.1", "-u", "tail_user"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        # It says when it has taken stock of the files already there.
        assert proc.stderr.readline().startswith(f"axon-audit: following {live}")
        with AuditLogger(auto_export_path=live) as audit:
            audit.log("store", user_id="tail_user", entry_ids=["e1"])
            audit.log("recall", user_id="someone_else")
            audit.log("forget", user_id="tail_user", status="failure", error_message="denied")
        deadline = time.monotonic() + 30
        while len(lines) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert len(lines) == 2, lines
    assert "STORE" in lines[0] and "tail_user" in lines[0]
    assert "FORGET" in lines[1] and "error='denied'" in lines[1]


def test_report(folder, workload):
    doc = orjson.loads(run("report", folder, "--month", "2025-01", "-f", "json").stdout)
    january = workload.filter(pl.col("timestamp").dt.month() == 1)
    assert doc["period"] == "2025-01" and doc["total_events"] == january.height > 0
    assert doc["operations"]["STORE"] == january.filter(pl.col("operation") == "STORE").height
    table = run("report", folder, "--month", "2025-01").stdout
    assert "2025-01: summary" in table and f"{january.height:,}" in table
    empty = orjson.loads(run("report", folder, "--month", "2031-05", "-f", "json").stdout)
    assert empty["total_events"] == 0


def test_alerts(folder, tmp_path):
    # Quiet history, then one user deleting 150 entries within a minute.
    burst = tmp_path / "burst"
    shutil.copytree(folder, burst)
    with AuditLogger(auto_export_path=burst) as audit:
        for i in range(150):
            audit.log("forget", user_id="mallory", entry_ids=[f"entry_{i}"])
    found = orjson.loads(run("alerts", burst, "--since", "1h", "-f", "json").stdout)
    deletions = [a for a in found if a["rule"] == "excessive_deletions"]
    assert len(deletions) == 1 and deletions[0]["count"] == 150
    assert orjson.loads(run("alerts", folder, "--since", "1h", "-f", "json").stdout) == []
    assert "excessive_deletions" in run("alerts", burst, "--since", "1h").stdout


def test_verify_intact_then_tampered(folder, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    proc = run("verify", copy)
    assert proc.stdout.startswith("intact: ")
    victim = sorted(copy.glob("audit_*.json"))[0]
    victim.write_bytes(victim.read_bytes().replace(b'"status":"FAILURE"', b'"status":"SUCCESS"', 1))
    proc = run("verify", copy, check_ok=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stdout.startswith("PROBLEM ") and victim.name in proc.stdout
    assert proc.stdout.strip().splitlines()[-1].startswith("NOT INTACT")


BAD_INPUT = [
    (["query", "{missing}"], "does not exist"),
    (["query", "{file}"], "is not a folder|not a readable Parquet file"),
    (["query", "{folder}", "-o", "teleport"], "'teleport' is not one of"),
    (["query", "{folder}", "-s", "maybe"], "'maybe' is not one of"),
    (["query", "{folder}", "--since", "yesterday"], "expected a relative time"),
    (["query", "{folder}", "--until", "2025-02-30"], "expected a relative time"),
    (["query", "{folder}", "--limit", "-1"], "--limit"),
    (["query", "{folder}", "--meta", "source"], "--meta: expected KEY=VALUE"),
    (["query", "{folder}", "--meta", "a b=1"], "metadata keys must be identifiers"),
    (["query", "{folder}", "--min-ms", "fast"], "--min-ms"),
    (["query", "{folder}", "-f", "xml"], "'xml' is not one of"),
    (["query", "{folder}", "-f", "parquet"], "--format parquet needs --output"),
    (["query", "{folder}", "--output", "x.csv"], "--output needs --format"),
    (["query"], "Missing argument 'PATH'"),
    (["sql", "{folder}", "SELEC 1"], "SQL: Parser Error"),
    (["sql", "{folder}", "SELECT * FROM nope"], "SQL: Catalog Error"),
    (["sql", "{missing}", "SELECT 1"], "does not exist"),
    (["stats", "{missing}"], "does not exist"),
    (["report", "{folder}", "--month", "2025-13"], "--month: expected YYYY-MM"),
    (["report", "{folder}"], "Missing option '--month'"),
    (["export", "{folder}", "--to", "out.txt"], "--to: expected a file ending in"),
    (["export", "{folder}"], "Missing option '--to'"),
    (["tail", "{missing}"], "does not exist"),
    (["demo", "--events", "0"], "--events"),
    (["frobnicate"], "No such command 'frobnicate'"),
    (["query", "{folder}", "--bogus"], "No such option"),
]


@pytest.mark.parametrize("args, message", BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_and_exit_2(folder, tmp_path, args, message):
    (tmp_path / "a_file").write_text("x")
    subst = {"folder": str(folder), "missing": str(tmp_path / "nope"), "file": str(tmp_path / "a_file")}
    proc = run(*(a.format(**subst) for a in args), check_ok=False, cwd=tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("axon-audit: error: ") and re.search(message, lines[0]), proc.stderr


def test_a_foreign_parquet_file_is_named_not_a_traceback(tmp_path):
    (tmp_path / "parquet").mkdir()
    pl.DataFrame({"x": [1]}).write_parquet(tmp_path / "parquet" / "other.parquet")
    proc = run("query", tmp_path, check_ok=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "other.parquet" in proc.stderr and re.search("not audit data|not an axon_audit", proc.stderr)


@pytest.mark.slow
def test_demo_small_then_the_printed_duckdb_command(tmp_path):
    out = tmp_path / "demo"
    proc = run("demo", "--events", "5000", "--out", out, "--seed", "3", "--tasks", "4")
    text = proc.stdout
    assert "intact" in text and "PROBLEMS" not in text
    for heading in ("Export folder", "The seed's queries", "Statistics", "By operation", "Timings",
                    "Plain DuckDB over the exported Parquet"):
        assert heading in text
    assert "logged 5,1" in text  # 5,000 workload events plus the memory system's own
    for heading in ("Compliance report", "Most active users this month", "Security alerts", "Integrity check"):
        assert heading in text
    assert list(out.glob("audit_*.json")) and list((out / "parquet").rglob("*.parquet"))
    command = text.strip().splitlines()[-1]
    assert command.endswith('.show()"') and "read_parquet(" in command
    shown = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "RECALL" in shown.stdout and "STORE" in shown.stdout
    # Every event of the run is in the export, once.
    total = subprocess.run(["bash", "-c", command.replace("GROUP BY operation ORDER BY events DESC", "")
                            .replace("SELECT operation, count(*) AS events,", "SELECT count(*) AS events,")],
                           capture_output=True, text=True, timeout=120)
    logged = int(text.split("logged ", 1)[1].split(" events", 1)[0].replace(",", ""))
    assert f"{logged}" in total.stdout.replace(",", "")
    # A rerun replaces its own earlier output; a foreign folder is refused.
    run("demo", "--events", "1000", "--out", out)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("precious")
    proc = run("demo", "--events", "1000", "--out", foreign, check_ok=False)
    assert proc.returncode == 2 and "not empty" in proc.stderr
    assert (foreign / "keep.txt").read_text() == "precious"


@pytest.mark.slow
def test_make_demo_target(tmp_path):
    root = Path(__file__).resolve().parents[1]
    if shutil.which("make") is None or not (root / ".venv" / "bin" / "axon-audit").exists():
        pytest.skip("needs make and the project's .venv")
    proc = subprocess.run(["make", "-s", "demo", f"DEMO_ARGS=--events 2000 --out {tmp_path / 'd'}"],
                          cwd=root, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "MAKEFLAGS": ""})
    assert proc.returncode == 0, proc.stderr
    assert "Plain DuckDB over the exported Parquet" in proc.stdout
