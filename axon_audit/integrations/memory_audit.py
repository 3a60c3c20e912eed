"""What `MemorySystem` does the way Axon's does, for code migrating from Axon:
`export_audit_log` (the audit trail as dicts, and optionally as an export file)
and the attribution of a call from its `metadata` (`attribution`).

Axon's `MemorySystem.store(content, metadata={"user_id": ..., "session_id": ...})`
takes the user and session from the metadata; `attribution` gives the same
answer here, an explicit argument first.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from axon_audit.exceptions import AuditTypeError
from axon_audit.model.enums import EventStatus, OperationType

__all__ = ["AuditLogExport", "attribution"]


def attribution(user_id: str | None, session_id: str | None,
                metadata: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    """`(user_id, session_id)`: each as given, else the metadata's text value of that
    key (Axon's way), else None (then `audit_context` applies).

    Example:
        >>> from axon_audit.integrations.memory_audit import attribution
        >>> attribution(None, "s9", {"user_id": "user_123", "session_id": "session_abc"})
        ('user_123', 's9')
    """
    if isinstance(metadata, Mapping):
        if user_id is None and isinstance(metadata.get("user_id"), str):
            user_id = metadata["user_id"]
        if session_id is None and isinstance(metadata.get("session_id"), str):
            session_id = metadata["session_id"]
    return user_id, session_id


class AuditLogExport:
    """`export_audit_log`, mixed into `MemorySystem` (its `audit_logger`)."""

    audit_logger: Any

    async def export_audit_log(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        operation: OperationType | str | Iterable[OperationType | str] | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        status: EventStatus | str | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        include_archived: bool = False,
        force: bool = False,
    ) -> list[dict[str, Any]]:
        """The audit events matching the filters as dicts (newest first), as Axon's
        `export_audit_log` returns them; with `path`, also written there in the
        seed's export format (``{"events": [...], "total_events": n, ...}``, oldest
        first; an existing file only with `force`, never inside an export folder).
        Raises RuntimeError without an `audit_logger`, as Axon does.

        Example:
            >>> import asyncio, tempfile, pathlib
            >>> from axon_audit import AuditLogger, MemorySystem, open_archive
            >>> memory = MemorySystem(audit_logger=AuditLogger())
            >>> path = pathlib.Path(tempfile.mkdtemp()) / "audit_trail.json"
            >>> async def main():
            ...     await memory.store("data", metadata={"user_id": "user_123"})
            ...     return await memory.export_audit_log(path, user_id="user_123")
            >>> [e["operation"] for e in asyncio.run(main())]
            ['STORE']
            >>> [e.user_id for e in open_archive(path).query_events()]
            ['user_123']
        """
        logger = self.audit_logger
        if logger is None:
            raise RuntimeError("No audit logger configured. Initialize MemorySystem with audit_logger parameter.")
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise AuditTypeError(f"path must be a str or Path or None, got {type(path).__name__}")
        events = await logger.get_events(operation, user_id, session_id, status, start_time, end_time,
                                         include_archived=include_archived)
        if path is not None:
            logger.export_events(list(reversed(events)), Path(path), force=force)
        return [e.to_dict() for e in events]
