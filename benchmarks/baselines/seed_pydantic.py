"""Baseline 1: the design the seed document describes.

One pydantic `AuditEvent` per event (uuid event id, `datetime.now()`), kept in a
Python list behind an `asyncio.Lock`; filters are list comprehensions, statistics
iterate the list, export is `json.dump` of `model_dump(mode="json")` dicts. This
is how the seed's own figures (1-5 ms per event in its system, ~1 KB per event,
O(n) queries) arise.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import BaseModel, Field

from . import OPERATIONS, STATUSES, Backend, quantile, user_stats_from


class OperationType(str, Enum):
    STORE = "STORE"
    RECALL = "RECALL"
    FORGET = "FORGET"
    COMPACT = "COMPACT"
    EXPORT = "EXPORT"
    IMPORT = "IMPORT"
    BULK_STORE = "BULK_STORE"
    REINDEX = "REINDEX"


class EventStatus(str, Enum):
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    PARTIAL = "PARTIAL"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _event_id() -> str:
    return f"evt_{uuid.uuid4().hex[:12]}"


class AuditEvent(BaseModel):
    event_id: str = Field(default_factory=_event_id)
    timestamp: datetime = Field(default_factory=_now)
    operation: OperationType
    user_id: str | None = None
    session_id: str | None = None
    entry_ids: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    status: EventStatus = EventStatus.SUCCESS
    error_message: str | None = None
    duration_ms: float | None = None


class SeedLogger(Backend):
    name = "seed"
    label = "seed design (pydantic list)"

    def __init__(self, workdir: Path, max_events: int = 1 << 40) -> None:
        super().__init__(workdir)
        self.events: list[AuditEvent] = []
        self.max_events = max_events
        self._lock = asyncio.Lock()

    def prepare(self, df: pl.DataFrame) -> list[dict[str, Any]]:
        import orjson

        out = df.to_dicts()
        for r in out:
            r["metadata"] = orjson.loads(r["metadata"]) if r["metadata"] else {}
        return out

    def ingest(self, data: list[dict[str, Any]]) -> None:
        append = self.events.append
        for d in data:
            append(AuditEvent(**d))

    def _rotate(self) -> None:
        if len(self.events) > self.max_events:
            self.events = self.events[-self.max_events // 2:]

    def log(self, call: dict[str, Any]) -> None:
        self.events.append(AuditEvent(**call))
        self._rotate()

    async def log_event(self, call: dict[str, Any]) -> None:
        event = AuditEvent(**call)
        async with self._lock:
            self.events.append(event)
            self._rotate()

    def query(self, user_id: str, operation: str, start: datetime, limit: int | None = None) -> list:
        op = OperationType(operation)
        out = [e for e in self.events if e.user_id == user_id and e.operation == op and e.timestamp >= start]
        out.sort(key=lambda e: e.timestamp, reverse=True)
        return out[:limit] if limit is not None else out

    def query_user(self, user_id: str, limit: int) -> list:
        out = [e for e in self.events if e.user_id == user_id]
        out.sort(key=lambda e: e.timestamp, reverse=True)
        return out[:limit]

    def lookup(self, entry_id: str) -> list:
        return [e for e in self.events if entry_id in e.entry_ids]

    def _stats(self, events: list[AuditEvent]) -> dict[str, Any]:
        by_op = Counter(e.operation.value for e in events)
        by_status = Counter(e.status.value for e in events)
        durations = sorted(e.duration_ms for e in events if e.duration_ms is not None)
        total = len(events)
        return {
            "total_events": total,
            "success_rate": by_status["SUCCESS"] / total if total else 1.0,
            "failure_count": by_status["FAILURE"],
            "avg_duration_ms": sum(durations) / len(durations) if durations else 0.0,
            "p50_duration_ms": quantile(durations, 0.5),
            "p95_duration_ms": quantile(durations, 0.95),
            "p99_duration_ms": quantile(durations, 0.99),
            "max_duration_ms": durations[-1] if durations else 0.0,
            "by_operation": {op: by_op[op] for op in OPERATIONS},
            "by_status": {s: by_status[s] for s in STATUSES},
            "unique_users": len({e.user_id for e in events if e.user_id is not None}),
            "unique_sessions": len({e.session_id for e in events if e.session_id is not None}),
            "first_event": min((e.timestamp for e in events), default=None),
            "last_event": max((e.timestamp for e in events), default=None),
        }

    def statistics(self) -> dict[str, Any]:
        return self._stats(self.events)

    def user_statistics(self, user_id: str) -> dict[str, Any]:
        events = [e for e in self.events if e.user_id == user_id]
        s = self._stats(events)
        return user_stats_from(user_id, s)

    def export_json(self, path: Path) -> int:
        events = self.events
        doc = {
            "events": [e.model_dump(mode="json") for e in events],
            "total_events": len(events),
            "exported_at": _now().isoformat().replace("+00:00", "Z"),
        }
        with open(path, "w") as fh:
            json.dump(doc, fh, indent=2)
        return len(events)

    def close(self) -> None:
        self.events = []
