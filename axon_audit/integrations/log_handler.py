"""The stdlib `logging` bridge: `AuditLogHandler` turns log records that carry
audit fields (``extra={"operation": …}``) into audit events."""

from __future__ import annotations

import logging
from typing import Any

from axon_audit.exceptions import AuditTypeError
from axon_audit.integrations.hooks import current_audit_context
from axon_audit.model.coerce import coerce_status
from axon_audit.model.enums import EventStatus

__all__ = ["AuditLogHandler"]

# Attribute names a log record may carry (from `extra=`) that become audit fields.
_RECORD_FIELDS = ("operation", "user_id", "session_id", "entry_ids", "metadata", "status",
                  "error_message", "duration_ms")


class AuditLogHandler(logging.Handler):
    """A `logging.Handler` that turns log records carrying audit fields into audit events.

    A record is an audit record when it has an `operation` attribute (pass it
    with ``extra={"operation": "STORE", "user_id": …, "entry_ids": […],
    "duration_ms": …, "metadata": {…}}``; structlog's stdlib integration does
    the same with its event dict). Other records are ignored, so the handler can
    sit on a logger that also carries ordinary logs. Missing `user_id` /
    `session_id` come from `audit_context`. The status is the record's `status`,
    else FAILURE for ERROR and above, else SUCCESS; a FAILURE without an
    `error_message` gets the log message (and the exception, if any). The
    metadata gains the logger name and the message.

    A record with bad audit fields is reported through `logging`'s usual
    `handleError` (the application keeps running) and logs nothing.

    Example:
        >>> import logging
        >>> from axon_audit import AuditLogger, AuditLogHandler
        >>> audit = AuditLogger()
        >>> app_log = logging.getLogger("myapp.memory")
        >>> app_log.addHandler(AuditLogHandler(audit))
        >>> app_log.warning("stored note", extra={"operation": "STORE", "user_id": "user_123",
        ...                                        "entry_ids": ["entry_1"], "duration_ms": 3.5})
        >>> app_log.warning("no audit fields here")
        >>> [(e.operation.value, e.user_id, e.metadata["message"]) for e in audit.query_events()]
        [('STORE', 'user_123', 'stored note')]
    """

    def __init__(self, audit_logger: Any, level: int | str = logging.NOTSET) -> None:
        if not (hasattr(audit_logger, "log") and hasattr(audit_logger, "query_events")):
            raise AuditTypeError(f"audit_logger must be an AuditLogger, got {type(audit_logger).__name__}")
        super().__init__(level)
        self.audit_logger = audit_logger

    def emit(self, record: logging.LogRecord) -> None:
        fields = record.__dict__
        if fields.get("operation") is None:
            return
        try:
            message = record.getMessage()
            status = fields.get("status")
            if status is None:
                status = EventStatus.FAILURE if record.levelno >= logging.ERROR else EventStatus.SUCCESS
            status = coerce_status(status)
            error = fields.get("error_message")
            if error is None and status is EventStatus.FAILURE:
                error = message
                if record.exc_info and record.exc_info[1] is not None:
                    exc = record.exc_info[1]
                    error = f"{message} ({type(exc).__name__}: {exc})"
            metadata = dict(fields.get("metadata") or {})
            user, session = current_audit_context()
            metadata.setdefault("logger", record.name)
            metadata.setdefault("message", message)
            self.audit_logger.log(
                fields["operation"],
                fields.get("user_id") or user,
                fields.get("session_id") or session,
                fields.get("entry_ids"),
                metadata,
                status,
                error,
                fields.get("duration_ms"),
            )
        except Exception:  # noqa: BLE001 - logging's contract: report, never raise into the app
            self.handleError(record)
