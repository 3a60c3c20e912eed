"""A syslog sink: the logger's events as RFC 5424 or ArcSight CEF messages over UDP or TCP, in order.

Each event is one syslog message (RFC 5424 header: PRI from the status, the event's
timestamp, HOSTNAME, APP-NAME ``axon_audit``, PROCID the process id, MSGID the
operation). With ``format="rfc5424"`` the event travels in STRUCTURED-DATA::

    <110>1 2025-01-15T12:00:00.000000Z host axon_audit 4242 STORE [audit@32473 eventId="evt_1" \
userId="u1" sessionId="s1" status="SUCCESS" durationMs="45.2"] STORE SUCCESS

(SD-PARAM values escape ``"``, ``\\`` and ``]``; absent values are left out; MSG is
``<operation> <status>`` and ``: <error message>`` when there is one). With
``format="cef"`` (the default) the header's STRUCTURED-DATA is ``-`` and MSG is::

    CEF:0|axon_audit|axon_audit|<version>|STORE|STORE SUCCESS|3|rt=1736942400000 suser=u1 \
cs1Label=session cs1=s1 externalId=evt_1 outcome=SUCCESS cn1Label=durationMs cn1=45.2 msg=…

(severity 3 for SUCCESS, 5 for PARTIAL, 7 for FAILURE; the header escapes ``\\`` and
``|``, the extension values ``\\``, ``=`` and newlines as ``\\n`` / ``\\r``; absent
values are left out). PRI is ``facility × 8 + severity`` with facility 13 (log
audit) unless given, severity info (6), warning (4, PARTIAL) or err (3, FAILURE).

Transports: ``tcp`` frames each message with octet counting (RFC 6587:
``<length> <message>``) on one connection, reopened when it breaks; a batch that
fails to send (refused, reset, timed out, or the receiver closed the connection,
which is checked before each batch) is sent again, whole, after the backoff of
every sink (`axon_audit.integrations.sinks.base`), so TCP delivery is at least once:
a connection that breaks in the middle of a batch resends its first messages too
(their ``eventId`` / ``externalId`` tell the copies apart), and syslog has no
acknowledgement, so what the kernel took just before a receiver vanished without
closing its end can still be lost. ``udp`` sends one datagram per message; UDP
cannot know whether anything arrived, so only a local send error is retried (use
TCP for evidence that must arrive).

Example:
    >>> from axon_audit import AuditLogger
    >>> from axon_audit.integrations.sinks import SyslogSink
    >>> sink = SyslogSink(AuditLogger(), ("127.0.0.1", 6514), transport="tcp", format="rfc5424")
    >>> sink.target(), sink.transport, sink.format
    ('syslog+tcp://127.0.0.1:6514', 'tcp', 'rfc5424')
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import polars as pl

from axon_audit.exceptions import AuditValueError
from axon_audit.integrations.sinks.base import Sink

__all__ = ["SyslogSink", "cef_message", "frames", "rfc5424_message", "syslog_messages"]

FACILITY_LOG_AUDIT = 13
_SEVERITY = {"SUCCESS": 6, "PARTIAL": 4, "FAILURE": 3}  # syslog: info, warning, err
_CEF_SEVERITY = {"SUCCESS": 3, "PARTIAL": 5, "FAILURE": 7}
_SD_ESCAPE = str.maketrans({"\\": "\\\\", '"': '\\"', "]": "\\]"})
_CEF_HEADER_ESCAPE = str.maketrans({"\\": "\\\\", "|": "\\|", "\n": " ", "\r": " "})
_CEF_EXT_ESCAPE = str.maketrans({"\\": "\\\\", "=": "\\=", "\n": "\\n", "\r": "\\r"})
_NOT_PRINTABLE = re.compile(r"[^\x21-\x7e]")  # header fields are PRINTUSASCII (RFC 5424, 6)
_COLUMNS = ("event_id", "timestamp", "operation", "user_id", "session_id", "status", "error_message", "duration_ms")


def _header_field(value: str | None, limit: int) -> str:
    """A header field: printable US-ASCII, at most `limit` characters, ``-`` when empty."""
    text = _NOT_PRINTABLE.sub("_", value or "")[:limit]
    return text or "-"


def _number(value: float) -> str:
    """45.0 -> "45", 45.2 -> "45.2" (the shortest text that reads back as the same float)."""
    return str(int(value)) if value.is_integer() else repr(value)


def _rows(batch: pl.DataFrame) -> Iterator[tuple[Any, ...]]:
    """The columns a message needs, as plain values (vectorized casts first)."""
    return batch.select(
        pl.col("event_id"), pl.col("timestamp").dt.epoch("us"), pl.col("operation").cast(pl.String),
        pl.col("user_id").cast(pl.String), pl.col("session_id"), pl.col("status").cast(pl.String),
        pl.col("error_message"), pl.col("duration_ms"),
    ).iter_rows()


def _timestamp(ts_us: int) -> str:
    return datetime.fromtimestamp(ts_us / 1e6, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _header(pri: int, ts_us: int, hostname: str, procid: str, operation: str) -> str:
    return f"<{pri}>1 {_timestamp(ts_us)} {hostname} axon_audit {procid} {_header_field(operation, 32)}"


def rfc5424_message(row: tuple[Any, ...], *, hostname: str = "-", procid: str = "-",
                    facility: int = FACILITY_LOG_AUDIT) -> str:
    """One event (a row of `_COLUMNS`) as an RFC 5424 message with its STRUCTURED-DATA.

    Example:
        >>> row = ("evt_1", 1736942400000000, "STORE", "u1", 's"1]', "SUCCESS", None, 45.2)
        >>> rfc5424_message(row, hostname="h", procid="7")
        '<110>1 2025-01-15T12:00:00.000000Z h axon_audit 7 STORE [audit@32473 eventId="evt_1" \
userId="u1" sessionId="s\\\\"1\\\\]" status="SUCCESS" durationMs="45.2"] STORE SUCCESS'
    """
    event_id, ts_us, operation, user, session, status, error, duration = row
    params = [("eventId", event_id), ("userId", user), ("sessionId", session), ("status", status),
              ("durationMs", None if duration is None else _number(duration))]
    sd = " ".join(f'{k}="{str(v).translate(_SD_ESCAPE)}"' for k, v in params if v is not None)
    msg = f"{operation} {status}" + (f": {error}" if error is not None else "")
    pri = facility * 8 + _SEVERITY.get(status, 6)
    return f"{_header(pri, ts_us, hostname, procid, operation)} [audit@32473 {sd}] {msg}"


def cef_message(row: tuple[Any, ...], version: str, *, hostname: str = "-", procid: str = "-",
                facility: int = FACILITY_LOG_AUDIT) -> str:
    """One event (a row of `_COLUMNS`) as an RFC 5424 message whose MSG is an ArcSight CEF record.

    Example:
        >>> row = ("evt_1", 1736942400000000, "FORGET", "a=b", None, "FAILURE", "x|y\\nz", 3.0)
        >>> cef_message(row, "0.1.0", hostname="h", procid="7")
        '<107>1 2025-01-15T12:00:00.000000Z h axon_audit 7 FORGET - CEF:0|axon_audit|axon_audit|0.1.0|\
FORGET|FORGET FAILURE|7|rt=1736942400000 suser=a\\\\=b externalId=evt_1 outcome=FAILURE \
cn1Label=durationMs cn1=3 msg=x|y\\\\nz'
    """
    event_id, ts_us, operation, user, session, status, error, duration = row
    op = operation.translate(_CEF_HEADER_ESCAPE)
    head = f"CEF:0|axon_audit|axon_audit|{version.translate(_CEF_HEADER_ESCAPE)}|{op}|{op} {status}|" \
           f"{_CEF_SEVERITY.get(status, 3)}|"
    ext = [("rt", str(ts_us // 1000)), ("suser", user)]
    if session is not None:
        ext += [("cs1Label", "session"), ("cs1", session)]
    ext += [("externalId", event_id), ("outcome", status)]
    if duration is not None:
        ext += [("cn1Label", "durationMs"), ("cn1", _number(duration))]
    ext.append(("msg", error))
    extension = " ".join(f"{k}={v.translate(_CEF_EXT_ESCAPE)}" for k, v in ext if v is not None)
    pri = facility * 8 + _SEVERITY.get(status, 6)
    return f"{_header(pri, ts_us, hostname, procid, operation)} - {head}{extension}"


def syslog_messages(batch: pl.DataFrame, format: str = "cef", *, hostname: str = "-", procid: str = "-",
                    facility: int = FACILITY_LOG_AUDIT) -> list[bytes]:
    """The messages of one batch, in order, UTF-8 encoded."""
    if format == "cef":
        from axon_audit import __version__  # the package's own version (the package imports this module late)

        return [cef_message(r, __version__, hostname=hostname, procid=procid, facility=facility).encode()
                for r in _rows(batch)]
    return [rfc5424_message(r, hostname=hostname, procid=procid, facility=facility).encode() for r in _rows(batch)]


def frames(messages: list[bytes]) -> bytes:
    """Octet-counting framing (RFC 6587, 3.4.1): ``<length> <message>`` each, back to back.

    Example:
        >>> frames([b"<14>1 a", b"b"])
        b'7 <14>1 a1 b'
    """
    return b"".join(b"%d %s" % (len(m), m) for m in messages)


def unframe(data: bytes) -> list[bytes]:
    """The messages of `frames` (what a batch is cut back into for UDP)."""
    out, i = [], 0
    while i < len(data):
        space = data.index(b" ", i)
        n = int(data[i:space])
        out.append(data[space + 1:space + 1 + n])
        i = space + 1 + n
    return out


class SyslogSink(Sink):
    """Ships the matching events of `audit_logger` to a syslog receiver at `address` (see the module).

    `address` is ``(host, port)``; `transport` ``"udp"`` (default) or ``"tcp"``;
    `format` ``"cef"`` (default) or ``"rfc5424"``; `hostname` for the header
    (default: this machine's name); `facility` 0-23 (default 13, log audit). Other
    keywords as `WebhookSink` (`timeout` is the connect / send timeout; `headers`
    are not used).
    """

    kind = "syslog"

    def __init__(self, audit_logger: Any, address: tuple[str, int] = ("127.0.0.1", 514), *,
                 transport: str = "udp", format: str = "cef", hostname: str | None = None,
                 facility: int = FACILITY_LOG_AUDIT, **options: Any) -> None:
        if (not isinstance(address, tuple) or len(address) != 2 or not isinstance(address[0], str)
                or not address[0] or isinstance(address[1], bool) or not isinstance(address[1], int)
                or not 0 < address[1] < 65536):
            raise AuditValueError(f"address must be a (host, port) tuple with a port 1-65535, got {address!r}")
        if transport not in ("udp", "tcp"):
            raise AuditValueError(f"transport must be 'udp' or 'tcp', got {transport!r}")
        if format not in ("cef", "rfc5424"):
            raise AuditValueError(f"format must be 'cef' or 'rfc5424', got {format!r}")
        if isinstance(facility, bool) or not isinstance(facility, int) or not 0 <= facility <= 23:
            raise AuditValueError(f"facility must be an int 0-23, got {facility!r}")
        if hostname is not None and not isinstance(hostname, str):
            raise AuditValueError(f"hostname must be a string, got {hostname!r}")
        self.address = address
        self.transport = transport
        self.format = format
        self.facility = facility
        self.hostname = _header_field(socket.gethostname() if hostname is None else hostname, 255)
        self._procid = str(os.getpid())
        self._sock: socket.socket | None = None
        host = f"[{address[0]}]" if ":" in address[0] else address[0]
        super().__init__(audit_logger, f"syslog+{transport}://{host}:{address[1]}", **options)

    def check_url(self, url: Any) -> None:
        pass  # made from `address`, which __init__ checked

    def encode(self, batch: pl.DataFrame, batch_id: str) -> tuple[bytes, str]:
        messages = syslog_messages(batch, self.format, hostname=self.hostname, procid=self._procid,
                                   facility=self.facility)
        return frames(messages), "application/octet-stream"

    def transmit(self, body: bytes, headers: dict[str, str]) -> str | None:
        try:
            if self.transport == "tcp":
                self._tcp_socket().sendall(body)
            else:
                sock = self._udp_socket()
                for message in unframe(body):
                    sock.sendto(message, self.address)
        except OSError as e:  # refused, reset, timed out, closed by the receiver, no route
            self._close_socket()
            return f"{type(e).__name__}: {e}"
        return None

    def _tcp_socket(self) -> socket.socket:
        """The open connection, reopened when the receiver has closed or reset it."""
        sock = self._sock
        if sock is not None:
            # A closed peer shows as EOF (or a reset) here; sending into it would "succeed" and be lost.
            # Non-blocking for the peek: with a timeout set, recv() would first wait that long.
            sock.setblocking(False)
            try:
                closed = sock.recv(1, socket.MSG_PEEK) == b""
            except BlockingIOError:
                closed = False  # nothing to read: the connection is up
            except OSError:
                closed = True
            if closed:
                self._close_socket()
                sock = None
            else:
                sock.settimeout(self.timeout)
        if sock is None:
            sock = socket.create_connection(self.address, timeout=self.timeout)
            self._sock = sock
        return sock

    def _udp_socket(self) -> socket.socket:
        if self._sock is None:
            family = socket.getaddrinfo(self.address[0], self.address[1], type=socket.SOCK_DGRAM)[0][0]
            self._sock = socket.socket(family, socket.SOCK_DGRAM)
        return self._sock

    def _close_socket(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _run(self) -> None:
        try:
            super()._run()
        finally:
            self._close_socket()  # the thread owns the socket; it ends with it
