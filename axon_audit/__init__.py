"""axon_audit: a columnar analytics engine for audit data.

Log audit events at high rate into an append buffer sealed into Arrow/polars
columns; query, aggregate and export them with polars and DuckDB; rotate them
into date-partitioned Parquet plus the JSON export format.

Example:
    >>> from axon_audit import AuditLogger, OperationType
    >>> audit = AuditLogger(max_events=10000)
    >>> _ = audit.log(OperationType.STORE, user_id="user_123", entry_ids=["entry_1"])
    >>> len(audit.query_events(user_id="user_123"))
    1
"""

from ._archive import AuditArchive, open_archive
from ._errors import ArchiveError, AuditError, AuditTypeError, AuditUnavailableError, AuditValueError, ExportError
from ._integrations import AuditLogHandler, audit_context, audit_note, audited, current_audit_context
from ._integrity import VerifyResult, verify
from ._compliance import ComplianceReport, compliance_report, month_period
from ._errors import ArchiveError, AuditError, AuditTypeError, AuditValueError, ExportError
from ._lake import scan_lake
from ._logger import AuditLogger
from ._memory import MemoryConfig, MemoryEntry, MemorySystem
from ._models import AuditEvent, EventStatus, OperationType
from ._gdpr import ErasureResult, SubjectAccessReport, erase_subject, subject_access_report
from ._retention import RetentionResult, apply_retention
from ._pii import DEFAULT_DETECTORS, Detector, PIIRedactor, luhn_valid
from ._monitor import Alert, Alerts, MonitorThresholds, SecurityMonitor
from ._schema import ARROW_SCHEMA, COLUMNS

__all__ = [
    "ARROW_SCHEMA",
    "COLUMNS",
    "DEFAULT_DETECTORS",
    "RetentionResult",
    "apply_retention",
    "ErasureResult",
    "SubjectAccessReport",
    "erase_subject",
    "subject_access_report",
    "Detector",
    "PIIRedactor",
    "luhn_valid",
    "Alert",
    "Alerts",
    "ComplianceReport",
    "MonitorThresholds",
    "SecurityMonitor",
    "compliance_report",
    "month_period",
    "ArchiveError",
    "AuditArchive",
    "AuditError",
    "AuditEvent",
    "AuditLogHandler",
    "AuditLogger",
    "AuditTypeError",
    "AuditUnavailableError",
    "AuditValueError",
    "EventStatus",
    "ExportError",
    "MemoryConfig",
    "MemoryEntry",
    "MemorySystem",
    "OperationType",
    "VerifyResult",
    "audit_context",
    "audit_note",
    "audited",
    "current_audit_context",
    "open_archive",
    "scan_lake",
    "verify",
]

__version__ = "0.1.0"
