"""Sinks (`axon_audit.integrations.sinks`) against real HTTP receivers on 127.0.0.1: every
event delivered exactly once and in log order across receiver outages (503s, a receiver
stopped and restarted on its port, a lost acknowledgement), with 8 threads logging;
the OTLP payload decoded with the generated classes; what `close()` keeps when the
receiver never returns; the checks on the options."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

from axon_audit import AuditLogger, AuditTypeError, AuditValueError
from axon_audit.integrations.sinks import OTLPSink, Sink, WebhookSink
from tests.waiting import wait_until

FAST = {"backoff": 0.01, "max_backoff": 0.05, "interval": 0.02, "timeout": 2.0}


class Receiver:
    """A real HTTP receiver: records every request; answers 503 while `down`; with
    `lose_acks` > 0 it keeps a batch but answers 503 (the sender must retry, same key)."""

    def __init__(self, port: int = 0) -> None:
        self.requests: list[tuple[str, str, str, bytes]] = []  # (path, key, content type, body)
        self.accepted: dict[str, bytes] = {}  # idempotency key -> body, in arrival order
        self.order: list[str] = []
        self.down = False
        self.lose_acks = 0
        self.answer = b""  # the body of a 200
        self.refuse: Callable[[bytes], int | None] | None = None  # a status to answer a body with instead
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.start(port)

    def start(self, port: int | None = None) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                key = self.headers.get("Idempotency-Key", "")
                with receiver.lock:
                    receiver.requests.append((self.path, key, self.headers.get("Content-Type", ""), body))
                    refused = receiver.refuse(body) if receiver.refuse is not None else None
                    if receiver.down:
                        code = 503
                    elif refused is not None:
                        code = refused
                    else:
                        if key not in receiver.accepted:  # a duplicate is acknowledged and dropped
                            receiver.accepted[key] = body
                            receiver.order.append(key)
                        code = 200
                        if receiver.lose_acks:
                            receiver.lose_acks -= 1
                            code = 503
                answer = receiver.answer if code == 200 else b""
                self.send_response(code)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port if port is None else port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def bodies(self) -> list[bytes]:
        with self.lock:
            return [self.accepted[k] for k in self.order]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


def _log_from_threads(audit: AuditLogger, threads: int, per: int) -> None:
    def work(t: int) -> None:
        for i in range(per):
            audit.log("store" if i % 3 else "forget", user_id=f"u{i % 4}", session_id=f"t{t}",
                      entry_ids=[f"e{t}_{i}"], metadata={"i": i, "t": t}, duration_ms=float(i),
                      status="failure" if i % 5 == 0 else "success",
                      error_message="boom" if i % 5 == 0 else None)

    ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in ts:
        th.start()
    for th in ts:
        th.join()


def _logged_ids(audit: AuditLogger) -> list[str]:
    """The logger's events in log order."""
    return audit.scan().collect()["event_id"].to_list()


def test_webhook_delivers_every_event_once_in_order_across_an_outage(receiver: Receiver) -> None:
    audit = AuditLogger(max_events=1_000_000)
    sink = WebhookSink(audit, receiver.url + "/hook", max_batch=100, max_pending=300, **FAST).start()
    _log_from_threads(audit, 8, 20)
    wait_until(lambda: sink.delivered == 160)
    before = len(receiver.order)

    receiver.down = True
    _log_from_threads(audit, 8, 150)  # 1,200 events: more than max_pending while the receiver is away
    wait_until(lambda: sink.failures >= 3 and sink.pending > 200)
    time.sleep(0.1)
    held = sink.pending
    assert len(receiver.order) == before  # nothing got through the outage ...
    assert held <= 300 and sink.pending == held  # ... the sink holds at most max_pending; the rest waits
    assert sink.subscription is not None and 0 < sink.subscription.pending <= 100  # in its subscription ("block")
    assert sink.subscription.dropped == 0  # and log() returned all along: the threads above finished

    receiver.lose_acks = 1  # the first batch after the outage is kept but its answer is lost
    receiver.down = False
    audit.close()  # the subscription ends after everything logged; the sink drains it and ends
    assert sink.join(10)
    sink.close()

    logged = _logged_ids(audit)
    assert len(logged) == 1360
    received, counts = [], 0
    for body in receiver.bodies():
        doc = json.loads(body)
        ids = [e["event_id"] for e in doc["events"]]
        assert doc["count"] == len(ids) <= 100
        assert doc["batch_id"] == f"{ids[0]}..{ids[-1]}"
        received += ids
        counts += doc["count"]
    assert received == logged  # each once, in log order, no gap between batches
    keys = [key for _, key, _, _ in receiver.requests]
    assert len(keys) - len(set(keys)) >= 1  # the batch whose answer was lost came twice, same key
    assert all(path == "/hook" and ctype == "application/json" for path, _, ctype, _ in receiver.requests)
    for _, key, _, body in receiver.requests:
        assert json.loads(body)["batch_id"] == key
    assert (sink.delivered, sink.pending) == (1360, 0)
    assert sink.retries >= sink.failures - 1 >= 3
    assert sink.batches == len(receiver.order)


def test_webhook_events_have_the_export_shape(receiver: Receiver) -> None:
    audit = AuditLogger()
    with WebhookSink(audit, receiver.url, operation="forget", **FAST):
        audit.log("store", user_id="u1")
        eid = audit.log("forget", user_id="u2", entry_ids=["m1", "m2"], metadata={"why": "gdpr"},
                        status="partial", error_message='half "done"', duration_ms=1.5)
    events = [e for body in receiver.bodies() for e in json.loads(body)["events"]]
    assert len(events) == 1  # the filter: only the forget
    event = events[0]
    assert list(event) == ["event_id", "timestamp", "operation", "user_id", "session_id", "entry_ids",
                           "metadata", "status", "error_message", "duration_ms"]
    ev = audit.get_event(eid) if isinstance(eid, str) else eid
    assert event["event_id"] == ev.event_id
    assert (event["operation"], event["user_id"], event["entry_ids"], event["metadata"]) == (
        "FORGET", "u2", ["m1", "m2"], {"why": "gdpr"})
    assert (event["status"], event["error_message"], event["duration_ms"]) == ("PARTIAL", 'half "done"', 1.5)
    assert event["timestamp"] == ev.timestamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_otlp_records_match_the_events_across_a_restarted_receiver(receiver: Receiver) -> None:
    audit = AuditLogger(max_events=1_000_000)
    sink = OTLPSink(audit, receiver.url + "/", service_name="memory-api", resource={"deployment.environment": "test"},
                    max_batch=50, max_pending=200, **FAST).start()
    _log_from_threads(audit, 8, 10)
    wait_until(lambda: sink.delivered == 80)
    receiver.stop()  # the collector goes away: connections are refused
    _log_from_threads(audit, 8, 30)
    wait_until(lambda: sink.failures >= 2)
    receiver.start()  # back on the same port
    audit.close()
    assert sink.join(10)
    sink.close()

    assert {(path, ctype) for path, _, ctype, _ in receiver.requests} == {("/v1/logs", "application/x-protobuf")}
    events = {e.event_id: e for e in audit.query_events(limit=None)}
    logged = _logged_ids(audit)
    seen: list[str] = []
    for body in receiver.bodies():
        request = logs_service_pb2.ExportLogsServiceRequest.FromString(body)
        [resource_logs] = request.resource_logs
        assert {a.key: a.value.string_value for a in resource_logs.resource.attributes} == {
            "service.name": "memory-api", "deployment.environment": "test"}
        [scope] = resource_logs.scope_logs
        assert scope.scope.name == "axon_audit"
        for rec in scope.log_records:
            attrs = {a.key: a.value for a in rec.attributes}
            ev = events[attrs["audit.event_id"].string_value]
            seen.append(ev.event_id)
            assert rec.time_unix_nano == ev.timestamp_us * 1000
            assert rec.body.string_value == ev.operation.value == attrs["audit.operation"].string_value
            failed = ev.status.value == "FAILURE"
            assert (rec.severity_number, rec.severity_text) == ((17, "ERROR") if failed else (9, "INFO"))
            assert attrs["audit.status"].string_value == ev.status.value
            assert attrs["audit.user_id"].string_value == ev.user_id
            assert attrs["audit.session_id"].string_value == ev.session_id
            assert attrs["audit.duration_ms"].double_value == ev.duration_ms
            assert [v.string_value for v in attrs["audit.entry_ids"].array_value.values] == ev.entry_ids
            assert json.loads(attrs["audit.metadata"].string_value) == ev.metadata
            if failed:
                assert attrs["audit.error_message"].string_value == ev.error_message == "boom"
            else:
                assert "audit.error_message" not in attrs
    assert seen == logged and len(seen) == 320  # each once, in log order
    assert sink.delivered == 320 and sink.failures >= 2


def test_close_keeps_what_the_receiver_never_took(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    audit = AuditLogger()
    receiver.down = True
    sink = WebhookSink(audit, receiver.url, max_batch=10, max_pending=20, drain_timeout=0.3, **FAST).start()
    for i in range(35):
        audit.log("store", user_id=f"u{i}")
    with caplog.at_level(logging.WARNING, logger="axon_audit"):
        sink.close()  # the 35 events are with the sink before it gives up waiting for the receiver
    kept = [i for df in sink.undelivered for i in df["event_id"].to_list()]
    assert kept == _logged_ids(audit)  # all of them, in order: nothing is lost
    assert sink.pending == 35 and sink.delivered == 0 and sink.failures >= 1
    assert any("35 events not delivered" in r.getMessage() for r in caplog.records)
    assert receiver.order == []


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"url": "ftp://x"}, "url must be an http:// or https:// URL"),
    ({"max_batch": 0}, "max_batch must be an int >= 1"),
    ({"max_batch": 100, "max_pending": 10}, "max_pending (10) must be >= max_batch (100)"),
    ({"backoff": -1}, "backoff must be a number of seconds > 0"),
    ({"timeout": True}, "timeout must be a number of seconds > 0"),
])
def test_options_are_checked(kwargs: dict, message: str) -> None:
    url = kwargs.pop("url", "http://127.0.0.1:9")
    with pytest.raises(AuditValueError) as err:
        WebhookSink(AuditLogger(), url, **kwargs)
    assert message in str(err.value)


@pytest.mark.parametrize("name", ["limit", "operaton"])
def test_filters_are_checked_when_the_sink_is_made(name: str) -> None:
    with pytest.raises(AuditTypeError, match=f"unknown filter '{name}'"):
        WebhookSink(AuditLogger(), "http://127.0.0.1:9", **{name: 5})


def test_a_sink_starts_once() -> None:
    sink = WebhookSink(AuditLogger(), "http://127.0.0.1:9").start()
    with pytest.raises(AuditValueError, match="already been started"):
        sink.start()
    sink.close()
    assert sink.pending == 0


def test_backoff_is_exponential_capped_and_jittered() -> None:
    sink = WebhookSink(AuditLogger(), "http://127.0.0.1:9", backoff=0.1, max_backoff=2.0)
    for attempt, cap in [(0, 0.1), (1, 0.2), (3, 0.8), (4, 1.6), (5, 2.0), (200, 2.0)]:
        delays = [sink.backoff_delay(attempt) for _ in range(300)]
        assert all(0 <= d <= cap for d in delays)
        assert max(delays) > cap * 0.8 and min(delays) < cap * 0.2  # spread over the range: jitter


def test_settle_marks_when_everything_logged_before_is_queued() -> None:
    audit = AuditLogger()
    with audit.subscribe(batches=True, interval=60) as sub:  # no idle sealing: only settle() seals
        ids = [audit.log("store", user_id=f"u{i}") for i in range(7)]
        mark = sub.settle()
        assert mark.wait(5)
        assert sub.pending == 7
        got = sub.poll(0)
        assert got is not None and got["user_id"].cast(str).to_list() == [f"u{i}" for i in range(7)]
        assert len(ids) == 7
        audit.close()
        assert sub.settle().is_set()  # after the logger's close: nothing more will come


def test_otlp_partial_success_is_counted_not_retried(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    response = logs_service_pb2.ExportLogsServiceResponse()
    response.partial_success.rejected_log_records = 2
    response.partial_success.error_message = "too old"
    receiver.answer = response.SerializeToString()
    audit = AuditLogger()
    with caplog.at_level(logging.WARNING, logger="axon_audit"), OTLPSink(audit, receiver.url, **FAST) as sink:
        for _ in range(3):
            audit.log("store")
    assert (sink.delivered, sink.rejected, sink.failures, len(receiver.requests)) == (3, 2, 0, 1)
    assert any("rejected 2 log records: too old" in r.getMessage() for r in caplog.records)


class _Broken(Sink):
    def encode(self, batch, batch_id):  # type: ignore[no-untyped-def]
        raise RuntimeError("cannot encode")


def test_a_sink_that_fails_keeps_its_events(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    audit = AuditLogger()
    sink = _Broken(audit, receiver.url, max_batch=5, max_pending=5, **FAST).start()
    for i in range(23):  # more than the sink and its subscription hold: its delivery thread blocks
        audit.log("store", user_id=f"u{i}")
    with caplog.at_level(logging.WARNING, logger="axon_audit"):
        assert sink.join(5)  # the thread stopped on the error ...
        sink.close()
        sink.close()  # a second close does nothing
    assert [i for df in sink.undelivered for i in df["event_id"].to_list()] == _logged_ids(audit)  # ... nothing lost
    messages = [r.getMessage() for r in caplog.records]
    assert any("stopped on an error" in m for m in messages)
    assert sum("23 events not delivered" in m for m in messages) == 1
