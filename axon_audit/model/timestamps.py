"""UTC time as integer microseconds since the Unix epoch: the one time form of a row.

Every stored timestamp lies in [`MIN_US`, `MAX_US`]: 0001-01-01T00:00:00Z to
9999-12-31T23:59:59.999999Z, the span a Python `datetime`, the export format's
ISO text and every reader (polars, pyarrow, DuckDB) can all hold. Bulk input is
checked against it at the door (`axon_audit.model.door`); a single
`AuditEvent(timestamp=...)` by `parse_timestamp`.

(Not named ``time``: a module shadowing the standard library's is a trap for
any tool that puts this folder on ``sys.path``.)
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from time import time_ns
from typing import Any

from axon_audit.exceptions import AuditTypeError, AuditValueError

__all__ = ["EPOCH", "MAX_US", "MIN_US", "UTC", "check_us", "format_us", "from_us", "now_us", "parse_timestamp",
           "to_us"]

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
MIN_US = -62_135_596_800_000_000  # 0001-01-01T00:00:00Z
MAX_US = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z
RANGE_TEXT = "0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z"


def now_us() -> int:
    """Microseconds since the Unix epoch, UTC."""
    return time_ns() // 1000


def to_us(value: datetime, argument: str = "timestamp") -> int:
    """Exact microseconds since the epoch. A naive datetime is local time, as
    `datetime.timestamp()` reads it; an aware one is taken as given."""
    if not isinstance(value, datetime):
        raise AuditTypeError(f"{argument} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        try:
            value = value.astimezone(UTC)  # interprets the naive value as local time
        except (OverflowError, ValueError):
            raise AuditValueError(f"{argument} {value} is outside {RANGE_TEXT}") from None
    return (value - EPOCH) // _ONE_US


def check_us(us: int, argument: str = "timestamp") -> int:
    """`us` if it is a storable time (`MIN_US` to `MAX_US`), else an error naming `argument`.

    Example:
        >>> from axon_audit.model.timestamps import MAX_US, check_us
        >>> check_us(MAX_US) == MAX_US
        True
        >>> check_us(MAX_US + 1)
        Traceback (most recent call last):
        ...
        axon_audit.exceptions.AuditValueError: timestamp is outside 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z
    """
    if not MIN_US <= us <= MAX_US:
        raise AuditValueError(f"{argument} is outside {RANGE_TEXT}")
    return us


def from_us(us: int) -> datetime:
    """The aware UTC datetime for microseconds since the epoch."""
    return EPOCH + timedelta(microseconds=us)


def format_us(us: int) -> str:
    """`2025-01-15T10:30:45.123456Z`, the export format's timestamp (4-digit year:
    `strftime("%Y")` would write year 5 as ``5``, which no ISO parser reads back).

    Example:
        >>> from axon_audit.model.timestamps import MIN_US, format_us
        >>> format_us(1_736_937_045_123_456), format_us(MIN_US)
        ('2025-01-15T10:30:45.123456Z', '0001-01-01T00:00:00.000000Z')
    """
    return from_us(us).isoformat(timespec="microseconds")[:-6] + "Z"


def parse_timestamp(value: Any, argument: str = "timestamp") -> int:
    """Microseconds from a datetime or an ISO 8601 string (`…Z` or with offset),
    refused (naming `argument`) outside `MIN_US`..`MAX_US`."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise AuditValueError(f"{argument} must be an ISO 8601 timestamp, got {value!r}") from None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)  # export files are UTC
    return check_us(to_us(value, argument), argument)
