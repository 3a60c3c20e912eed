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

# One sorted block; `__all__` below groups the names by concern.
from axon_audit.compliance.erasure import ErasureResult, erase_subject
from axon_audit.compliance.monitor import Alert, Alerts, MonitorThresholds, SecurityMonitor
from axon_audit.compliance.pii import DEFAULT_DETECTORS, Detector, PIIRedactor, luhn_valid
from axon_audit.compliance.report import ComplianceReport, compliance_report, month_period
from axon_audit.compliance.retention import RetentionResult, apply_retention
from axon_audit.compliance.subject_access import SubjectAccessReport, subject_access_report
from axon_audit.exceptions import (
    ArchiveError,
    AuditError,
    AuditTypeError,
    AuditUnavailableError,
    AuditValueError,
    ExportError,
    IntegrityError,
)
from axon_audit.integrations.hooks import audit_context, audit_note, audited, current_audit_context
from axon_audit.integrations.log_handler import AuditLogHandler
from axon_audit.integrations.memory import MemoryConfig, MemoryEntry, MemorySystem
from axon_audit.integrity.checkpoint import Checkpoint, SigningKey, VerifierKey
from axon_audit.integrity.proofs import ProofError, prove, prove_consistency, verify_consistency, verify_inclusion
from axon_audit.integrity.repair import repair_global_log
from axon_audit.integrity.verify import VerifyResult, verify
from axon_audit.io.legacy import load_axon_export
from axon_audit.model.enums import EventStatus, OperationType
from axon_audit.model.event import AuditEvent
from axon_audit.model.schema import ARROW_SCHEMA, COLUMNS
from axon_audit.read.archive import AuditArchive, open_archive
from axon_audit.read.lake import scan_lake
from axon_audit.read.live_tail import follow_log
from axon_audit.write.logger import AuditLogger
from axon_audit.write.migrate import ImportResult, import_axon_export
from axon_audit.write.subscription import Subscription

__all__ = [  # noqa: RUF022 - grouped by concern, not sorted
    # logging and the event model
    "AuditLogger",
    "Subscription",
    "AuditEvent",
    "EventStatus",
    "OperationType",
    "ARROW_SCHEMA",
    "COLUMNS",
    # reading exports
    "AuditArchive",
    "open_archive",
    "scan_lake",
    "follow_log",
    # migrating from Axon's AuditLogger
    "load_axon_export",
    "import_axon_export",
    "ImportResult",
    # integrity
    "VerifyResult",
    "verify",
    "repair_global_log",
    "SigningKey",
    "VerifierKey",
    "Checkpoint",
    "prove",
    "verify_inclusion",
    "prove_consistency",
    "verify_consistency",
    "ProofError",
    "IntegrityError",
    # compliance
    "ComplianceReport",
    "compliance_report",
    "month_period",
    "Alert",
    "Alerts",
    "MonitorThresholds",
    "SecurityMonitor",
    "ErasureResult",
    "SubjectAccessReport",
    "erase_subject",
    "subject_access_report",
    "RetentionResult",
    "apply_retention",
    "DEFAULT_DETECTORS",
    "Detector",
    "PIIRedactor",
    "luhn_valid",
    # integrations
    "MemoryConfig",
    "MemoryEntry",
    "MemorySystem",
    "AuditLogHandler",
    "audit_context",
    "audit_note",
    "audited",
    "current_audit_context",
    # errors
    "AuditError",
    "AuditValueError",
    "AuditTypeError",
    "AuditUnavailableError",
    "ExportError",
    "ArchiveError",
]

__version__ = "0.1.0"
