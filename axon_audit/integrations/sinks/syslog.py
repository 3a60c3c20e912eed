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
TCP for evidence that must arrive); a message longer than `UDP_MAX` bytes (a huge
error message) is cut to fit a datagram and counted in `truncated` (the logged
event itself is never changed).

Example:
    >>> from axon_audit import AuditLogger
    >>> from axon_audit.integrations.sinks import SyslogSink
    >>> sink = SyslogSink(AuditLogger(), ("127.0.0.1", 6514), transport="tcp", format="rfc5424")
    >>> sink.target(), sink.transport, sink.format
    ('syslog+tcp://127.0.0.1:6514', 'tcp', 'rfc5424')
"""

from __future__ import annotations

import functools
import os
import re
import socket
from typing import Any

import polars as pl

from axon_audit.exceptions import AuditValueError
from axon_audit.integrations.sinks.base import Sink

__all__ = ["SyslogSink", "frames", "syslog_messages", "unframe"]

FACILITY_LOG_AUDIT = 13
UDP_MAX = 65_000  # bytes: a datagram holds at most 65,507 (IPv4)
_SEVERITY = {"SUCCESS": 6, "PARTIAL": 4, "FAILURE": 3}  # syslog: info, warning, err
_CEF_SEVERITY = {"SUCCESS": 3, "PARTIAL": 5, "FAILURE": 7}
_SD_ESCAPE = {"\\": "\\\\", '"': '\\"', "]": "\\]"}
_CEF_HEADER_ESCAPE = {"\\": "\\\\", "|": "\\|", "\n": " ", "\r": " "}
_CEF_EXT_ESCAPE = {"\\": "\\\\", "=": "\\=", "\n": "\\n", "\r": "\\r"}
_NOT_PRINTABLE = r"[^\x21-\x7e]"  # header fields are PRINTUSASCII (RFC 5424, 6)


def _header_field(value: str | None, limit: int) -> str:
    """A header field: printable US-ASCII, at most `limit` characters, ``-`` when empty."""
    return re.sub(_NOT_PRINTABLE, "_", value or "")[:limit] or "-"


def _escaped(expr: pl.Expr, table: dict[str, str]) -> pl.Expr:
    # One pass (Aho-Corasick): a backslash put in by one replacement is not escaped again.
    return expr.str.replace_many(list(table), list(table.values()))


def _text(name: str) -> pl.Expr:
    return pl.col(name).cast(pl.String)


def _number(name: str) -> pl.Expr:
    """45.0 -> "45", 45.2 -> "45.2" (the shortest text that reads back as the same float)."""
    return _text(name).str.replace(r"\.0$", "")


def _pair(key: str, value: pl.Expr, quote: str = "") -> pl.Expr:
    """``key=value`` (null when the value is: left out of the message)."""
    return pl.concat_str([pl.lit(f"{key}={quote}"), value, pl.lit(quote)])


def _header(facility: int, hostname: str, procid: str) -> pl.Expr:
    """``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID`` (RFC 5424, 6.2)."""
    pri = _text("status").replace_strict(_SEVERITY, default=6, return_dtype=pl.Int64) + facility * 8
    msgid = _text("operation").str.replace_all(_NOT_PRINTABLE, "_").str.slice(0, 32)
    return pl.concat_str([
        pl.lit("<"), pri.cast(pl.String), pl.lit(">1 "), pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"),
        pl.lit(f" {hostname} axon_audit {procid} "),
        pl.when(msgid.fill_null("") == "").then(pl.lit("-")).otherwise(msgid)])


def _cef(version: str) -> pl.Expr:
    """The CEF record (RFC 5424 MSG; STRUCTURED-DATA is ``-``)."""
    op, status = _escaped(_text("operation"), _CEF_HEADER_ESCAPE), _text("status")
    severity = status.replace_strict(_CEF_SEVERITY, default=3, return_dtype=pl.Int64).cast(pl.String)
    head = pl.concat_str([pl.lit(f"CEF:0|axon_audit|axon_audit|{_cef_header_text(version)}|"), op, pl.lit("|"),
                          op, pl.lit(" "), status, pl.lit("|"), severity, pl.lit("|")])
    extension = pl.concat_str([
        _pair("rt", pl.col("timestamp").dt.epoch("ms").cast(pl.String)),
        _pair("suser", _escaped(_text("user_id"), _CEF_EXT_ESCAPE)),
        _pair("cs1Label", pl.when(pl.col("session_id").is_not_null()).then(pl.lit("session"))),
        _pair("cs1", _escaped(_text("session_id"), _CEF_EXT_ESCAPE)),
        _pair("externalId", _escaped(_text("event_id"), _CEF_EXT_ESCAPE)),
        _pair("outcome", status),
        _pair("cn1Label", pl.when(pl.col("duration_ms").is_not_null()).then(pl.lit("durationMs"))),
        _pair("cn1", _number("duration_ms")),
        _pair("msg", _escaped(_text("error_message"), _CEF_EXT_ESCAPE)),
    ], separator=" ", ignore_nulls=True)
    return pl.concat_str([pl.lit("- "), head, extension])


def _cef_header_text(text: str) -> str:
    for k, v in _CEF_HEADER_ESCAPE.items():
        text = text.replace(k, v)  # backslash first (dicts keep order): later escapes are not doubled
    return text


def _structured_data() -> pl.Expr:
    """``[audit@32473 …]`` and MSG (``<operation> <status>[: <error message>]``)."""
    params = pl.concat_str([
        _pair(key, _escaped(value, _SD_ESCAPE), '"') for key, value in (
            ("eventId", _text("event_id")), ("userId", _text("user_id")), ("sessionId", _text("session_id")),
            ("status", _text("status")), ("durationMs", _number("duration_ms")))
    ], separator=" ", ignore_nulls=True)
    msg = pl.concat_str([_text("operation"), pl.lit(" "), _text("status"),
                         pl.concat_str([pl.lit(": "), pl.col("error_message")])], ignore_nulls=True)
    return pl.concat_str([pl.lit("[audit@32473 "), params, pl.lit("] "), msg])


def syslog_messages(batch: pl.DataFrame, format: str = "cef", *, hostname: str = "-", procid: str = "-",
                    facility: int = FACILITY_LOG_AUDIT, version: str | None = None) -> pl.Series:
    """The messages of one batch, in order (vectorized; the layouts are in the module's docstring).

    Example:
        >>> from axon_audit.model.schema import normalize_batch
        >>> df = normalize_batch([{"event_id": "evt_1", "timestamp": "2025-01-15T12:00:00Z", "operation": "forget",
        ...                        "user_id": "a=b", "status": "failure", "error_message": "x|y\\nz",
        ...                        "duration_ms": 3.0}])
        >>> print(syslog_messages(df, hostname="h", procid="7", version="0.1.0").item())
        <107>1 2025-01-15T12:00:00.000000Z h axon_audit 7 FORGET - CEF:0|axon_audit|axon_audit|0.1.0|FORGET|\
FORGET FAILURE|7|rt=1736942400000 suser=a\\=b externalId=evt_1 outcome=FAILURE cn1Label=durationMs cn1=3 \
msg=x|y\\nz
        >>> print(syslog_messages(df.with_columns(session_id=pl.lit('s"1]')), "rfc5424", hostname="h").item())
        <107>1 2025-01-15T12:00:00.000000Z h axon_audit - FORGET [audit@32473 eventId="evt_1" userId="a=b" \
sessionId="s\\"1\\]" status="FAILURE" durationMs="3"] FORGET FAILURE: x|y
        z
    """
    if format == "cef" and version is None:
        from axon_audit import __version__  # the package's own (the package imports this module late)

        version = __version__
    return batch.select(_message(format, hostname, procid, facility, version))[:, 0]


@functools.lru_cache(maxsize=64)
def _message(format: str, hostname: str, procid: str, facility: int, version: str | None) -> pl.Expr:
    """The message expression, built once per layout: building its ~3,000 Python calls per batch
    held the GIL on the sink's thread, which the loggers felt."""
    body = _cef(version or "") if format == "cef" else _structured_data()
    return pl.concat_str([_header(facility, hostname, procid), pl.lit(" "), body])


def frames(messages: pl.Series) -> bytes:
    """Octet-counting framing (RFC 6587, 3.4.1): ``<length in bytes> <message>`` each, back to back.

    Example:
        >>> frames(pl.Series(["<14>1 a", "é"]))
        b'7 <14>1 a2 \\xc3\\xa9'
    """
    framed = pl.concat_str([messages.str.len_bytes().cast(pl.String), pl.lit(" "), messages])
    return bytes(pl.select(framed.str.join("").cast(pl.Binary)).item())  # bytes at once: no str in between


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
    are not used). `truncated` counts UDP messages cut to fit a datagram.
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
        self.truncated = 0
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
                    if len(message) > UDP_MAX:  # would fail on every retry: the copy sent is cut instead
                        message = message[:UDP_MAX].decode(errors="ignore").encode()
                        self.truncated += 1
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
