"""A dashboard server over a generated export folder, in a thread of the test process
(for tests/test_dashboard_api.py and tests/test_dashboard_browser.py)."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from axon_audit import AuditLogger
from axon_audit.dashboard.server import Dashboard, make_server
from axon_audit.read.sources import open_source
from axon_audit.workload import generate_events

HOSTILE = "<img src=x onerror=alert(1)>"
TOKEN = "test-token-0123456789"


def build_folder(root: Path, n: int = 800) -> Path:
    with AuditLogger(auto_export_path=root) as audit:
        audit.log_batch(generate_events(n, seed=5, start=datetime(2025, 3, 1, tzinfo=timezone.utc), days=6))
        for i in range(3):
            audit.log("store", user_id=HOSTILE, session_id=f"s-{HOSTILE}", entry_ids=[f"e{i}"],
                      status="failure" if i == 1 else "success", error_message="boom" if i == 1 else None,
                      duration_ms=5.0 + i)
    return root


def listing(folder: Path) -> list[tuple[str, int, int]]:
    return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file())


class Served:
    """A dashboard server running in a thread of the test process."""

    def __init__(self, folder: Path, token: str | None, access: Path | None) -> None:
        self.folder = folder
        self.source = open_source(folder)
        self.logger = AuditLogger(auto_export_path=access) if access is not None else None
        self.dashboard = Dashboard(self.source, str(folder), token=token, access_log=self.logger, analyst="carol")
        self.server = make_server(self.dashboard, "127.0.0.1", 0)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.token = token
        self.dashboard.start()
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def request(self, path: str, *, method: str = "GET", token: str | None = "default",
                headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
        """(status, JSON body or bytes, headers) of one request (with the server's token unless told)."""
        token = self.token if token == "default" else token
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.base + path, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, data, got = resp.status, resp.read(), resp.headers
        except urllib.error.HTTPError as exc:
            status, data, got = exc.code, exc.read(), exc.headers
        if got.get("Content-Type", "").startswith("application/json") and data:
            return status, orjson.loads(data), got
        return status, data, got

    def get(self, path: str) -> Any:
        status, body, _ = self.request(path)
        assert status == 200, (path, status, body)
        return body

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.dashboard.close()
