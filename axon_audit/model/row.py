"""The row tuple: the layout shared by the logger's buffer, `AuditEvent` and the schema module.

A row is a plain tuple, indexed by the ``R_*`` positions below; no object per
event is made for it. The positions are `Final` so a type checker gives
``row[R_OP]`` its own type (`OperationType`), not the union of all fields.
``seq``/``node`` make the id of a logged event (``seq`` is -1 where the event
carries an explicit id instead).
"""

from __future__ import annotations

from typing import Final

from axon_audit.model.enums import EventStatus, OperationType

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
    OperationType,  # R_OP
    str | None,  # R_USER
    str | None,  # R_SESSION
    tuple[str, ...],  # R_ENTRIES
    str | None,  # R_META: compact JSON text, None for no metadata
    EventStatus,  # R_STATUS
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
