"""What was done and how it went: the `OperationType` and `EventStatus` enums.

They sit below every other model module (the row layout, the coercions and
`AuditEvent` all name them), so this module imports nothing of the package.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

__all__ = ["OPERATIONS", "STATUSES", "EventStatus", "OperationType"]


class _CaseInsensitiveStrEnum(str, Enum):
    @classmethod
    def _missing_(cls, value: object) -> Any:
        if isinstance(value, str):
            return cls.__members__.get(value.strip().upper())
        return None

    def __str__(self) -> str:  # "STORE", not "OperationType.STORE"
        return self.value


class OperationType(_CaseInsensitiveStrEnum):
    """What was done. Values are the upper-case names; lookup ignores case.

    Example:
        >>> from axon_audit import OperationType
        >>> OperationType("store") is OperationType.STORE
        True
        >>> OperationType.RECALL.value
        'RECALL'
    """

    STORE = "STORE"
    RECALL = "RECALL"
    FORGET = "FORGET"
    COMPACT = "COMPACT"
    EXPORT = "EXPORT"
    IMPORT = "IMPORT"
    BULK_STORE = "BULK_STORE"
    REINDEX = "REINDEX"


class EventStatus(_CaseInsensitiveStrEnum):
    """How it went. Values are the upper-case names; lookup ignores case.

    Example:
        >>> from axon_audit import EventStatus
        >>> EventStatus("failure") is EventStatus.FAILURE
        True
    """

    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    PARTIAL = "PARTIAL"


OPERATIONS: tuple[str, ...] = tuple(m.value for m in OperationType)
STATUSES: tuple[str, ...] = tuple(m.value for m in EventStatus)
