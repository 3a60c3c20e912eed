"""The baselines, and the one small interface every benchmarked backend implements.

A backend holds audit events and answers the benchmark's questions. Each
method does the job the way a user of that tool would write it; the harness
(`benchmarks.case`) times the calls and never looks inside, except for
`memory_bytes`, a backend's own account of what it holds (and its
estimate, `memory_estimate_bytes`), and `rotation`, axon_audit's export path.

Backends: `benchmarks.ours.Ours` (axon_audit) and, here,

* `seed_pydantic.SeedLogger`: the seed document's design (one pydantic object per
  event in a Python list, loops for filters and statistics, `json.dump` export);
* `sqlite_table.SqliteLogger`: stdlib sqlite3, one table indexed on user,
  operation and time, inserts batched in transactions;
* `jsonl_logging.JsonLinesLogger`: JSON lines through stdlib `logging`, queried
  by scanning and parsing the file;
* `duckdb_direct.DuckDBLogger`: DuckDB used directly (Arrow inserts, SQL).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

OPERATIONS = ("STORE", "RECALL", "FORGET", "COMPACT", "EXPORT", "IMPORT", "BULK_STORE", "REINDEX")
STATUSES = ("SUCCESS", "FAILURE", "PARTIAL")


class Backend(ABC):
    """One way of keeping audit events. A fresh instance holds no events."""

    #: short key used on the command line and in the results
    name: str = ""
    #: column header in the tables
    label: str = ""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)

    # -- input: `prepare` is untimed, the calls after it are timed
    def prepare(self, df: pl.DataFrame) -> Any:
        """The workload (a `axon_audit.workload.generate_events` frame) in the
        form this backend ingests in bulk. Not timed."""
        return df

    @abstractmethod
    def ingest(self, data: Any) -> None:
        """Add many events at once (the output of `prepare`)."""

    @abstractmethod
    def log(self, call: dict[str, Any]) -> None:
        """Log one event, synchronously (`call` has `log_event`'s keyword arguments)."""

    async def log_event(self, call: dict[str, Any]) -> None:
        """Log one event from async code."""
        self.log(call)

    # -- reads: each returns what a user gets back (objects, rows, dicts)
    @abstractmethod
    def query(self, user_id: str, operation: str, start: datetime, limit: int | None = None) -> list:
        """Events of `user_id` with `operation` at or after `start` (aware UTC), newest first."""

    @abstractmethod
    def query_user(self, user_id: str, limit: int) -> list:
        """The newest `limit` events of `user_id`."""

    @abstractmethod
    def lookup(self, entry_id: str) -> list:
        """Events whose entry_ids contain `entry_id`."""

    @abstractmethod
    def statistics(self) -> dict[str, Any]:
        """total, success rate, failures, duration mean/p50/p95/p99/max, counts by
        operation and status, distinct users and sessions, first/last time."""

    @abstractmethod
    def user_statistics(self, user_id: str) -> dict[str, Any]:
        """One user's totals, first/last activity, most common operation, counts,
        success rate, mean duration, distinct sessions."""

    @abstractmethod
    def export_json(self, path: Path) -> int:
        """Write every event to `path` in the seed's export format; return the count."""

    def write_parquet(self, folder: Path) -> int | None:
        """Write every event as Parquet under `folder` (by UTC date); None: cannot."""
        return None

    # -- footprint
    def memory_bytes(self) -> int | None:
        """Bytes this backend itself accounts for holding in memory; None: no own account."""
        return None

    def memory_estimate_bytes(self) -> int | None:
        """A cheaper estimate of `memory_bytes`, reported beside it for comparison; None: none."""
        return None

    def rotation(self, data: Any, folder: Path) -> tuple[float, int, int] | None:
        """Log `data` (the output of `prepare`) into a fresh logger that rotates to
        `folder` as in production, close it; return (seconds, events exported,
        bytes of the Parquet files written). None: the backend has no rotation."""
        return None

    def disk_bytes(self) -> int | None:
        """Bytes of the backend's own store on disk (not exports); None: keeps none."""
        return None

    def close(self) -> None:  # noqa: B027 - an optional hook: by default there is nothing to release
        """Release what the backend holds."""


def backend_classes() -> dict[str, type[Backend]]:
    """Every backend by name, ours first."""
    # Here, not at the top: each backend module imports `Backend` from this package (a cycle).
    from ..ours import Ours
    from .duckdb_direct import DuckDBLogger
    from .jsonl_logging import JsonLinesLogger
    from .seed_pydantic import SeedLogger
    from .sqlite_table import SqliteLogger

    return {c.name: c for c in (Ours, SeedLogger, SqliteLogger, JsonLinesLogger, DuckDBLogger)}


def user_stats_from(user_id: str, s: dict[str, Any]) -> dict[str, Any]:
    """`get_user_statistics`' shape from a backend's statistics of one user's events."""
    return {
        "user_id": user_id,
        "total_operations": s["total_events"],
        "first_activity": s["first_event"],
        "last_activity": s["last_event"],
        "most_common_operation": most_common(s["by_operation"]),
        "by_operation": s["by_operation"],
        "by_status": s["by_status"],
        "success_rate": s["success_rate"],
        "failure_count": s["failure_count"],
        "avg_duration_ms": s["avg_duration_ms"],
        "unique_sessions": s["unique_sessions"],
    }


def most_common(counts: dict[str, int]) -> str | None:
    """The most frequent key; ties go to the first in `OPERATIONS` order."""
    if not any(counts.values()):
        return None
    return max(OPERATIONS, key=lambda op: (counts.get(op, 0), -OPERATIONS.index(op)))


def quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated quantile of already sorted values (as polars 'linear')."""
    if not sorted_values:
        return 0.0
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)
