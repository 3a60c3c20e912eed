"""An OpenTelemetry logs sink: the logger's events as OTLP/HTTP (protobuf) log records, in order, never lost.

Each batch is one ``ExportLogsServiceRequest`` POSTed to ``<endpoint>/v1/logs`` with
``Content-Type: application/x-protobuf`` and ``Idempotency-Key: <first id>..<last id>``
(same retries, ordering and outage rules as every sink: `axon_audit.integrations.sinks.base`).
It holds one ``ResourceLogs`` (resource attribute ``service.name``, plus any given in
`resource`), one ``ScopeLogs`` (scope ``axon_audit``, the package version) and one
``LogRecord`` per event:

=======================  ==========================================================
LogRecord field          from the event
=======================  ==========================================================
time_unix_nano           timestamp (µs × 1000)
observed_time_unix_nano  when the sink encoded the batch
body                     operation (string, e.g. ``"STORE"``)
severity_number / text   SUCCESS → INFO (9), PARTIAL → WARN (13), FAILURE → ERROR (17)
audit.event_id           event_id (string)
audit.operation          operation (string)
audit.status             status (string)
audit.user_id            user_id (string; left out when null)
audit.session_id         session_id (string; left out when null)
audit.duration_ms        duration_ms (double; left out when null)
audit.entry_ids          entry_ids (array of strings, ``[]`` when none)
audit.metadata           metadata as its compact JSON object text (``{}`` when none)
audit.error_message      error_message (string; left out when null)
=======================  ==========================================================

Needs the ``otlp`` extra (``pip install axon_audit[otlp]``: opentelemetry-proto and
protobuf); without it, `OTLPSink` says so when made.

Example:
    >>> from axon_audit import AuditLogger
    >>> from axon_audit.integrations.sinks import OTLPSink
    >>> sink = OTLPSink(AuditLogger(), "http://127.0.0.1:4318", service_name="memory-api")
    >>> sink.target()
    'http://127.0.0.1:4318/v1/logs'
"""

from __future__ import annotations

import logging
import time
from typing import Any

import polars as pl

from axon_audit.exceptions import AuditValueError
from axon_audit.integrations.sinks.base import Sink
from axon_audit.integrations.sinks.otlp_wire import logs_body

__all__ = ["OTLPSink", "logs_request", "request_head"]

_SEVERITY = {"SUCCESS": (9, "INFO"), "PARTIAL": (13, "WARN"), "FAILURE": (17, "ERROR")}


def _proto() -> Any:
    """The generated OTLP classes (imported here: opentelemetry-proto is an optional extra)."""
    try:
        from google.protobuf.message import DecodeError
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
        from opentelemetry.proto.common.v1 import common_pb2
        from opentelemetry.proto.logs.v1 import logs_pb2
        from opentelemetry.proto.resource.v1 import resource_pb2
    except ImportError as e:
        raise AuditValueError("OTLPSink needs opentelemetry-proto and protobuf: pip install 'axon_audit[otlp]'") from e
    return logs_service_pb2, common_pb2, logs_pb2, resource_pb2, DecodeError


def logs_request(batch: pl.DataFrame, service_name: str, resource: dict[str, str] | None = None) -> Any:
    """The ``ExportLogsServiceRequest`` of one batch (the mapping is in the module's docstring).

    Example:
        >>> from axon_audit.model.schema import normalize_batch
        >>> df = normalize_batch([{"event_id": "evt_1", "timestamp": "2025-01-15T12:00:00Z", "operation": "forget",
        ...                        "user_id": "u1", "entry_ids": ["e1"], "status": "failure"}])
        >>> rec = logs_request(df, "svc").resource_logs[0].scope_logs[0].log_records[0]
        >>> rec.body.string_value, rec.severity_text, rec.time_unix_nano
        ('FORGET', 'ERROR', 1736942400000000000)
        >>> {a.key: a.value.WhichOneof("value") for a in rec.attributes}["audit.entry_ids"]
        'array_value'
    """
    logs_service_pb2, common_pb2, logs_pb2, resource_pb2, _ = _proto()
    from axon_audit import __version__  # the package's own version, for the scope (the package imports this late)

    def text(key: str, value: str) -> Any:
        return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(string_value=value))

    # The columns as Python lists once (vectorized casts), then one record per event.
    cols = batch.select(
        pl.col("event_id"), pl.col("timestamp").dt.epoch("us"), pl.col("operation").cast(pl.String),
        pl.col("user_id").cast(pl.String), pl.col("session_id"), pl.col("entry_ids").fill_null([]),
        pl.col("metadata").fill_null("{}"), pl.col("status").cast(pl.String), pl.col("error_message"),
        pl.col("duration_ms"),
    )
    observed = time.time_ns()
    records = []
    for (event_id, ts_us, op, user, session, entries, meta, status, error, duration) in cols.iter_rows():
        number, severity = _SEVERITY.get(status, (9, "INFO"))
        attrs = [text("audit.event_id", event_id), text("audit.operation", op), text("audit.status", status)]
        if user is not None:
            attrs.append(text("audit.user_id", user))
        if session is not None:
            attrs.append(text("audit.session_id", session))
        if duration is not None:
            attrs.append(common_pb2.KeyValue(key="audit.duration_ms", value=common_pb2.AnyValue(double_value=duration)))
        entry_values = common_pb2.ArrayValue(values=[common_pb2.AnyValue(string_value=e) for e in entries])
        attrs.append(common_pb2.KeyValue(key="audit.entry_ids", value=common_pb2.AnyValue(array_value=entry_values)))
        attrs.append(text("audit.metadata", meta))
        if error is not None:
            attrs.append(text("audit.error_message", error))
        records.append(logs_pb2.LogRecord(
            time_unix_nano=ts_us * 1000, observed_time_unix_nano=observed, severity_number=number,
            severity_text=severity, body=common_pb2.AnyValue(string_value=op), attributes=attrs))
    res_attrs = [text("service.name", service_name)] + [text(k, v) for k, v in (resource or {}).items()]
    return logs_service_pb2.ExportLogsServiceRequest(resource_logs=[logs_pb2.ResourceLogs(
        resource=resource_pb2.Resource(attributes=res_attrs),
        scope_logs=[logs_pb2.ScopeLogs(scope=common_pb2.InstrumentationScope(name="axon_audit", version=__version__),
                                       log_records=records)])])


def request_head(service_name: str, resource: dict[str, str] | None = None) -> tuple[bytes, bytes]:
    """The serialized ``Resource`` and ``InstrumentationScope`` of every request (for `logs_body`)."""
    _, common_pb2, _, resource_pb2, _ = _proto()
    from axon_audit import __version__  # as in logs_request

    attrs = [common_pb2.KeyValue(key=k, value=common_pb2.AnyValue(string_value=v))
             for k, v in {"service.name": service_name, **(resource or {})}.items()]
    return (resource_pb2.Resource(attributes=attrs).SerializeToString(),
            common_pb2.InstrumentationScope(name="axon_audit", version=__version__).SerializeToString())


class OTLPSink(Sink):
    """Ships the matching events of `audit_logger` to an OTLP/HTTP logs `endpoint` (see the module).

    `endpoint` is the collector's base URL (``http://collector:4318``); requests go to
    ``<endpoint>/v1/logs``. `service_name` (default ``"axon_audit"``) and `resource`
    (more resource attributes) describe the source. Other keywords as `WebhookSink`.
    `rejected` counts records a collector refused in a partial success (not retried,
    as OTLP asks; logged as a WARNING).
    """

    kind = "otlp"

    def __init__(self, audit_logger: Any, endpoint: str, *, service_name: str = "axon_audit",
                 resource: dict[str, str] | None = None, **options: Any) -> None:
        _proto()  # fail now, with the fix, when the extra is missing
        if not isinstance(service_name, str) or not service_name:
            raise AuditValueError(f"service_name must be a non-empty string, got {service_name!r}")
        super().__init__(audit_logger, endpoint.rstrip("/") if isinstance(endpoint, str) else endpoint, **options)
        self.service_name = service_name
        self.resource = dict(resource or {})
        self.rejected = 0
        self._head: tuple[bytes, bytes] | None = None

    def target(self) -> str:
        return f"{self.url}/v1/logs"

    def encode(self, batch: pl.DataFrame, batch_id: str) -> tuple[bytes, str]:
        # The bytes of `logs_request(...).SerializeToString()`, written by one polars query (otlp_wire).
        if self._head is None:
            self._head = request_head(self.service_name, self.resource)
        return logs_body(batch, self._head, time.time_ns()), "application/x-protobuf"

    def check_answer(self, answer: bytes) -> str | None:
        if not answer:
            return None
        logs_service_pb2, *_, decode_error = _proto()
        try:
            response = logs_service_pb2.ExportLogsServiceResponse.FromString(answer)
        except decode_error:  # a 2xx with a body that is not a response (a JSON "ok") still accepts
            return None
        rejected = response.partial_success.rejected_log_records
        if rejected:
            self.rejected += rejected
            logging.getLogger("axon_audit").warning(
                "axon_audit: the OTLP collector at %s rejected %d log records: %s", self.target(), rejected,
                response.partial_success.error_message)
        return None
