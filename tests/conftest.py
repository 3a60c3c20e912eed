"""Shared fixtures: a real S3-compatible server (moto's server mode) on 127.0.0.1.

The server runs for the whole session on a free port, in a thread of the test
process, and records every request it answers so tests can count the objects a
query fetched. Clients (pyarrow, polars, writer subprocesses) talk to it over
HTTP exactly as they would to S3; nothing in the client is mocked.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass
class S3Server:
    endpoint: str
    requests: list[tuple[str, str, str, str]] = field(default_factory=list)  # method, path, query, range
    # deny(method, path) -> True answers 403 AccessDenied, as a bucket policy
    # denying a prefix would: a real failure on the wire, the client untouched.
    deny: Callable[[str, str], bool] | None = None
    # lose_reply(method, path, query) -> True lets the server apply the request but
    # answers 500, as when a reply is lost on the way back: the client cannot tell it landed.
    lose_reply: Callable[[str, str, str], bool] | None = None
    # taken(method, path) -> True answers 412 PreconditionFailed, what S3 answers a
    # conditional create (If-None-Match: *) whose name another writer took first.
    taken: Callable[[str, str], bool] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, environ: dict) -> None:
        with self._lock:
            self.requests.append((environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""),
                                  environ.get("QUERY_STRING", ""), environ.get("HTTP_RANGE", "")))

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()

    def object_gets(self, bucket: str) -> list[str]:
        """Keys of the object reads (GETs of a key; not listings) since the last reset."""
        prefix = f"/{bucket}/"
        with self._lock:
            return [p[len(prefix):] for m, p, q, _ in self.requests
                    if m == "GET" and p.startswith(prefix) and len(p) > len(prefix)]

    def new_bucket(self) -> str:
        import pyarrow.fs as pafs

        name = f"lake-{secrets.token_hex(4)}"
        pafs.S3FileSystem(endpoint_override=self.endpoint, allow_bucket_creation=True).create_dir(name)
        return name


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server on 127.0.0.1 (a free port), with test credentials in the environment."""
    pytest.importorskip("moto", minversion="5.2.5")
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per request otherwise
    saved = {k: os.environ.get(k) for k in S3_ENV}
    os.environ.update(S3_ENV)
    app = DomainDispatcherApplication(create_backend_app)
    server: S3Server | None = None

    def counting(environ, start_response):  # type: ignore[no-untyped-def]
        assert server is not None
        server.record(environ)
        if server.deny is not None and server.deny(environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")):
            body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
                    b"<Message>Access Denied</Message></Error>")
            start_response("403 Forbidden", [("Content-Type", "application/xml"),
                                              ("Content-Length", str(len(body)))])
            return [body]
        if server.taken is not None and server.taken(environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")):
            body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>PreconditionFailed</Code>'
                    b"<Message>At least one of the pre-conditions you specified did not hold</Message></Error>")
            start_response("412 Precondition Failed", [("Content-Type", "application/xml"),
                                                       ("Content-Length", str(len(body)))])
            return [body]
        if server.lose_reply is not None and server.lose_reply(
                environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", "")):
            for _ in app(environ, lambda *args: (lambda data: None)):  # applied; its reply is dropped
                pass
            body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
                    b"<Message>We encountered an internal error. Please try again.</Message></Error>")
            start_response("500 Internal Server Error", [("Content-Type", "application/xml"),
                                                         ("Content-Length", str(len(body)))])
            return [body]
        return app(environ, start_response)

    httpd = make_server("127.0.0.1", 0, counting, threaded=True, request_handler=MotoRequestHandler)
    server = S3Server(endpoint=f"http://127.0.0.1:{httpd.server_address[1]}")
    thread = threading.Thread(target=httpd.serve_forever, name="moto-s3", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        thread.join(timeout=10)
        httpd.server_close()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A fresh, empty bucket on the session's S3 server."""
    return s3_server.new_bucket()
