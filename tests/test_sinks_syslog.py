"""The syslog sink (`axon_audit.integrations.sinks.SyslogSink`) against real TCP and UDP
receivers on 127.0.0.1 that cut the octet-counted stream (RFC 6587) back into messages
and parse them: every event exactly once and in log order across a TCP receiver that is
stopped and restarted on its port; CEF and RFC 5424 fields checked against the logged
events, hostile values (``|``, ``=``, ``\\``, newline, ``]``, ``"``) included; UDP
datagrams; the checks on the options."""

from __future__ import annotations

import re
import socket
import socketserver
import threading
from collections.abc import Iterator
from typing import Any

import polars as pl
import pytest

from axon_audit import AuditLogger, AuditValueError, __version__
from axon_audit.integrations.sinks import SyslogSink
from axon_audit.integrations.sinks.syslog import syslog_messages
from tests.waiting import wait_until

FAST = {"backoff": 0.01, "max_backoff": 0.05, "interval": 0.02, "timeout": 2.0}
HOSTILE_USER = 'u|1=2\\x\ny]"z'
HOSTILE_ERROR = 'bad | thing = "x" \\ y]\r\nnext line'


class TcpReceiver:
    """A real TCP syslog receiver: octet-counted frames off each connection, in arrival order."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.lock = threading.Lock()
        self.conns: list[socket.socket] = []
        self.port = 0
        self.server: socketserver.ThreadingTCPServer | None = None
        self.start()

    def start(self) -> None:
        receiver = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with receiver.lock:
                    receiver.conns.append(self.request)
                buf = b""
                while True:
                    try:
                        data = self.request.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    buf += data
                    while b" " in buf:
                        length, rest = buf.split(b" ", 1)
                        n = int(length)
                        if len(rest) < n:
                            break
                        with receiver.lock:
                            receiver.messages.append(rest[:n].decode())
                        buf = rest[n:]

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        socketserver.ThreadingTCPServer.daemon_threads = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def stop(self) -> None:
        """Stop listening and close every connection (the sender sees the close)."""
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            conns, self.conns = self.conns, []
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def got(self) -> list[str]:
        with self.lock:
            return list(self.messages)


@pytest.fixture
def tcp() -> Iterator[TcpReceiver]:
    r = TcpReceiver()
    yield r
    r.stop()


def _log_from_threads(audit: AuditLogger, threads: int, per: int) -> None:
    def work(t: int) -> None:
        for i in range(per):
            audit.log("store" if i % 3 else "forget", user_id=f"u{i % 4}", session_id=f"t{t}",
                      duration_ms=float(i), status="failure" if i % 5 == 0 else "success",
                      error_message="boom" if i % 5 == 0 else None)

    ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in ts:
        th.start()
    for th in ts:
        th.join()


def _in_log_order(audit: AuditLogger) -> list[Any]:
    by_id = {e.event_id: e for e in audit.query_events(limit=None)}
    return [by_id[i] for i in audit.scan().collect()["event_id"].to_list()]


_HEADER = re.compile(r"<(\d+)>1 (\S+) (\S+) (\S+) (\S+) (\S+) (.*)", re.S)


def _header(message: str) -> tuple[int, str, str, str, str, str, str]:
    m = _HEADER.fullmatch(message)
    assert m, message
    return int(m[1]), m[2], m[3], m[4], m[5], m[6], m[7]


def _cef(text: str) -> tuple[list[str], dict[str, str]]:
    """A CEF record's 7 header fields (unescaped) and its extension (unescaped values)."""
    assert text.startswith("CEF:")
    fields, cur, i = [], "", 0
    while len(fields) < 7:
        ch = text[i]
        if ch == "\\":
            cur += text[i + 1]
            i += 2
            continue
        if ch == "|":
            fields.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    ext = text[i:]
    keys = list(re.finditer(r"(?:^| )([A-Za-z0-9_]+)=", ext))
    values = {}
    for k, nxt in zip(keys, [*keys[1:], None], strict=True):
        raw = ext[k.end(): nxt.start() if nxt else len(ext)]
        values[k[1]] = re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m[1], m[1]), raw)
    return fields, values


def _sd(rest: str) -> tuple[dict[str, str], str]:
    """The audit@32473 SD-PARAMs (unescaped) and MSG of an RFC 5424 message's tail."""
    m = re.match(r'\[audit@32473((?: \w+="(?:[^"\\\]]|\\.)*")*)\] ', rest, re.S)
    assert m, rest
    params = {k: re.sub(r"\\(.)", r"\1", v) for k, v in re.findall(r'(\w+)="((?:[^"\\\]]|\\.)*)"', m[1], re.S)}
    return params, rest[m.end():]


def test_tcp_delivers_every_event_once_in_order_across_a_receiver_restart(tcp: TcpReceiver) -> None:
    audit = AuditLogger(max_events=1_000_000)
    sink = SyslogSink(audit, ("127.0.0.1", tcp.port), transport="tcp", max_batch=50, max_pending=200,
                      **FAST).start()
    _log_from_threads(audit, 4, 15)
    wait_until(lambda: len(tcp.got()) == 60 and sink.delivered == 60)
    tcp.stop()  # the receiver goes away, closing its connection
    _log_from_threads(audit, 4, 40)
    wait_until(lambda: sink.failures >= 2)
    assert len(tcp.got()) == 60  # nothing went into the closed connection
    tcp.start()  # back on the same port
    audit.close()
    assert sink.join(10)
    sink.close()

    logged = audit.scan().collect()["event_id"].to_list()
    assert len(logged) == 220
    received = [_cef(_header(m)[6][2:])[1]["externalId"] for m in tcp.got()]
    assert received == logged  # each once, in log order
    assert (sink.delivered, sink.pending, sink.undelivered) == (220, 0, [])
    assert sink.retries >= 1


def test_cef_fields_and_escaping_match_the_logged_events(tcp: TcpReceiver) -> None:
    audit = AuditLogger()
    with SyslogSink(audit, ("127.0.0.1", tcp.port), transport="tcp", hostname="host one", **FAST) as sink:
        audit.log("store", user_id=HOSTILE_USER, session_id="s=1|2", duration_ms=45.2)
        audit.log("forget", user_id="u2", status="failure", error_message=HOSTILE_ERROR, duration_ms=3.0)
        audit.log("store", status="partial")
    assert sink.delivered == 3
    events = _in_log_order(audit)
    messages = tcp.got()
    assert len(messages) == 3
    for message, ev in zip(messages, events, strict=True):
        pri, ts, host, app, procid, msgid, rest = _header(message)
        status = ev.status.value
        assert pri == 13 * 8 + {"SUCCESS": 6, "PARTIAL": 4, "FAILURE": 3}[status]
        assert ts == ev.timestamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert (host, app, msgid) == ("host_one", "axon_audit", ev.operation.value)
        assert procid.isdigit()
        assert rest.startswith("- ")
        header, ext = _cef(rest[2:])
        op = ev.operation.value
        assert header == ["CEF:0", "axon_audit", "axon_audit", __version__, op, f"{op} {status}",
                          {"SUCCESS": "3", "PARTIAL": "5", "FAILURE": "7"}[status]]
        expected: dict[str, Any] = {"rt": str(int(ev.timestamp.timestamp() * 1000)), "externalId": ev.event_id,
                                    "outcome": status}
        if ev.user_id is not None:
            expected["suser"] = ev.user_id
        if ev.session_id is not None:
            expected |= {"cs1Label": "session", "cs1": ev.session_id}
        if ev.duration_ms is not None:
            expected |= {"cn1Label": "durationMs", "cn1": f"{ev.duration_ms:g}"}
        if ev.error_message is not None:
            expected["msg"] = ev.error_message
        assert ext == expected
    assert "\n" not in "".join(messages) and "\r" not in "".join(messages)  # a newline never splits a record
    assert _cef(_header(messages[0])[6][2:])[1]["suser"] == HOSTILE_USER  # read back as logged
    assert _cef(_header(messages[1])[6][2:])[1]["msg"] == HOSTILE_ERROR


def test_cef_header_escapes_pipe_and_backslash() -> None:
    # The header's fields come from enums in a logged event; the escaping is checked on a raw frame.
    batch = pl.DataFrame({"event_id": ["evt_1"], "timestamp": [1736942400000000], "operation": ["A|B\\C\nD"],
                          "user_id": [None], "session_id": [None], "status": ["SUCCESS"], "error_message": [None],
                          "duration_ms": [None]}, schema_overrides={"user_id": pl.String, "session_id": pl.String,
                                                                     "error_message": pl.String,
                                                                     "duration_ms": pl.Float64})
    batch = batch.with_columns(pl.from_epoch("timestamp", "us").dt.replace_time_zone("UTC"))
    text = syslog_messages(batch, version="1|2\\").item()
    header, ext = _cef(_header(text)[6][2:])
    assert header[3:6] == ["1|2\\", "A|B\\C D", "A|B\\C D SUCCESS"]  # a newline in the header is a space
    assert ext == {"rt": "1736942400000", "externalId": "evt_1", "outcome": "SUCCESS"}
    assert _header(text)[5] == "A|B\\C_D"  # MSGID: printable US-ASCII only


def test_rfc5424_structured_data_escapes_quote_backslash_bracket(tcp: TcpReceiver) -> None:
    audit = AuditLogger()
    with SyslogSink(audit, ("127.0.0.1", tcp.port), transport="tcp", format="rfc5424", facility=1, **FAST):
        audit.log("forget", user_id=HOSTILE_USER, session_id='s"]\\', status="failure",
                  error_message="no", duration_ms=1.5)
        audit.log("store")
    events = _in_log_order(audit)
    messages = tcp.got()
    assert len(messages) == 2
    pri, _, _, app, _, msgid, rest = _header(messages[0])
    assert (pri, app, msgid) == (8 + 3, "axon_audit", "FORGET")
    params, msg = _sd(rest)
    assert params == {"eventId": events[0].event_id, "userId": HOSTILE_USER, "sessionId": 's"]\\',
                      "status": "FAILURE", "durationMs": "1.5"}
    assert msg == "FORGET FAILURE: no"
    pri, *_, rest = _header(messages[1])
    params, msg = _sd(rest)
    assert pri == 8 + 6 and params == {"eventId": events[1].event_id, "status": "SUCCESS"} and msg == "STORE SUCCESS"


def test_udp_receiver_gets_the_messages() -> None:
    got: list[str] = []

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            got.append(self.request[0].decode())

    server = socketserver.UDPServer(("127.0.0.1", 0), Handler)
    server.max_packet_size = 65_536
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        audit = AuditLogger()
        with SyslogSink(audit, server.server_address, **FAST) as sink:  # type: ignore[arg-type]
            for i in range(5):
                audit.log("store", user_id=f"u{i}")
            audit.log("store", user_id="big", status="failure", error_message="é" * 40_000)  # 80 kB
        assert sink.transport == "udp" and sink.delivered == 6 and sink.truncated == 1
        wait_until(lambda: len(got) == 6)
        ids = [e.event_id for e in _in_log_order(audit)]
        assert [_cef(_header(m)[6][2:])[1]["externalId"] for m in got] == ids
        assert [_cef(_header(m)[6][2:])[1]["suser"] for m in got] == [f"u{i}" for i in range(5)] + ["big"]
        cut = _cef(_header(got[5])[6][2:])[1]["msg"]  # the copy sent is cut to fit a datagram (whole characters)
        assert len(got[5].encode()) <= 65_000 and 30_000 < len(cut) < 40_000 and set(cut) == {"é"}
        assert _in_log_order(audit)[5].error_message == "é" * 40_000  # the logged event is whole
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"address": "127.0.0.1:514"}, "address must be a (host, port) tuple"),
    ({"address": ("127.0.0.1", 0)}, "port 1-65535"),
    ({"address": ("127.0.0.1", True)}, "port 1-65535"),
    ({"transport": "tls"}, "transport must be 'udp' or 'tcp'"),
    ({"format": "leef"}, "format must be 'cef' or 'rfc5424'"),
    ({"facility": 24}, "facility must be an int 0-23"),
    ({"max_batch": 0}, "max_batch must be an int >= 1"),
])
def test_options_are_checked(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(AuditValueError, match=re.escape(message)):
        SyslogSink(AuditLogger(), **kwargs)
