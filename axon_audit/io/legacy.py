"""Axon's own export files (the reference `AuditLogger` of the Axon memory system),
read as axon_audit events: `is_axon_export`, `axon_rows`, `load_axon_export`.

Axon's `export_to_json` writes a bare JSON list of `AuditEvent.to_dict()` objects,
not the seed's ``{"events": [...]}`` document: UUID event ids, lower-case enum
values ("store", "success") and timestamps from ``datetime.utcnow()``, which are
naive ISO text ("2025-01-15T10:30:45.123456"). Those naive times are UTC, so they
are read as UTC here, explicitly: whatever rule applies to naive times elsewhere,
a legacy file is its documented exception. Ids and every other value are kept as
they are; the optional fields may be missing (None, [] or {} as in Axon).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson

from axon_audit.exceptions import ArchiveError, AuditTypeError

__all__ = ["FIELDS", "axon_rows", "is_axon_export", "load_axon_export"]

FIELDS = ("event_id", "timestamp", "operation", "user_id", "session_id", "entry_ids", "metadata", "status",
          "error_message", "duration_ms")
# A zone at the end of an ISO time: Z, or an offset like +00:00 / -0500.
_ZONE = re.compile(r"(?:[Zz]|[+-]\d{2}(?::?\d{2}(?::?\d{2}(?:\.\d+)?)?)?)$")


def is_axon_export(doc: Any) -> bool:
    """Whether a parsed JSON document is Axon's bare list of event objects.

    Example:
        >>> from axon_audit.io.legacy import is_axon_export
        >>> is_axon_export([{"operation": "store"}]), is_axon_export({"events": []}), is_axon_export([1])
        (True, False, False)
    """
    return isinstance(doc, list) and all(isinstance(e, dict) for e in doc)


def _utc_text(value: Any) -> Any:
    """A naive time as UTC (Axon stamped with utcnow); a zoned one as given."""
    if isinstance(value, str):
        text = value.strip()
        # A date alone has no time part to carry a zone: it is midnight UTC.
        if "T" not in text and " " not in text:
            return f"{text}T00:00:00+00:00" if len(text) == 10 else value
        return text if _ZONE.search(text.split("T", 1)[-1].split(" ", 1)[-1]) else f"{text}+00:00"
    if isinstance(value, datetime) and (value.tzinfo is None or value.utcoffset() is None):
        return value.replace(tzinfo=timezone.utc)
    return value


def _plain(value: Any) -> Any:
    # Axon's pydantic model holds UUIDs and its own enums; the rows hold their text.
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    return value


def axon_rows(events: list[Any], where: str = "events") -> list[dict[str, Any]]:
    """Axon's event objects (dicts, or Axon's pydantic `AuditEvent`s) as rows for
    `log_batch` / the archive: naive times made UTC, UUIDs and enum members as
    their text, unknown keys left out. Raises `ArchiveError` naming `where` for an
    event with no operation, id or time (nothing to invent for evidence).

    Example:
        >>> from axon_audit.io.legacy import axon_rows
        >>> row = axon_rows([{"event_id": "3f0c6c1e-0000-4000-8000-000000000001", "operation": "store",
        ...                   "timestamp": "2025-01-15T10:30:45.123456", "status": "success"}])[0]
        >>> row["timestamp"], row["operation"], row["entry_ids"]
        ('2025-01-15T10:30:45.123456+00:00', 'store', None)
    """
    rows: list[dict[str, Any]] = []
    for i, event in enumerate(events):
        if not isinstance(event, dict):
            if not hasattr(event, "operation"):
                raise AuditTypeError(f"{where}[{i}] must be an event object, got {type(event).__name__}")
            event = {f: getattr(event, f, None) for f in FIELDS}
        missing = [f for f in ("event_id", "timestamp", "operation") if event.get(f) in (None, "")]
        if missing:
            raise ArchiveError(f"{where}[{i}] has no {' or '.join(missing)}")
        row = {f: _plain(event.get(f)) for f in FIELDS}
        row["timestamp"] = _utc_text(row["timestamp"])
        rows.append(row)
    return rows


def load_axon_export(path: str | Path) -> list[dict[str, Any]]:
    """The events of an Axon export file as rows for `AuditLogger.log_batch`: its
    bare list (naive times as UTC), or a seed-format ``{"events": [...]}`` document
    (taken as written). Raises `ArchiveError` naming the file when it is neither.

    Example:
        >>> import json, tempfile, pathlib
        >>> from axon_audit import AuditLogger
        >>> from axon_audit.io.legacy import load_axon_export
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "legacy.json"
        >>> _ = path.write_text(json.dumps([{"event_id": "9b2e4c1a-5d6f-4a7b-8c9d-0e1f2a3b4c5d",
        ...     "timestamp": "2025-01-15T10:30:45.123456", "operation": "store", "status": "success"}]))
        >>> audit = AuditLogger()
        >>> audit.log_batch(load_axon_export(path))
        1
        >>> e = audit.query_events()[0]
        >>> e.event_id, e.timestamp.isoformat(), e.operation.value
        ('9b2e4c1a-5d6f-4a7b-8c9d-0e1f2a3b4c5d', '2025-01-15T10:30:45.123456+00:00', 'STORE')
    """
    p = Path(path)
    try:
        doc = orjson.loads(p.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ArchiveError(f"{p}: not a readable JSON export ({exc})") from None
    if is_axon_export(doc):
        return axon_rows(doc, f"{p}: events")
    if isinstance(doc, dict) and isinstance(doc.get("events"), list) and is_axon_export(doc["events"]):
        return [{f: e.get(f) for f in FIELDS} for e in doc["events"]]
    raise ArchiveError(f"{p}: neither Axon's export (a JSON list of events) nor an axon_audit JSON export")
