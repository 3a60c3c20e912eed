"""The `axon-audit` console script, run in a subprocess on real export folders."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import polars as pl
import pytest

from axon_audit import COLUMNS, AuditLogger
from axon_audit.workload import generate_events
from tests.cli_process import env, script

START = datetime(2025, 1, 1, tzinfo=timezone.utc)
N = 3_000
def run(*args: str, check_ok: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([script(), *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd,
                          env=env())
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
    for command in ("query", "sql", "stats", "report", "alerts", "verify", "prove", "verify-proof", "keygen",
                    "export", "tail", "demo"):
        assert command in top
        out = run(command, "--help").stdout
        assert out.startswith(f"Usage: axon-audit {command}")
        if command in ("query", "sql", "stats", "report", "alerts", "verify", "prove", "export", "tail"):  # read PATH
            assert "--endpoint-url URL" in out and "-O, --storage-option KEY=VALUE" in out, out


def test_storage_options_with_a_local_path_are_ignored(folder):
    """Like `storage_options` in the API (and AWS_ENDPOINT_URL): S3 settings do not
    change a local folder's reading, so one script can pass them for any PATH."""
    plain = run("query", folder, "-u", "user_00001", "-f", "json").stdout
    given = run("query", folder, "-u", "user_00001", "-f", "json", "--endpoint-url", "http://127.0.0.1:9",
                "-O", "region=nowhere", "-O", "anonymous=true").stdout
    assert orjson.loads(given)["total_events"] > 0
    assert orjson.loads(given)["events"] == orjson.loads(plain)["events"]


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
    # A date without offset is naive: read as UTC here, whatever the host zone (local by default).
    doc = orjson.loads(run("query", folder, "--since", since, "--until", until, "--naive-time", "utc",
                           "-f", "json").stdout)
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


# One line of `tail`: time, operation, status, user, session, entries (then ms, error).
TAIL_LINE = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z)  (\S+) +(\S+) +(\S+)  (\S+)  entries=(\d+)(?:  .*)?")
DAY = datetime(2025, 6, 1, tzinfo=timezone.utc)


def _batch(start: datetime, n: int, offset: int) -> pl.DataFrame:
    """`n` events one second apart from `start`, users u0..u2 in turn, some failures."""
    return pl.DataFrame({
        "timestamp": [start + timedelta(seconds=i, milliseconds=offset + i) for i in range(n)],
        "operation": [("STORE", "RECALL", "FORGET", "COMPACT")[(offset + i) % 4] for i in range(n)],
        "user_id": [f"u{(offset + i) % 3}" for i in range(n)],
        "session_id": [f"s{offset + i}" for i in range(n)],
        "status": ["FAILURE" if (offset + i) % 5 == 0 else "SUCCESS" for i in range(n)],
        "error_message": ["denied" if (offset + i) % 5 == 0 else None for i in range(n)],
        "entry_ids": [[f"e{j}" for j in range((offset + i) % 3)] for i in range(n)],
    })


def _fields(df: pl.DataFrame) -> list[tuple]:
    """What `tail` must print for these events, oldest first, as TAIL_LINE's groups."""
    return [(f"{t:%Y-%m-%d %H:%M:%S}.{t.microsecond // 1000:03d}Z", op, status, user, session, str(len(entries)))
            for t, op, status, user, session, entries in df.sort("timestamp").select(
                "timestamp", "operation", "status", "user_id", "session_id", "entry_ids").iter_rows()]


@pytest.mark.parametrize("where", ["local", "s3"])
def test_tail_follows_new_rotations(tmp_path, request, monkeypatch, where):
    """`tail` prints the newest matching events, then those of each rotation that lands
    later, exactly once: a local folder and an s3:// lake (endpoint on the command line)."""
    if where == "s3":
        server = request.getfixturevalue("s3_server")
        target = f"s3://{request.getfixturevalue('s3_bucket')}/tail"
        opts = {"endpoint_url": server.endpoint}
        extra = ["--endpoint-url", server.endpoint]
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # the subprocess inherits the environment
        monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    else:
        target, opts, extra = str(tmp_path / "live"), None, []

    def rotate(df: pl.DataFrame) -> None:
        with AuditLogger(auto_export_path=target, storage_options=opts) as audit:
            audit.log_batch(df)

    mine = pl.col("user_id").is_in(["u0", "u1"])
    first = _batch(DAY, 12, 0)
    rotate(first)
    proc = subprocess.Popen([script(), "tail", target, "-n", "3", "--interval", "0.1", "-u", "u0", "-u", "u1",
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    lines: list[str] = []
    errors: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    threading.Thread(target=lambda: errors.extend(proc.stderr), daemon=True).start()

    def wait_for(test) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + 30
        while not test() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)

    expected = _fields(first.filter(mine).sort("timestamp").tail(3))  # -n 3
    try:
        # It says when it has taken stock of the files already there; rotations land after that.
        wait_for(lambda: any(e.startswith(f"axon-audit: following {target}") for e in errors))
        assert any(e.startswith(f"axon-audit: following {target}") for e in errors), (errors, lines)
        # Across midnight (two date partitions, so two new files at once), then one more day.
        for batch in (_batch(DAY + timedelta(hours=23, minutes=59, seconds=57), 6, 100),
                      _batch(DAY + timedelta(days=2), 4, 200)):
            rotate(batch)
            expected += _fields(batch.filter(mine))
            wait_for(lambda expected=expected: len(lines) >= len(expected))
        time.sleep(0.5)  # five more looks: nothing is printed twice
    finally:
        proc.kill()
        proc.wait(timeout=10)
    got = [TAIL_LINE.fullmatch(line.rstrip("\n")) for line in lines]
    assert all(got), lines
    fields = [m.groups() for m in got]
    # In export log order, S3 too: a rotation's parts (uploaded side by side) show up together,
    # when its manifest lands, and print in the log's order.
    assert fields == expected, (lines, errors)
    failures = [line for line in lines if " FAILURE " in line]
    assert failures and all(line.rstrip("\n").endswith("error='denied'") for line in failures)


def test_report(folder, workload):
    doc = orjson.loads(run("report", folder, "--month", "2025-01", "-f", "json").stdout)
    january = workload.filter(pl.col("timestamp").dt.month() == 1)
    assert doc["period"] == "2025-01" and doc["total_events"] == january.height > 0
    assert doc["operations"]["STORE"] == january.filter(pl.col("operation") == "STORE").height
    table = run("report", folder, "--month", "2025-01").stdout
    assert "2025-01: summary" in table and f"{january.height:,}" in table
    # A month with no events is a note and exit 1 (an empty report looked like a clean one).
    empty = run("report", folder, "--month", "2031-05", "-f", "json", check_ok=False)
    assert empty.returncode == 1 and empty.stdout == ""
    assert empty.stderr.strip() == f"axon-audit: error: no audit events in {str(folder)!r} for 2031-05"


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
    (["sql", "{folder}", ""], "SQL: query is empty"),
    (["sql", "{folder}", "   "], "SQL: query is empty"),
    (["query", "{folder}", "--since", "2025-02-01", "--until", "2025-01-01", "--naive-time", "utc"],
     r"--since \(2025-02-01T00:00:00\+00:00\) is after --until"),
    (["export", "{folder}", "--since", "2d", "--until", "3d", "--to", "x.json"], "--since .* is after --until"),
    (["alerts", "{folder}", "--since", "2025-02-01", "--until", "2025-01-01"], "--since .* is after --until"),
    (["export", "{folder}", "--to", "{missing}/x.json"], r"--to: the folder '.*nope' does not exist"),
    (["stats", "{missing}"], "does not exist"),
    (["report", "{folder}", "--month", "2025-13"], "--month: expected YYYY-MM"),
    (["report", "{folder}"], "Missing option '--month'"),
    (["export", "{folder}", "--to", "out.txt"], "--to: expected a file ending in"),
    (["export", "{folder}"], "Missing option '--to'"),
    (["tail", "{missing}"], "does not exist"),
    (["demo", "--events", "0"], "--events"),
    (["frobnicate"], "No such command 'frobnicate'"),
    (["query", "{folder}", "--bogus"], "No such option"),
    (["query", "{folder}", "-O", "endpoint_url"], r"--storage-option: expected KEY=VALUE, got 'endpoint_url'"),
    (["sql", "s3://lake/x", "SELECT 1", "--storage-option", "colour=blue"],
     r"--storage-option: unknown key 'colour'; expected one of .*endpoint_url"),
    (["stats", "s3://lake/x", "-O", "anonymous=maybe"], r"--storage-option: anonymous takes true or false"),
    (["tail", "s3://lake/x", "-O", "region=a", "-O", "aws_region=b"],
     r"--storage-option: aws_region is already set \(by --storage-option region\)"),
    (["export", "s3://lake/x", "--to", "x.json", "--endpoint-url", "http://127.0.0.1:9", "-O", "endpoint_url=x"],
     r"--endpoint-url: endpoint_url is already set"),
    (["alerts", "s3://lake/x", "--endpoint-url", "ftp://127.0.0.1:9"], r"endpoint_url must look like http\(s\)://"),
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
    # 5,000 workload events, the 240 of the planted incidents, and the memory system's own (about 100)
    assert re.search(r"logged 5,3\d\d events", text)
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
