"""The error hierarchy: one base, a few subclasses that also derive from the builtin."""

from __future__ import annotations

__all__ = [
    "ArchiveError",
    "AuditError",
    "AuditTypeError",
    "AuditUnavailableError",
    "AuditValueError",
    "ExportError",
    "IntegrityError",
]


class AuditError(Exception):
    """Base class of every error raised by axon_audit.

    Example:
        >>> import axon_audit
        >>> try:
        ...     axon_audit.AuditLogger(max_events=0)
        ... except axon_audit.AuditError as exc:
        ...     print(type(exc).__name__)
        AuditValueError
    """


class AuditValueError(AuditError, ValueError):
    """An argument has the right type but an unusable value (names the argument)."""


class AuditTypeError(AuditError, TypeError):
    """An argument has the wrong type (names the argument and what was expected)."""


class ExportError(AuditError, OSError):
    """Writing an export (JSON, Parquet) failed; the events stay in memory."""


class ArchiveError(AuditError, ValueError):
    """A file in an export folder cannot be read as audit data (names the file)."""


class IntegrityError(AuditError, ValueError):
    """Signed integrity data (a signed note, a checkpoint, a key string) is malformed
    or does not verify; the message names what is wrong."""


class AuditUnavailableError(AuditError, RuntimeError):
    """The logger refused (or could not make durable) an event: raised only under
    the caller's choice of `fail_closed=True` or `backlog_policy="raise"`."""
