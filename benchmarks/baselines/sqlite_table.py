"""Baseline 2: stdlib sqlite3, one table indexed on user, operation and time.

A file database (WAL, synchronous=NORMAL); single events are inserted one
statement at a time and committed every `COMMIT_EVERY` events; bulk ingest is
`executemany` in one transaction. Entry ids and metadata are JSON text; the
entry-id lookup uses a LIKE on the quoted id (no index can serve it).
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from . import OPERATIONS, STATUSES, Backend, quantile, user_stats_from

COMMIT_EVERY = 1000
_COLS = "event_id, ts_us, operation, user_id, session_id, entry_ids, metadata, status, error_message, duration_ms"
_INSERT = f"INSERT INTO events ({_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)"


def _iso(us: int | None) -> str | None:
    if us is None:
        return None
    seconds = datetime.fromtimestamp(us // 1_000_000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return seconds + f".{us % 1_000_000:06d}Z"


class SqliteLogger(Backend):
    name = "sqlite"
    label = "sqlite3 (indexed table)"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.path = self.workdir / f"audit-{time.time_ns()}.db"
        self.db = sqlite3.connect(self.path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(
            "CREATE TABLE events (event_id TEXT NOT NULL, ts_us INTEGER NOT NULL, operation TEXT NOT NULL, "
            "user_id TEXT, session_id TEXT, entry_ids TEXT, metadata TEXT, status TEXT NOT NULL, "
            "error_message TEXT, duration_ms REAL)"
        )
        self.db.execute("CREATE INDEX ix_user ON events(user_id)")
        self.db.execute("CREATE INDEX ix_op ON events(operation)")
        self.db.execute("CREATE INDEX ix_ts ON events(ts_us)")
        self.db.commit()
        self._pending = 0
        self._seq = itertools.count()

    def prepare(self, df: pl.DataFrame) -> list[tuple]:
        return df.select(
            pl.format("evt_{}", pl.int_range(0, pl.len())),
            pl.col("timestamp").dt.epoch("us"),
            "operation", "user_id", "session_id",
            pl.col("entry_ids").map_elements(lambda v: json.dumps(list(v)), return_dtype=pl.String),
            "metadata", "status", "error_message", "duration_ms",
        ).rows()

    def ingest(self, data: list[tuple]) -> None:
        with self.db:
            self.db.executemany(_INSERT, data)

    def log(self, call: dict[str, Any]) -> None:
        ts = time.time_ns() // 1000
        meta = call.get("metadata")
        entries = call.get("entry_ids")
        self.db.execute(_INSERT, (
            f"evt_{ts}{next(self._seq)}", ts, str(call["operation"]), call.get("user_id"), call.get("session_id"),
            json.dumps(list(entries)) if entries else "[]", json.dumps(meta) if meta else None,
            str(call.get("status") or "SUCCESS"), call.get("error_message"), call.get("duration_ms"),
        ))
        self._pending += 1
        if self._pending >= COMMIT_EVERY:
            self.db.commit()
            self._pending = 0

    def _flush(self) -> None:
        if self._pending:
            self.db.commit()
            self._pending = 0

    def query(self, user_id: str, operation: str, start: datetime, limit: int | None = None) -> list:
        self._flush()
        start_us = int(start.timestamp() * 1_000_000)
        return self.db.execute(
            f"SELECT {_COLS} FROM events WHERE user_id = ? AND operation = ? AND ts_us >= ? "
            "ORDER BY ts_us DESC LIMIT ?", (user_id, operation, start_us, -1 if limit is None else limit)
        ).fetchall()

    def query_user(self, user_id: str, limit: int) -> list:
        self._flush()
        return self.db.execute(
            f"SELECT {_COLS} FROM events WHERE user_id = ? ORDER BY ts_us DESC LIMIT ?", (user_id, limit)
        ).fetchall()

    def lookup(self, entry_id: str) -> list:
        self._flush()
        return self.db.execute(
            f"SELECT {_COLS} FROM events WHERE entry_ids LIKE ?", (f'%"{entry_id}"%',)
        ).fetchall()

    def _stats(self, where: str, args: tuple) -> dict[str, Any]:
        self._flush()
        db = self.db
        by_op = dict.fromkeys(OPERATIONS, 0)
        by_status = dict.fromkeys(STATUSES, 0)
        for op, st, n in db.execute(f"SELECT operation, status, count(*) FROM events {where} GROUP BY 1, 2", args):
            by_op[op] += n
            by_status[st] += n
        total = sum(by_op.values())
        avg, mx, users, sessions, first, last = db.execute(
            f"SELECT avg(duration_ms), max(duration_ms), count(DISTINCT user_id), count(DISTINCT session_id), "
            f"min(ts_us), max(ts_us) FROM events {where}", args).fetchone()
        # sqlite has no percentile function: sort the durations in SQL, pick in Python.
        durations = [d for (d,) in db.execute(
            f"SELECT duration_ms FROM events {where} {'AND' if where else 'WHERE'} duration_ms IS NOT NULL "
            "ORDER BY duration_ms", args)]
        return {
            "total_events": total,
            "success_rate": by_status["SUCCESS"] / total if total else 1.0,
            "failure_count": by_status["FAILURE"],
            "avg_duration_ms": avg or 0.0,
            "p50_duration_ms": quantile(durations, 0.5),
            "p95_duration_ms": quantile(durations, 0.95),
            "p99_duration_ms": quantile(durations, 0.99),
            "max_duration_ms": mx or 0.0,
            "by_operation": by_op,
            "by_status": by_status,
            "unique_users": users,
            "unique_sessions": sessions,
            "first_event": _iso(first),
            "last_event": _iso(last),
        }

    def statistics(self) -> dict[str, Any]:
        return self._stats("", ())

    def user_statistics(self, user_id: str) -> dict[str, Any]:
        s = self._stats("WHERE user_id = ?", (user_id,))
        return user_stats_from(user_id, s)

    def export_json(self, path: Path) -> int:
        self._flush()
        events = []
        for eid, ts, op, user, session, entries, meta, st, err, dur in self.db.execute(
                f"SELECT {_COLS} FROM events ORDER BY ts_us, rowid"):
            events.append({
                "event_id": eid, "timestamp": _iso(ts), "operation": op, "user_id": user, "session_id": session,
                "entry_ids": json.loads(entries) if entries else [], "metadata": json.loads(meta) if meta else {},
                "status": st, "error_message": err, "duration_ms": dur,
            })
        doc = {"events": events, "total_events": len(events), "exported_at": _iso(time.time_ns() // 1000)}
        with open(path, "w") as fh:
            json.dump(doc, fh)
        return len(events)

    def disk_bytes(self) -> int | None:
        self._flush()
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*"))

    def close(self) -> None:
        self.db.close()
        for p in self.path.parent.glob(self.path.name + "*"):
            p.unlink()
