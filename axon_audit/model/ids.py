"""Event ids: the process-wide id source `IDS` and the ``evt_…`` text that sorts by time."""

from __future__ import annotations

import itertools
import os
import secrets

from axon_audit.exceptions import AuditValueError

__all__ = ["IDS", "ID_MAX_US", "ID_MIN_US", "id_time_text", "make_event_id"]

_ID_MOD = 100_000_000


class _IdSource:
    """Process-unique id parts: a random node (renewed after fork) and a counter.

    An event id is ``evt_`` + 16-digit UTC microseconds + 6 hex node + 8-digit
    sequence: it sorts by time, and is unique across processes and restarts.
    """

    def __init__(self) -> None:
        self.renew()

    def renew(self) -> None:
        self.node = secrets.token_hex(3)
        self.counter = itertools.count()


IDS = _IdSource()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=IDS.renew)


# Times before 1970 (negative µs) are written "-" + 15 digits of (µs + 10**15): "-"
# sorts before every digit and the digits grow with the time, so ids still sort
# by time back to 1938-04-24 (10**15 µs before 1970); earlier times are refused.
ID_MIN_US = -(10**15)
ID_MAX_US = 10**16 - 1  # 2286-11-20


def id_time_text(ts_us: int) -> str:
    """The 16 characters of an event id that give its time, sortable as text.

    Example:
        >>> from axon_audit.model.ids import id_time_text
        >>> id_time_text(1_736_937_045_123_456), id_time_text(-1)
        ('1736937045123456', '-999999999999999')
        >>> sorted([id_time_text(5), id_time_text(-5), id_time_text(-6)]) == [id_time_text(t) for t in (-6, -5, 5)]
        True
    """
    if not ID_MIN_US <= ts_us <= ID_MAX_US:
        raise AuditValueError(f"timestamp: {ts_us} µs since 1970 is outside the range event ids can sort "
                              "(1938-04-24 to 2286-11-20 UTC); pass an event_id or fix the time")
    return f"{ts_us:016d}" if ts_us >= 0 else f"-{ts_us - ID_MIN_US:015d}"


def make_event_id(ts_us: int, seq: int, node: str) -> str:
    if 0 <= ts_us <= ID_MAX_US:  # the common case, kept to one format call
        return f"evt_{ts_us:016d}{node}{seq % _ID_MOD:08d}"
    return f"evt_{id_time_text(ts_us)}{node}{seq % _ID_MOD:08d}"
