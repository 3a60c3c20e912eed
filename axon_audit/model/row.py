"""The row tuple: the layout shared by the logger's buffer, `AuditEvent` and the schema module.

A row is a plain tuple, indexed by the ``R_*`` positions below; no object per
event is made for it. The positions are `Final` so a type checker gives
``row[R_OP]`` its own type, not the union of all fields.
``seq``/``node`` make the id of a logged event (``seq`` is -1 where the event
carries an explicit id instead).

``operation`` and ``status`` are held as the enum's plain `str` value ("STORE",
"SUCCESS"), not the member: a tuple of ints, strs, floats and None is untracked by
the cyclic garbage collector at its first collection, and one holding enum
members (tracked objects) is not. With members, every buffered row was promoted
to the oldest generation and full collections ran every ~35 K events: ~0.5 µs of
each `log_event` (measured, `gc.callbacks`). `AuditEvent` gives the members back.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "R_DURATION",
    "R_ENTRIES",
    "R_ERROR",
    "R_META",
    "R_NODE",
    "R_OP",
    "R_SEQ",
    "R_SESSION",
    "R_STATUS",
    "R_TS",
    "R_USER",
    "Row",
]

# (ts_us, seq, node, operation, user_id, session_id, entry_ids, metadata_json, status,
#  error_message, duration_ms)
Row = tuple[
    int,  # R_TS: microseconds since the epoch, UTC
    int,  # R_SEQ
    str,  # R_NODE
    str,  # R_OP: an OperationType's value
    str | None,  # R_USER
    str | None,  # R_SESSION
    tuple[str, ...],  # R_ENTRIES
    str | None,  # R_META: compact JSON text, None for no metadata
    str,  # R_STATUS: an EventStatus's value
    str | None,  # R_ERROR
    float | None,  # R_DURATION
]

R_TS: Final = 0
R_SEQ: Final = 1
R_NODE: Final = 2
R_OP: Final = 3
R_USER: Final = 4
R_SESSION: Final = 5
R_ENTRIES: Final = 6
R_META: Final = 7
R_STATUS: Final = 8
R_ERROR: Final = 9
R_DURATION: Final = 10
