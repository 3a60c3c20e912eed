"""`axon-audit serve`'s JSON API over HTTP: a real server on a free port over a
generated export folder, asked through urllib; and the console script itself."""

from __future__ import annotations

import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import orjson
import polars as pl
import pytest

from axon_audit import AuditLogger
from axon_audit.app.cli import main
from axon_audit.dashboard.server import COOKIE
from axon_audit.read.sources import newest, open_source
from tests.cli_process import env, script
from tests.dashboard_served import HOSTILE, TOKEN, Served, build_folder, listing


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return build_folder(tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="module")
def served(folder, tmp_path_factory) -> Iterator[Served]:
    s = Served(folder, TOKEN, tmp_path_factory.mktemp("access") / "log")
    yield s
    s.stop()


def test_summary_totals_equal_get_statistics(served, folder):
    stats = open_source(folder).get_statistics()
    got = served.get("/api/summary")
    for key in ("total_events", "unique_users", "unique_sessions", "failure_count", "by_operation", "by_status"):
        assert got[key] == stats[key], key
    assert got["success_rate"] == pytest.approx(stats["success_rate"])
    assert datetime.fromisoformat(got["first_event"]) == stats["first_event"]
    assert datetime.fromisoformat(got["last_event"]) == stats["last_event"]
    assert got["time_span_seconds"] == pytest.approx((stats["last_event"] - stats["first_event"]).total_seconds())
    assert got["total_events"] == 803


def test_events_of_a_user_are_exactly_their_newest(served, folder):
    source = open_source(folder)
    user = "user_00002"
    want = newest(source, user_id=user, limit=7)
    got = served.get(f"/api/events?user_id={user}&limit=7")
    assert [e["event_id"] for e in got["events"]] == want["event_id"].to_list()
    assert {e["user_id"] for e in got["events"]} == {user}
    assert got["total"] == source.scan(user_id=user).select(pl.len()).collect().item() > 7
    times = [e["timestamp"] for e in got["events"]]
    assert times == sorted(times, reverse=True)
    failures = served.get("/api/events?status=failure&operation=store&limit=10000")
    assert failures["total"] == len(failures["events"]) > 0
    assert {(e["status"], e["operation"]) for e in failures["events"]} == {("FAILURE", "STORE")}
    window = served.get("/api/events?since=2025-03-02&until=2025-03-03T00:00:00Z&limit=10000")
    assert window["total"] == len(window["events"]) > 0
    assert all("2025-03-02" <= e["timestamp"] < "2025-03-03" for e in window["events"])


@pytest.mark.parametrize(("query", "named"), [
    ("/api/events?limit=abc", "limit"),
    ("/api/events?limit=0", "limit"),
    ("/api/events?operation=FLY", "operation"),
    ("/api/events?status=maybe", "status"),
    ("/api/events?since=yesterday", "since"),
    ("/api/events?since=2025-03-05&until=2025-03-01", "since"),
    ("/api/events?user=u1", "'user'"),
    ("/api/events?limit=1&limit=2", "limit"),
    ("/api/timeline?bucket=week", "bucket"),
    ("/api/users?top=-1", "top"),
    ("/api/summary?x=1", "'x'"),
])
def test_bad_parameters_are_400_naming_the_parameter(served, query, named):
    status, body, headers = served.request(query)
    assert status == 400, body
    assert named in body["error"], body
    assert headers["Content-Type"] == "application/json"


def test_token_bearer_cookie_and_401(served):
    assert served.request("/api/summary", token=None)[0] == 401
    assert served.request("/api/summary", token="wrong-token-000")[0] == 401
    assert served.request("/", token=None)[0] == 401
    assert served.request("/app.js", token=None)[0] == 401
    # ?token=T once: a 303 back to / with an HttpOnly, SameSite=Strict cookie that then suffices
    opener = urllib.request.build_opener(type("NoRedirect", (urllib.request.HTTPRedirectHandler,),
                                              {"redirect_request": lambda *a, **k: None}))
    try:
        opener.open(f"{served.base}/?token={TOKEN}", timeout=30)
        raise AssertionError("expected a redirect")
    except urllib.error.HTTPError as exc:
        assert exc.code == 303 and exc.headers["Location"] == "/"
        cookie = exc.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}={TOKEN};") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    status, body, _ = served.request("/api/summary", token=None, headers={"Cookie": f"{COOKIE}={TOKEN}"})
    assert status == 200 and body["total_events"] == 803
    assert served.request(f"/api/summary?token={TOKEN}", token=None)[0] == 200


def test_only_reads_are_answered(served):
    for method in ("POST", "PUT", "DELETE", "PATCH", "PROPFIND"):
        status, body, headers = served.request("/api/summary", method=method)
        assert status == 405, method
        assert headers["Allow"] == "GET, HEAD" and "read-only" in body["error"]
    status, body, headers = served.request("/api/summary", method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0


def test_security_headers_and_static_page(served):
    status, body, headers = served.request("/")
    assert status == 200 and b'<script src="/app.js"' in body
    assert headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert headers["X-Content-Type-Options"] == "nosniff"
    page = b"".join(served.request(p)[1] for p in ("/", "/app.js", "/style.css"))
    assert b"http://" not in page.replace(b"http://www.w3.org/2000/svg", b"") and b"https://" not in page
    assert b"innerHTML" not in page and b"insertAdjacentHTML" not in page


def test_a_foreign_host_header_is_refused(served):
    """DNS rebinding: a page on evil.example resolved to 127.0.0.1 sends its own name as Host."""
    port = served.base.rsplit(":", 1)[1]
    status, body, _ = served.request("/api/summary", headers={"Host": f"evil.example:{port}"})
    assert status == 403 and "Host header" in body["error"]
    assert served.request("/api/summary", headers={"Host": f"localhost:{port}"})[0] == 200


def test_unknown_paths_and_users_are_404(served):
    assert served.request("/api/nothing")[0] == 404
    assert served.request("/etc/passwd")[0] == 404
    status, body, _ = served.request("/api/user/nobody")
    assert status == 404 and "nobody" in body["error"]


def test_user_page_of_a_hostile_id(served, folder):
    source = open_source(folder)
    path = "/api/user/" + urllib.request.quote(HOSTILE, safe="")
    got = served.get(path)
    want = source.get_user_statistics(HOSTILE)
    assert got["user_id"] == HOSTILE and got["statistics"]["total_operations"] == want["total_operations"] == 3
    assert got["statistics"]["failure_count"] == want["failure_count"] == 1
    assert got["operations"] == {"STORE": 3}
    assert [s["session_id"] for s in got["sessions"]] == [f"s-{HOSTILE}"]
    assert [e["event_id"] for e in got["events"]] == newest(source, user_id=HOSTILE)["event_id"].to_list()


def test_aggregations_add_up(served, folder):
    stats = open_source(folder).get_statistics()
    for bucket in ("day", "hour"):
        tl = served.get(f"/api/timeline?bucket={bucket}")
        assert sum(tl["total"]) == stats["total_events"]
        assert sum(tl["failures"]) == stats["failure_count"]
        assert {op: sum(v) for op, v in tl["by_operation"].items()} == {
            op: n for op, n in stats["by_operation"].items() if n}
    lat = served.get("/api/latency")
    durations = open_source(folder).scan().select(pl.col("duration_ms").drop_nulls()).collect()
    assert sum(lat["histogram"]["counts"]) == durations.height
    assert sum(lat["daily"]["events"]) == durations.height
    assert lat["overall"]["max"] == stats["max_duration_ms"]
    top = served.get("/api/users?top=3")
    counts = open_source(folder).scan().group_by("user_id").len().sort(["len", "user_id"], descending=[True, False])
    assert [u["user_id"] for u in top["users"]] == counts.collect()["user_id"].cast(pl.String).head(3).to_list()
    assert top["unique_users"] == stats["unique_users"]
    assert served.get("/api/alerts")["count"] >= 0


def test_integrity_is_checked_once_in_the_background(served):
    deadline = time.monotonic() + 30
    while (got := served.get("/api/integrity"))["state"] == "checking" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert got["state"] == "done" and got["ok"] is True and got["problems"] == []
    assert got["events_checked"] == 803


def test_access_log_records_each_api_request_and_the_folder_is_untouched(folder, tmp_path):
    before = listing(folder)
    access = tmp_path / "access"
    s = Served(folder, None, access)
    try:
        s.get("/api/summary")
        s.get("/api/events?user_id=user_00001&limit=3")
        assert s.request("/api/events?limit=abc")[0] == 400
        s.get("/style.css")  # the page's own files are not reads of the evidence
    finally:
        s.stop()
    log = open_source(access).scan().sort("timestamp").collect()
    assert log.height == 3
    assert set(log["operation"].cast(pl.String)) == {"RECALL"} and set(log["user_id"].cast(pl.String)) == {"carol"}
    assert log["session_id"].n_unique() == 1 and log["session_id"][0] == s.dashboard.session_id
    meta = [orjson.loads(m) for m in log["metadata"]]
    assert [m["endpoint"] for m in meta] == ["/api/summary", "/api/events", "/api/events"]
    assert meta[1]["params"] == {"user_id": "user_00001", "limit": "3"} and meta[1]["rows"] == 3
    assert meta[1]["client"] == "127.0.0.1"
    assert log["status"].cast(pl.String).to_list() == ["SUCCESS", "SUCCESS", "FAILURE"]
    assert "limit" in log["error_message"][2]
    assert log["duration_ms"].min() >= 0
    assert listing(folder) == before  # sealed evidence: nothing written under PATH


def test_an_empty_folder_is_no_clean_result(tmp_path):
    s = Served(tmp_path, None, None)
    try:
        got = s.get("/api/summary")
        assert got["total_events"] == 0 and got["success_rate"] is None
        assert s.get("/api/events")["events"] == [] and s.get("/api/timeline")["start"] == []
        assert sum(s.get("/api/latency")["histogram"]["counts"]) == 0
    finally:
        s.stop()


def test_summary_is_cached_until_the_folder_changes(tmp_path):
    folder = build_folder(tmp_path / "export", n=100)
    s = Served(folder, None, None)
    try:
        first = s.get("/api/summary")
        assert s.get("/api/summary") is not None and first["total_events"] == 103
        assert s.dashboard.cached(("summary",), lambda: {"recomputed": True}) != {"recomputed": True}
        with AuditLogger(auto_export_path=folder) as audit:
            audit.log("forget", user_id="late")
        assert s.get("/api/summary")["total_events"] == 104
    finally:
        s.stop()


def run(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([script(), *map(str, args)], capture_output=True, text=True, timeout=60,
                          env=env(AXON_AUDIT_DASHBOARD_TOKEN=""))


def test_console_script_refuses_a_non_loopback_host_without_token(folder):
    proc = run("serve", folder, "--host", "0.0.0.0", "--port", "0")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert re.match(r"^axon-audit: error: --host: '0\.0\.0\.0' is reachable from other machines; pass --token",
                    lines[0]), proc.stderr


@pytest.mark.parametrize(("args", "pattern"), [
    (["--token", "short"], r"--token: expected 8 to 256 characters"),
    (["--access-log", "{folder}/inside"], r"--access-log: .* is inside PATH"),
    (["--access-log", "{folder}-x", "--no-access-log"], r"--access-log: given with --no-access-log"),
])
def test_serve_refuses_bad_options_with_exit_2(folder, args, pattern, capsys, monkeypatch):
    monkeypatch.delenv("AXON_AUDIT_DASHBOARD_TOKEN", raising=False)
    assert main(["serve", str(folder), *[a.format(folder=folder) for a in args], "--port", "0"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and re.match(r"^axon-audit: error: " + pattern, lines[0]), lines
    assert not (folder / "inside").exists()


def test_console_script_object_storage_needs_an_access_log():
    proc = run("serve", "s3://bucket/audit", "--port", "0")
    assert proc.returncode == 2 and "--access-log: required for an object-storage PATH" in proc.stderr


def test_console_script_serves_until_sigterm_and_writes_the_access_log(tmp_path):
    folder = build_folder(tmp_path / "export", n=50)
    proc = subprocess.Popen([script(), "serve", str(folder), "--port", "0", "--analyst", "dana"],
                            stderr=subprocess.PIPE, text=True, env=env(AXON_AUDIT_DASHBOARD_TOKEN=""))
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        m = re.match(r"axon-audit: serving .* at (http://127\.0\.0\.1:\d+/)$", first.strip())
        assert m, first
        assert proc.stderr.readline().strip() == f"axon-audit: access log: {tmp_path / 'export-dashboard-access'}"
        with urllib.request.urlopen(m.group(1) + "api/summary", timeout=30) as resp:
            assert orjson.loads(resp.read())["total_events"] == 53
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    log = open_source(tmp_path / "export-dashboard-access").scan().collect()
    assert log["user_id"].cast(pl.String).to_list() == ["dana"]
    assert orjson.loads(log["metadata"][0])["endpoint"] == "/api/summary"
