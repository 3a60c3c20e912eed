"""Baseline 4: DuckDB used directly: an in-memory table fed with Arrow, SQL reads.

Bulk ingest inserts the Arrow table (`INSERT ... SELECT FROM` the registered
table, ids from `uuid()`); single events go to a Python list that is inserted as
one Arrow table every `FLUSH_ROWS` events (DuckDB's Python API has no appender,
and one INSERT per event costs ~100 us). Reads flush first. Export and Parquet
are DuckDB's own COPY writers.
"""

from __future__ import annotations

import itertools
import os
import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import polars as pl
import pyarrow as pa

from . import OPERATIONS, STATUSES, Backend, user_stats_from

FLUSH_ROWS = 16_384
_COLS = "event_id, timestamp, operation, user_id, session_id, entry_ids, metadata, status, error_message, duration_ms"
_SCHEMA = pa.schema([
    ("event_id", pa.string()), ("timestamp", pa.timestamp("us", tz="UTC")), ("operation", pa.string()),
    ("user_id", pa.string()), ("session_id", pa.string()), ("entry_ids", pa.list_(pa.string())),
    ("metadata", pa.string()), ("status", pa.string()), ("error_message", pa.string()),
    ("duration_ms", pa.float64()),
])


class DuckDBLogger(Backend):
    name = "duckdb"
    label = "DuckDB (direct)"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.con = duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'").fetchall()
        self.con.execute(
            "CREATE TABLE events (event_id VARCHAR NOT NULL, timestamp TIMESTAMPTZ NOT NULL, "
            "operation VARCHAR NOT NULL, user_id VARCHAR, session_id VARCHAR, entry_ids VARCHAR[], "
            "metadata JSON, status VARCHAR NOT NULL, error_message VARCHAR, duration_ms DOUBLE)"
        )
        self._rows: list[tuple] = []
        self._seq = itertools.count()

    def prepare(self, df: pl.DataFrame) -> pa.Table:
        return df.to_arrow()

    def ingest(self, data: pa.Table) -> None:
        self.con.register("batch", data)
        try:
            self.con.execute(
                "INSERT INTO events SELECT 'evt_' || uuid()::VARCHAR, timestamp, operation, user_id, session_id, "
                "entry_ids, metadata, status, error_message, duration_ms FROM batch"
            ).fetchall()  # DuckDB 2 wants every result consumed before the next statement
        finally:
            self.con.unregister("batch")

    def log(self, call: dict[str, Any]) -> None:
        ts = time.time_ns() // 1000
        meta = call.get("metadata")
        self._rows.append((
            f"evt_{ts}{next(self._seq)}", ts, str(call["operation"]), call.get("user_id"), call.get("session_id"),
            list(call.get("entry_ids") or ()), orjson.dumps(meta).decode() if meta else None,
            str(call.get("status") or "SUCCESS"), call.get("error_message"), call.get("duration_ms"),
        ))
        if len(self._rows) >= FLUSH_ROWS:
            self._flush()

    def _flush(self) -> None:
        rows, self._rows = self._rows, []
        if rows:
            cols = list(zip(*rows, strict=True))
            arrays = [pa.array(c, t.type) for c, t in zip(cols, _SCHEMA, strict=True)]
            self.ingest_rows(pa.table(arrays, schema=_SCHEMA))

    def ingest_rows(self, table: pa.Table) -> None:
        self.con.register("rows", table)
        try:
            self.con.execute("INSERT INTO events SELECT * FROM rows").fetchall()
        finally:
            self.con.unregister("rows")

    def query(self, user_id: str, operation: str, start: datetime, limit: int | None = None) -> list:
        self._flush()
        return self.con.execute(
            f"SELECT {_COLS} FROM events WHERE user_id = ? AND operation = ? AND timestamp >= ? "
            "ORDER BY timestamp DESC LIMIT ?", [user_id, operation, start, limit if limit is not None else 1 << 62]
        ).fetchall()

    def query_user(self, user_id: str, limit: int) -> list:
        self._flush()
        return self.con.execute(
            f"SELECT {_COLS} FROM events WHERE user_id = ? ORDER BY timestamp DESC LIMIT ?", [user_id, limit]
        ).fetchall()

    def lookup(self, entry_id: str) -> list:
        self._flush()
        return self.con.execute(
            f"SELECT {_COLS} FROM events WHERE list_contains(entry_ids, ?)", [entry_id]).fetchall()

    def _stats(self, where: str, args: list) -> dict[str, Any]:
        self._flush()
        by_op = dict.fromkeys(OPERATIONS, 0)
        by_status = dict.fromkeys(STATUSES, 0)
        for op, st, n in self.con.execute(
                f"SELECT operation, status, count(*) FROM events {where} GROUP BY ALL", args).fetchall():
            by_op[op] += n
            by_status[st] += n
        total = sum(by_op.values())
        avg, p50, p95, p99, mx, users, sessions, first, last = self.con.execute(
            "SELECT avg(duration_ms), quantile_cont(duration_ms, 0.5), quantile_cont(duration_ms, 0.95), "
            "quantile_cont(duration_ms, 0.99), max(duration_ms), count(DISTINCT user_id), "
            f"count(DISTINCT session_id), min(timestamp), max(timestamp) FROM events {where}", args).fetchall()[0]
        return {
            "total_events": total,
            "success_rate": by_status["SUCCESS"] / total if total else 1.0,
            "failure_count": by_status["FAILURE"],
            "avg_duration_ms": avg or 0.0,
            "p50_duration_ms": p50 or 0.0,
            "p95_duration_ms": p95 or 0.0,
            "p99_duration_ms": p99 or 0.0,
            "max_duration_ms": mx or 0.0,
            "by_operation": by_op,
            "by_status": by_status,
            "unique_users": users,
            "unique_sessions": sessions,
            "first_event": first,
            "last_event": last,
        }

    def statistics(self) -> dict[str, Any]:
        return self._stats("", [])

    def user_statistics(self, user_id: str) -> dict[str, Any]:
        s = self._stats("WHERE user_id = ?", [user_id])
        return user_stats_from(user_id, s)

    def export_json(self, path: Path) -> int:
        # DuckDB writes the event array (ARRAY true); the document's head and tail wrap it.
        self._flush()
        body = path.with_name(path.name + ".events")
        self.con.execute(
            "COPY (SELECT event_id, strftime(timestamp, '%Y-%m-%dT%H:%M:%S.%fZ') AS timestamp, operation, user_id, "
            "session_id, coalesce(entry_ids, []) AS entry_ids, coalesce(metadata, '{}'::JSON) AS metadata, status, "
            f"error_message, duration_ms FROM events ORDER BY timestamp) TO '{body}' (FORMAT json, ARRAY true)"
        ).fetchall()
        n = self.con.execute("SELECT count(*) FROM events").fetchall()[0][0]
        exported = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        with open(path, "wb") as out, open(body, "rb") as src:
            out.write(b'{"events": ')
            shutil.copyfileobj(src, out, 1 << 22)
            out.write(f', "total_events": {n}, "exported_at": "{exported}"}}\n'.encode())
        os.unlink(body)
        return n

    def write_parquet(self, folder: Path) -> int | None:
        self._flush()
        self.con.execute(
            f"COPY (SELECT {_COLS}, timestamp::DATE AS date FROM events) TO '{folder}' "
            "(FORMAT parquet, PARTITION_BY (date), COMPRESSION zstd, OVERWRITE_OR_IGNORE true)"
        ).fetchall()
        return self.con.execute("SELECT count(*) FROM events").fetchall()[0][0]

    def memory_bytes(self) -> int | None:
        self._flush()
        return int(self.con.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchall()[0][0] or 0)

    def close(self) -> None:
        self.con.close()
