"""The dashboard's HTTP server: a stdlib `ThreadingHTTPServer` over one export folder.

`Dashboard` holds what one server run shares: the source, the cache of the
summary-level answers (keyed by the folder's file listing, so a folder that
grows is read again), the integrity check (run once, in a background thread)
and the access log. `make_server` binds a `ThreadingHTTPServer` whose handler
serves the static page and ``/api/…`` through it.

Read-only by construction: only GET and HEAD are answered (anything else 405),
nothing is written under the folder, and every API request is itself logged as
an audit event (RECALL by the analyst) to the access-log folder. With a token,
every request must carry it (``Authorization: Bearer T``, the cookie that
``?token=T`` sets, or ``?token=T`` itself); without it the answer is 401.
"""

from __future__ import annotations

import hmac
import http.server
import ipaddress
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from http import HTTPStatus
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson

from axon_audit.dashboard import api
from axon_audit.dashboard.params import EVENT_PARAMS, BadParam, int_param, parse_query
from axon_audit.integrity.verify import verify
from axon_audit.write.logger import AuditLogger

__all__ = ["COOKIE", "Dashboard", "is_loopback", "make_server"]

COOKIE = "axon_audit_token"

_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}

_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

# How often the access log is written out while the server runs (it is also written on close).
ACCESS_LOG_EVERY_S = 30.0


class _NotFound(Exception):
    """Asked for something that is not there: 404 with the message."""


class Dashboard:
    """What one server run shares: the source, caches, integrity check and access log.

    `verify_options` go to `axon_audit.verify` (e.g. storage_options). `access_log`
    is the logger every API request is recorded with (None: not recorded).
    """

    def __init__(self, source: Any, path: str, *, token: str | None = None, access_log: AuditLogger | None = None,
                 analyst: str = "analyst", verify_options: dict[str, Any] | None = None) -> None:
        self.source = source
        self.path = path
        self.token = token
        self.access_log = access_log
        self.analyst = analyst
        self.session_id = f"dashboard_{uuid.uuid4().hex[:16]}"
        self._verify_options = verify_options or {}
        self._cache: dict[tuple[str, ...], tuple[Any, Any]] = {}
        self._lock = threading.Lock()
        self._integrity: dict[str, Any] = {"state": "checking"}
        self._integrity_thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        # The Host headers answered (None: any); `make_server` sets them for a loopback server.
        self.hosts: set[str] | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the integrity check and the access log's periodic write, in the background."""
        self._integrity_thread = threading.Thread(target=self._check_integrity, name="dashboard-verify", daemon=True)
        self._integrity_thread.start()
        if self.access_log is not None:
            self._writer = threading.Thread(target=self._write_access_log, name="dashboard-access-log", daemon=True)
            self._writer.start()

    def close(self) -> None:
        """Write out the access log (every request recorded so far lands in its folder)."""
        self._stop.set()
        if self._writer is not None:
            self._writer.join(timeout=30)
        if self.access_log is not None:
            self.access_log.close()

    def _write_access_log(self) -> None:
        assert self.access_log is not None
        written = 0
        while not self._stop.wait(ACCESS_LOG_EVERY_S):
            if self.access_log.total_events_logged != written:
                written = self.access_log.total_events_logged
                try:
                    self.access_log.close()  # exports what is in memory; the logger stays usable
                except Exception as exc:  # noqa: BLE001 - the events stay in memory and are retried
                    sys.stderr.write(f"axon-audit: access log not written yet (retried): {exc}\n")

    def _check_integrity(self) -> None:
        started = time.perf_counter()
        try:
            result = verify(self.path, **self._verify_options)
            outcome: dict[str, Any] = {"state": "done", "ok": result.ok, "events_checked": result.events_checked,
                                       "files_checked": result.files_checked, "problems": list(result.problems),
                                       "notes": list(result.notes)}
        except Exception as exc:  # noqa: BLE001 - a check that cannot run is shown, not a dead server
            outcome = {"state": "error", "ok": False, "events_checked": 0, "files_checked": 0,
                       "problems": [f"verify could not run: {type(exc).__name__}: {exc}"], "notes": []}
        outcome["seconds"] = round(time.perf_counter() - started, 3)
        self._integrity = outcome

    def integrity(self, wait: float | None = None) -> dict[str, Any]:
        """The integrity check's result, or {"state": "checking"} while it runs."""
        if wait is not None and self._integrity_thread is not None:
            self._integrity_thread.join(wait)
        return dict(self._integrity)

    # ------------------------------------------------------------------ answers

    def _listing(self) -> Any:
        """What changes when the folder does: its file names (and, locally, sizes and times)."""
        files = self.source.files()
        stamp: list[Any] = []
        for f in files:
            if isinstance(f, Path):
                try:
                    st = f.stat()
                except OSError:
                    continue
                stamp.append((str(f), st.st_size, st.st_mtime_ns))
            else:
                stamp.append(str(f))
        return tuple(stamp)

    def cached(self, key: tuple[str, ...], compute: Callable[[], Any]) -> Any:
        """`compute()`, kept while the folder's listing stays the same (it is sealed evidence)."""
        listing = self._listing()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit[0] == listing:
            return hit[1]
        value = compute()
        with self._lock:
            self._cache[key] = (listing, value)
        return value

    def answer(self, route: str, query: str) -> tuple[Any, dict[str, Any]]:
        """The JSON of an API route and the parameters to record; BadParam / _NotFound on bad requests."""
        s = self.source
        if route == "/api/summary":
            parse_query(query, [])
            return self.cached(("summary",), lambda: {**api.summary(s), "path": self.path}), {}
        if route == "/api/timeline":
            p = parse_query(query, ["bucket"])
            bucket = p.get("bucket", "day")
            if bucket not in api.BUCKETS:
                raise BadParam(f"bucket: expected day or hour, got {bucket!r}")
            return self.cached(("timeline", bucket), lambda: api.timeline(s, bucket)), p
        if route == "/api/latency":
            parse_query(query, [])
            return self.cached(("latency",), lambda: api.latency(s)), {}
        if route == "/api/users":
            p = parse_query(query, ["top"])
            top = int_param(p, "top", 10, 1, 1000)
            return self.cached(("users", str(top)), lambda: api.users(s, top)), p
        if route == "/api/alerts":
            parse_query(query, [])
            return self.cached(("alerts",), lambda: api.alerts(s)), {}
        if route == "/api/events":
            p = parse_query(query, EVENT_PARAMS)
            return api.events(s, p), p
        if route == "/api/integrity":
            parse_query(query, [])
            return self.integrity(), {}
        if route.startswith("/api/user/"):
            p = parse_query(query, [])
            user_id = unquote(route[len("/api/user/"):])
            if not user_id:
                raise BadParam("user id: expected /api/user/<user id>, got an empty id")
            found = api.user(s, user_id)
            if found is None:
                raise _NotFound(f"no events for user {user_id!r} in this folder")
            return found, {**p, "user_id": user_id}
        raise _NotFound(f"no such endpoint: {route}")

    def record(self, endpoint: str, params: dict[str, Any], client: str, rows: int | None, status: int,
               error: str | None, duration_ms: float) -> None:
        """One RECALL event for one API request, by the analyst, in this run's session."""
        if self.access_log is None:
            return
        meta = {"endpoint": endpoint, "params": params, "client": client, "rows": rows, "http_status": status}
        self.access_log.log("RECALL", user_id=self.analyst, session_id=self.session_id, metadata=meta,
                            status="success" if status < 400 else "failure", error_message=error,
                            duration_ms=duration_ms)


def _rows_of(body: Any) -> int | None:
    """How many rows an answer carries (the access log's `rows`)."""
    if not isinstance(body, dict):
        return None
    for key in ("events", "users", "alerts"):
        if isinstance(body.get(key), list):
            return len(body[key])
    if isinstance(body.get("start"), list):
        return len(body["start"])
    return 1


def _static(name: str) -> bytes:
    return (resources.files("axon_audit.dashboard") / "static" / name).read_bytes()


class _Handler(http.server.BaseHTTPRequestHandler):
    dashboard: Dashboard  # set on the subclass make_server builds
    server_version = "axon-audit-dashboard"
    protocol_version = "HTTP/1.1"

    def version_string(self) -> str:
        return self.server_version  # not the Python version: nothing for a scanner to match

    def log_message(self, format: str, *args: Any) -> None:
        pass  # requests go to the access log, not to stderr

    # Only reads: every other method is refused by name, so it is 405 and not the stdlib's 501.
    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _refuse_method(self) -> None:
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"method {self.command} not allowed: "
                                                            "the dashboard is read-only (GET, HEAD)"},
                   extra={"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _refuse_method

    def __getattr__(self, name: str) -> Any:
        # Any other method (the stdlib looks up do_<METHOD>) is refused the same way: 405.
        if name.startswith("do_"):
            return self._refuse_method
        raise AttributeError(name)

    def _send(self, status: int, body: Any, *, content_type: str = "application/json",
              extra: dict[str, str] | None = None, head: bool = False) -> None:
        data = body if isinstance(body, bytes) else orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in {**_SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def _token_given(self, query: str) -> tuple[bool, bool]:
        """(the request carries the token, it came in the query string)."""
        want = self.dashboard.token
        assert want is not None
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and hmac.compare_digest(auth[7:].strip().encode(), want.encode()):
            return True, False
        for part in self.headers.get("Cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE and hmac.compare_digest(value.encode(), want.encode()):
                return True, False
        try:
            from_query = [v for k, v in _query_pairs(query) if k == "token"]
        except ValueError:
            from_query = []
        ok = len(from_query) == 1 and hmac.compare_digest(from_query[0].encode(), want.encode())
        return ok, ok

    def _serve(self, head: bool) -> None:
        started = time.perf_counter()
        parts = urlsplit(self.path)
        route, query = parts.path, parts.query
        d = self.dashboard
        if d.hosts is not None and self.headers.get("Host", "").lower() not in d.hosts:
            self._send(HTTPStatus.FORBIDDEN, {"error": "Host header: not this server's name (expected one of "
                                                       f"{', '.join(sorted(d.hosts))})"}, head=head)
            return
        cookie: dict[str, str] = {}
        if d.token is not None:
            ok, from_query = self._token_given(query)
            if not ok:
                self._send(HTTPStatus.UNAUTHORIZED, {"error": "token: missing or wrong; open the URL the server "
                                                              "printed (with ?token=…) or send Authorization: "
                                                              "Bearer <token>"},
                           extra={"WWW-Authenticate": 'Bearer realm="axon-audit"'}, head=head)
                return
            if from_query:
                cookie = {"Set-Cookie": f"{COOKIE}={d.token}; HttpOnly; SameSite=Strict; Path=/"}
                if route in ("/", "/index.html"):
                    # The token leaves the address bar (and the history) once the cookie holds it.
                    self._send(HTTPStatus.SEE_OTHER, b"", content_type="text/plain",
                               extra={**cookie, "Location": "/"}, head=head)
                    return
        if route in _STATIC:
            name, content_type = _STATIC[route]
            self._send(HTTPStatus.OK, _static(name), content_type=content_type, extra=cookie, head=head)
            return
        if not route.startswith("/api/"):
            self._send(HTTPStatus.NOT_FOUND, {"error": f"not found: {route}"}, head=head)
            return
        status, error, body = HTTPStatus.OK, None, None
        params: dict[str, Any] = {}
        try:
            body, params = d.answer(route, query)
        except BadParam as exc:
            status, error = HTTPStatus.BAD_REQUEST, str(exc)
        except _NotFound as exc:
            status, error = HTTPStatus.NOT_FOUND, str(exc)
        except Exception as exc:  # noqa: BLE001 - one failed read is a 500 answer, not a dead server
            status, error = HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        duration_ms = (time.perf_counter() - started) * 1000
        d.record(route, dict(params) if params else _safe_params(query), self.client_address[0],
                 _rows_of(body) if error is None else 0, int(status), error, duration_ms)
        self._send(status, body if error is None else {"error": error}, extra=cookie, head=head)


def _query_pairs(query: str) -> list[tuple[str, str]]:
    return parse_qsl(query, keep_blank_values=True, max_num_fields=50)


def _safe_params(query: str) -> dict[str, str]:
    """A refused request's parameters as given (the token left out), for the access log."""
    try:
        return {k: v[:200] for k, v in _query_pairs(query) if k != "token"}
    except ValueError:
        return {"query": query[:200]}


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable only from this machine (127.0.0.0/8, ::1, localhost).

    Example:
        >>> from axon_audit.dashboard.server import is_loopback
        >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0"), is_loopback("::1")
        (True, True, False, True)
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def make_server(dashboard: Dashboard, host: str = "127.0.0.1", port: int = 0) -> http.server.ThreadingHTTPServer:
    """A server bound to (host, port) (port 0: any free one; see `server_address`), not started:
    call `dashboard.start()` and `serve_forever()`, then `shutdown()`, `server_close()` and
    `dashboard.close()`.

    On loopback, only requests naming this server in their Host header are answered: a web
    page elsewhere cannot reach it through a name it rebinds to 127.0.0.1 (DNS rebinding)."""
    handler = type("DashboardHandler", (_Handler,), {"dashboard": dashboard})
    server = (_Server6 if ":" in host.strip("[]") else _Server)((host.strip("[]"), port), handler)
    if is_loopback(host):
        bound = server.server_address[1]
        names = {"127.0.0.1", "localhost", "[::1]", host.lower() if ":" not in host else f"[{host.strip('[]')}]"}
        dashboard.hosts = {f"{n}:{bound}" for n in names}
    return server
