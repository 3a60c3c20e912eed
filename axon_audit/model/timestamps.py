"""UTC time as integer microseconds since the Unix epoch: the one time form of a row.

(Not named ``time``: a module shadowing the standard library's is a trap for
any tool that puts this folder on ``sys.path``.)
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from time import time_ns
from typing import Any

from axon_audit.exceptions import AuditTypeError, AuditValueError

__all__ = ["EPOCH", "UTC", "format_us", "from_us", "now_us", "parse_timestamp", "to_us"]

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


def now_us() -> int:
    """Microseconds since the Unix epoch, UTC."""
    return time_ns() // 1000


def to_us(value: datetime, argument: str = "timestamp") -> int:
    """Exact microseconds since the epoch. A naive datetime is local time, as
    `datetime.timestamp()` reads it; an aware one is taken as given."""
    if not isinstance(value, datetime):
        raise AuditTypeError(f"{argument} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.astimezone(UTC)  # interprets the naive value as local time
    return (value - EPOCH) // _ONE_US


def from_us(us: int) -> datetime:
    """The aware UTC datetime for microseconds since the epoch."""
    return EPOCH + timedelta(microseconds=us)


def format_us(us: int) -> str:
    """`2025-01-15T10:30:45.123456Z`, the export format's timestamp."""
    return from_us(us).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(value: Any, argument: str = "timestamp") -> int:
    """Microseconds from a datetime or an ISO 8601 string (`…Z` or with offset)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise AuditValueError(f"{argument} must be an ISO 8601 timestamp, got {value!r}") from None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)  # export files are UTC
    return to_us(value, argument)
