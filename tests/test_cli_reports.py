"""`axon-audit report` and `alerts` through the console script: the summary's totals,
--top, every format (table, json, csv, html), --output/--force, the alert filters
and thresholds, and a self-contained, escaped HTML report."""

from __future__ import annotations

import io
import re
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import polars as pl
import pytest

from axon_audit import AuditLogger, compliance_report
from axon_audit.compliance.monitor import RULES, SEVERITIES
from axon_audit.read.sources import open_source
from axon_audit.workload import generate_events
from tests.cli_process import env, script

MONTH = "2025-01"
HOSTILE = "<script>alert(1)</script>"
BURST_AT = datetime(2025, 1, 20, 3, 0, tzinfo=timezone.utc)


def run(*args: object, columns: int | None = None) -> subprocess.CompletedProcess:
    more = {} if columns is None else {"COLUMNS": str(columns)}
    return subprocess.run([script(), *map(str, args)], capture_output=True, text=True, timeout=120,
                          env=env(**more))


def ok(*args: object, columns: int | None = None) -> str:
    proc = run(*args, columns=columns)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout


def bad_input(proc: subprocess.CompletedProcess, pattern: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("axon-audit: error: "), proc.stderr
    assert re.search(pattern, lines[0]), lines[0]
    assert proc.stdout == ""


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A month of workload events, a hostile user id as the busiest user, and that user
    deleting 150 entries within five minutes (alerts with the id in their messages)."""
    root = tmp_path_factory.mktemp("reports") / "audit"
    with AuditLogger(max_events=2_000, auto_export_path=root) as audit:
        audit.log_batch(generate_events(3_000, seed=5, start=datetime(2025, 1, 1, tzinfo=timezone.utc), days=28))
        audit.log_batch([{"operation": "forget", "user_id": HOSTILE, "entry_ids": [f"e{i}"],
                          "timestamp": BURST_AT + timedelta(seconds=2 * i), "duration_ms": 3.0}
                         for i in range(150)])
        audit.log_batch([{"operation": "recall", "user_id": HOSTILE, "status": "failure",
                          "error_message": HOSTILE, "timestamp": BURST_AT + timedelta(days=1, seconds=i)}
                         for i in range(900)])
    return root


@pytest.fixture(scope="module")
def expected(folder):
    return compliance_report(open_source(str(folder)), MONTH)


@pytest.fixture(scope="module")
def all_alerts(folder) -> list[dict]:
    return orjson.loads(ok("alerts", folder, "-f", "json"))


def _user_rows(text: str, section: str) -> list[str]:
    """The data lines of one section's table in the terminal output."""
    block = text.split(f"{MONTH}: {section}", 1)[1].split(f"{MONTH}: ", 1)[0]
    return [line for line in block.splitlines() if line.startswith("│")]


def test_report_summary_has_the_totals(folder, expected):
    stats = open_source(str(folder)).get_statistics()
    s = expected.frames["summary"].row(0, named=True)
    assert s["total_events"] == stats["total_events"] == 4_050  # every event is in the month
    out = ok("report", folder, "--month", MONTH)
    summary = out.split(f"{MONTH}: operations")[0]
    assert f"{MONTH}: summary" in summary
    assert re.search(rf"│ total events\s+│ {s['total_events']:,}\s", summary)
    assert re.search(rf"│ users\s+│ {s['users']:,}\s", summary)
    assert re.search(rf"│ failure rate\s+│ {s['failures'] / s['total_events']:.2%}\s", summary)
    top_op, top_n = expected.frames["operations"].sort("count", descending=True).row(0)
    assert re.search(rf"│ top operations\s+│ {top_op} {top_n:,},", summary)
    users = expected.frames["user_activity"].height
    assert f"user_activity {users:,}" in summary and "latency_ms 9" in summary


def test_top_limits_rows_and_counts_the_rest(folder, expected):
    users = expected.frames["user_activity"]
    default = ok("report", folder, "--month", MONTH)
    assert len(_user_rows(default, "user_activity")) == 10
    assert f"… and {users.height - 10:,} more; use --top 0 for all or -f csv" in default
    three = _user_rows(ok("report", folder, "--month", MONTH, "--top", "3"), "user_activity")
    names = [line.split("│")[1].strip() for line in three]
    assert names == users["user_id"].head(3).to_list() and HOSTILE in names  # shown as text
    everything = ok("report", folder, "--month", MONTH, "--top", "0")
    assert len(_user_rows(everything, "user_activity")) == users.height and "more; use --top" not in everything


def test_report_csv_and_json(folder, expected):
    users = expected.frames["user_activity"]
    df = pl.read_csv(io.StringIO(ok("report", folder, "--month", MONTH, "-f", "csv")))
    assert df.columns == users.columns and df.height == users.height
    assert df["total"].sum() == expected.total_events
    failures = pl.read_csv(io.StringIO(ok("report", folder, "--month", MONTH, "-f", "csv",
                                          "--section", "failures_by_operation")))
    assert failures.height == expected.frames["failures_by_operation"].height
    assert failures["failures"].sum() == expected.frames["summary"]["failures"][0]
    doc = orjson.loads(ok("report", folder, "--month", MONTH, "-f", "json", "--top", "1"))
    assert doc["total_events"] == expected.total_events and len(doc["user_activity"]) == users.height
    bad_input(run("report", folder, "--month", MONTH, "--section", "statuses"), r"--section .*-f csv")


def test_output_writes_and_refuses_an_existing_file(folder, tmp_path, expected):
    target = tmp_path / "users.csv"
    proc = run("report", folder, "--month", MONTH, "-f", "csv", "--output", target)
    assert proc.returncode == 0 and proc.stdout == "" and "wrote" in proc.stderr
    assert pl.read_csv(target).height == expected.frames["user_activity"].height
    before = target.read_bytes()
    bad_input(run("report", folder, "--month", MONTH, "-f", "json", "--output", target), "--output: .*already exists")
    assert target.read_bytes() == before
    assert run("report", folder, "--month", MONTH, "-f", "json", "--output", target, "--force").returncode == 0
    assert orjson.loads(target.read_bytes())["total_events"] == expected.total_events
    bad_input(run("alerts", folder, "-f", "csv", "--output", target), "already exists")
    bad_input(run("report", folder, "--month", MONTH, "--output", tmp_path / "t.txt"), "--output needs --format")
    # Never into the export folder: its files are sealed evidence.
    bad_input(run("report", folder, "--month", MONTH, "-f", "json", "--output", folder / "r.json"), "--output")
    assert not (folder / "r.json").exists()


def test_alerts_summary_and_message_column(folder, all_alerts):
    assert {a["rule"] for a in all_alerts} >= {"excessive_deletions", "user_deletion_spike", "failure_burst"}
    out = ok("alerts", folder, "--top", "0")
    assert re.search(rf"│ alerts\s+│ {len(all_alerts):,}\s", out)
    for rule in {a["rule"] for a in all_alerts}:
        assert f"{rule} {sum(a['rule'] == rule for a in all_alerts):,}" in out
    header = next(line for line in out.splitlines() if "severity" in line and "message" in line)
    assert "events" not in header and "count" in header
    deletion = next(a for a in all_alerts if a["rule"] == "excessive_deletions")
    assert deletion["message"][:27] in out  # the message folds at word boundaries


def test_alerts_fit_a_narrow_terminal(folder, all_alerts):
    out = ok("alerts", folder, "--top", "0", columns=80)
    lines = out.splitlines()
    assert lines and max(map(len, lines)) <= 80
    body = lines[next(i for i, line in enumerate(lines) if line.startswith("┡")):]
    rows = [line for line in body if line.startswith("│ ") and line.split("│")[1].strip()]
    assert [line.split("│")[2].strip() for line in rows] == [a["rule"] for a in all_alerts]  # never split


def test_rule_and_severity_filter(folder, all_alerts):
    rules = ["excessive_deletions", "failure_burst"]
    found = orjson.loads(ok("alerts", folder, "--rule", rules[0], "--rule", rules[1], "-f", "json"))
    assert found and all(a["rule"] in rules for a in found)
    assert len(found) == sum(a["rule"] in rules for a in all_alerts)
    high = orjson.loads(ok("alerts", folder, "--severity", "high", "-f", "json"))
    assert high and all(SEVERITIES.index(a["severity"]) >= SEVERITIES.index("high") for a in high)
    assert len(high) == sum(a["severity"] in ("high", "critical") for a in all_alerts)
    table = pl.read_csv(io.StringIO(ok("alerts", folder, "--severity", "high", "-f", "csv")))
    assert table.height == len(high) and set(table["severity"]) <= {"high", "critical"}
    assert "message" in table.columns and "events" not in table.columns


def test_thresholds_change_what_fires(folder):
    quiet = orjson.loads(ok("alerts", folder, "--rule", "excessive_deletions", "-f", "json",
                            "--threshold", "max_deletions=200"))
    assert quiet == []
    fired = orjson.loads(ok("alerts", folder, "--rule", "excessive_deletions", "-f", "json",
                            "--threshold", "max_deletions=100", "--threshold", "deletion_window=10m"))
    assert [a["count"] for a in fired] == [150]
    assert fired[0]["window_end"] == "2025-01-20T03:10:00+00:00"


@pytest.mark.parametrize(("args", "message"), [
    (["--rule", "nope"], r"--rule: unknown 'nope'; expected one of " + ", ".join(RULES)),
    (["--threshold", "max_foo=3"], r"--threshold: unknown name 'max_foo'; expected one of deletion_window, "),
    (["--threshold", "max_deletions"], r"--threshold: expected NAME=VALUE"),
    (["--threshold", "max_deletions=lots"], r"--threshold: max_deletions takes a whole number, got 'lots'"),
    (["--threshold", "failure_window=soon"], r"--threshold: failure_window takes a duration"),
    (["--threshold", "user_spike_factor=-2"], r"--threshold: user_spike_factor must be a number >= 0"),
    (["--severity", "urgent"], r"--severity"),
])
def test_bad_alert_options_are_one_line_exit_2(folder, args, message):
    bad_input(run("alerts", folder, *args), message)


def test_html_report_is_one_self_contained_escaped_file(folder, tmp_path, expected, all_alerts):
    target = tmp_path / "report.html"
    ok("report", folder, "--month", MONTH, "-f", "html", "--output", target)
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    page = target.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert page.count("<svg") == 4 and "<script" not in page.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "http://" not in page and "https://" not in page and "<link" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert f"{expected.total_events:,}" in page
    assert "Security alerts" in page and all_alerts[0]["message"].replace("<", "&lt;").replace(">", "&gt;") in page
    assert page.count("class='sev sev-") == min(len(all_alerts), 50)
    footer = page.split("<footer>", 1)[1]
    assert str(folder) in footer and " UTC" in footer and re.search(r"axon_audit \d+\.\d+", footer)
    users = expected.frames["user_activity"].height
    assert f"… and {users - 50:,} more" in page
    alerts_page = ok("alerts", folder, "-f", "html", "--top", "0")
    assert alerts_page.count("class='sev sev-") == len(all_alerts) and "&lt;script&gt;" in alerts_page


def test_to_html_in_python(expected):
    page = expected.to_html(top=None)
    assert page.count("<tr>") > expected.frames["user_activity"].height
    daily = expected.charts["daily"]
    assert daily["events"].sum() == expected.total_events
    assert daily["failures"].sum() == expected.frames["summary"]["failures"][0]
    hist = expected.charts["latency_histogram"]
    assert hist["events"].sum() == expected.frames["latency_ms"].filter(pl.col("operation") == "ALL")["count"][0]


@pytest.mark.parametrize("top_rate", [0.0016, 0.004, 0.03, 0.06, 0.5, 1.0])
def test_share_axis_ticks_never_read_the_same(top_rate):
    # A 0.16 % failure rate once drew ticks "0.2 %, 0.2 %, 0.1 %, 0.1 %, 0.0 %".
    from axon_audit.display.svg_charts import _nice_max, _tick  # the chart's own axis rule

    top = _nice_max(top_rate)
    ticks = [_tick(top * i / 5, True, top / 5) for i in range(6)]
    assert len(set(ticks)) == 6, ticks
