"""Baseline 3: JSON lines written through stdlib `logging`, queried by scanning.

A `logging.FileHandler` with a bare "%(message)s" format writes one
`json.dumps` object per event (the handler flushes every record, as it does by
default). Every read opens the file and parses every line.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from . import OPERATIONS, STATUSES, Backend, quantile, user_stats_from


def _iso(us: int) -> str:
    seconds = datetime.fromtimestamp(us // 1_000_000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return seconds + f".{us % 1_000_000:06d}Z"


class JsonLinesLogger(Backend):
    name = "jsonl"
    label = "JSON lines (logging)"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.path = self.workdir / f"audit-{time.time_ns()}.jsonl"
        self.logger = logging.getLogger(f"bench.audit.{self.path.stem}")
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        self.handler = logging.FileHandler(self.path, encoding="utf-8")
        self.handler.setFormatter(logging.Formatter("%(message)s"))
        self.logger.addHandler(self.handler)
        self._seq = itertools.count()

    def prepare(self, df: pl.DataFrame) -> list[dict[str, Any]]:
        out = df.with_columns(pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")).to_dicts()
        for i, r in enumerate(out):
            r["metadata"] = json.loads(r["metadata"]) if r["metadata"] else {}
            r = {"event_id": f"evt_{i}", **r}
            out[i] = r
        return out

    def ingest(self, data: list[dict[str, Any]]) -> None:
        info, dumps = self.logger.info, json.dumps
        for record in data:
            info(dumps(record))

    def log(self, call: dict[str, Any]) -> None:
        ts = time.time_ns() // 1000
        record = {"event_id": f"evt_{ts}{next(self._seq)}", "timestamp": _iso(ts), **call}
        record["operation"] = str(record["operation"])
        record["status"] = str(record.get("status") or "SUCCESS")
        record["entry_ids"] = list(call.get("entry_ids") or [])
        record["metadata"] = call.get("metadata") or {}
        self.logger.info(json.dumps(record))

    def _scan(self) -> Iterator[dict[str, Any]]:
        self.handler.flush()
        loads = json.loads
        with open(self.path, encoding="utf-8") as fh:
            for line in fh:
                yield loads(line)

    def query(self, user_id: str, operation: str, start: datetime, limit: int | None = None) -> list:
        since = start.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # ISO strings sort as times
        out = [e for e in self._scan()
               if e["user_id"] == user_id and e["operation"] == operation and e["timestamp"] >= since]
        out.reverse()  # the file is in time order
        return out[:limit] if limit is not None else out

    def query_user(self, user_id: str, limit: int) -> list:
        out = [e for e in self._scan() if e["user_id"] == user_id]
        out.reverse()
        return out[:limit]

    def lookup(self, entry_id: str) -> list:
        return [e for e in self._scan() if entry_id in e["entry_ids"]]

    def _stats(self, events: Iterator[dict[str, Any]]) -> dict[str, Any]:
        by_op: Counter = Counter()
        by_status: Counter = Counter()
        durations: list[float] = []
        users, sessions = set(), set()
        first = last = None
        for e in events:
            by_op[e["operation"]] += 1
            by_status[e["status"]] += 1
            if e["duration_ms"] is not None:
                durations.append(e["duration_ms"])
            users.add(e["user_id"])
            sessions.add(e["session_id"])
            ts = e["timestamp"]
            first = ts if first is None or ts < first else first
            last = ts if last is None or ts > last else last
        users.discard(None)
        sessions.discard(None)
        durations.sort()
        total = sum(by_op.values())
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
            "unique_users": len(users),
            "unique_sessions": len(sessions),
            "first_event": first,
            "last_event": last,
        }

    def statistics(self) -> dict[str, Any]:
        return self._stats(self._scan())

    def user_statistics(self, user_id: str) -> dict[str, Any]:
        s = self._stats(e for e in self._scan() if e["user_id"] == user_id)
        return user_stats_from(user_id, s)

    def export_json(self, path: Path) -> int:
        events = list(self._scan())
        doc = {"events": events, "total_events": len(events), "exported_at": _iso(time.time_ns() // 1000)}
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(doc, fh)
        return len(events)

    def disk_bytes(self) -> int | None:
        self.handler.flush()
        return self.path.stat().st_size

    def close(self) -> None:
        self.logger.removeHandler(self.handler)
        self.handler.close()
        self.path.unlink(missing_ok=True)
