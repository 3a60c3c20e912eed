"""`AuditLogger`: the append buffer, the hot store, rotation, and the seed's API.

Logging appends one row tuple to a list (no lock: `list.append` is atomic, and
only one flusher at a time removes rows, from the front, after they are sealed
into a frame). Reads flush first, so a query sees every event whose `log_event`
returned. Rotation hands a snapshot to one writer thread; the logging path never
waits on file I/O.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
import time
import weakref
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import polars as pl

from ._errors import AuditTypeError, AuditValueError, ExportError
from ._models import (
    IDS,
    AuditEvent,
    EventStatus,
    OperationType,
    check_text,
    coerce_duration,
    coerce_entry_ids,
    coerce_operation,
    coerce_status,
    encode_metadata,
)
from ._archive import ExportFolder
from ._query import Filters
from ._reader import Reader, Snapshot, _as_path
from ._schema import events_to_frame, normalize_batch, rows_to_frame
from ._sinks import rotation_json_name, write_json_export, write_parquet_partitions
from ._stats import StatsCache
from ._store import CHUNK_ROWS, Chunk, HotStore

__all__ = ["AuditLogger"]

log = logging.getLogger("axon_audit")

_OP = OperationType
_ST = EventStatus
_SUCCESS = EventStatus.SUCCESS
_INF = float("inf")
_from_row = AuditEvent._from_row
_time_ns = time.time_ns
DEFAULT_FLUSH_SIZE = 16_384


@dataclass(eq=False)
class _Export:
    """A rotated snapshot on its way to disk; queryable as archived until written."""

    df: pl.DataFrame
    at: datetime
    failed: bool = False
    files: list[Path] = field(default_factory=list)


class AuditLogger(Reader):
    """Columnar audit logger: log events fast, query and export them.

    Args:
        max_events: events kept in memory before rotation.
        auto_export_path: folder for rotation exports (JSON + Parquet); None keeps
            the newest ``max_events // 2`` events at rotation and counts the rest
            as dropped.
        enable_rotation: False keeps every event in memory.
        flush_size: buffered rows sealed into one columnar chunk at a time.

    Example:
        >>> import asyncio
        >>> from axon_audit import AuditLogger, OperationType, EventStatus
        >>> audit = AuditLogger(max_events=10000)
        >>> event = audit.log(OperationType.STORE, user_id="user_123", entry_ids=["entry_1"], duration_ms=4.5)
        >>> _ = asyncio.run(audit.log_event("recall", user_id="user_123", status=EventStatus.FAILURE,
        ...                                 error_message="timeout"))
        >>> [e.operation.value for e in audit.query_events(user_id="user_123")]
        ['RECALL', 'STORE']
        >>> audit.get_statistics()["by_operation"]["STORE"]
        1
    """

    def __init__(
        self,
        max_events: int = 10000,
        auto_export_path: str | Path | None = None,
        enable_rotation: bool = True,
        *,
        flush_size: int = DEFAULT_FLUSH_SIZE,
    ) -> None:
        if isinstance(max_events, bool) or not isinstance(max_events, int):
            raise AuditTypeError(f"max_events must be an int, got {type(max_events).__name__}")
        if max_events < 1:
            raise AuditValueError(f"max_events must be >= 1, got {max_events}")
        if auto_export_path is not None and not isinstance(auto_export_path, (str, Path)):
            raise AuditTypeError(f"auto_export_path must be a path or None, got {type(auto_export_path).__name__}")
        if isinstance(flush_size, bool) or not isinstance(flush_size, int) or flush_size < 1:
            raise AuditValueError(f"flush_size must be an int >= 1, got {flush_size!r}")
        self._max_events = max_events
        self._export_path = Path(auto_export_path) if auto_export_path is not None else None
        self._rotation = bool(enable_rotation)
        self._flush_size = flush_size

        self._buf: list[tuple] = []
        self._lock = threading.RLock()  # flushes, rotations, snapshots; never taken by log()
        self._store = HotStore()
        self._stats_cache = StatsCache()
        self._pending_chunks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # _Export -> its chunks
        self._pending: list[_Export] = []
        self._futures: list[Future] = []
        self._writer: ThreadPoolExecutor | None = None

        self._sealed_total = 0  # events moved from the buffer (or a batch) into the store
        self._dropped = 0
        self._rotations = 0
        self._exported_events = 0
        self._export_failures = 0
        self._next_check = 1
        self._reset_check()
        if self._export_path is not None:
            ref = weakref.ref(self)
            atexit.register(lambda: (lambda s: s is not None and s._close_at_exit())(ref()))

    # ------------------------------------------------------------------ logging

    def log(
        self,
        operation: OperationType | str,
        user_id: str | None = None,
        session_id: str | None = None,
        entry_ids: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        status: EventStatus | str = _SUCCESS,
        error_message: str | None = None,
        duration_ms: float | None = None,
    ) -> AuditEvent:
        """Log one event synchronously (the same arguments as `log_event`).

        Example:
            >>> from axon_audit import AuditLogger
            >>> AuditLogger().log("forget", user_id="u1", entry_ids=["e1"]).operation.value
            'FORGET'
        """
        # Hot path: cheap type tests inline; the coerce_* helpers run only off it
        # (and raise the error that names the argument). Nothing is stored until
        # every argument has passed, so an invalid call logs nothing.
        if type(operation) is not _OP:
            operation = coerce_operation(operation)
        if type(status) is not _ST:
            status = coerce_status(status)
        if user_id is not None and (type(user_id) is not str or not user_id.isascii()):
            user_id = check_text(user_id, "user_id")
        if session_id is not None and (type(session_id) is not str or not session_id.isascii()):
            session_id = check_text(session_id, "session_id")
        if entry_ids is None:
            entries: tuple = ()
        elif type(entry_ids) is list or type(entry_ids) is tuple:
            entries = tuple(entry_ids)
            for e in entries:
                if type(e) is not str or not e.isascii():
                    entries = coerce_entry_ids(entries)
                    break
        else:
            entries = coerce_entry_ids(entry_ids)
        meta = None if metadata is None else encode_metadata(metadata)
        if error_message is not None and (type(error_message) is not str or not error_message.isascii()):
            error_message = check_text(error_message, "error_message")
        if duration_ms is not None and not (type(duration_ms) is float and 0.0 <= duration_ms < _INF):
            duration_ms = coerce_duration(duration_ms)
        ids = IDS
        row = (_time_ns() // 1000, next(ids.counter), ids.node, operation, user_id, session_id,
               entries, meta, status, error_message, duration_ms)
        buf = self._buf
        buf.append(row)
        if len(buf) >= self._next_check:
            self._maintain()
        return _from_row(row, None)

    async def log_event(
        self,
        operation: OperationType | str,
        user_id: str | None = None,
        session_id: str | None = None,
        entry_ids: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        status: EventStatus | str = _SUCCESS,
        error_message: str | None = None,
        duration_ms: float | None = None,
    ) -> AuditEvent:
        """Log one event and return it. Never waits on file I/O.

        Example:
            >>> import asyncio
            >>> from axon_audit import AuditLogger, OperationType
            >>> audit = AuditLogger()
            >>> event = asyncio.run(audit.log_event(OperationType.STORE, user_id="user_123",
            ...     session_id="session_abc", entry_ids=["entry_1", "entry_2"],
            ...     metadata={"source": "api", "batch_size": 2}, duration_ms=45.2))
            >>> event.entry_ids
            ['entry_1', 'entry_2']
        """
        return self.log(operation, user_id, session_id, entry_ids, metadata, status, error_message, duration_ms)

    def log_batch(self, events: Any) -> int:
        """Log many events at once from a pyarrow Table/RecordBatch, a polars
        DataFrame, or a list of dicts (export-format keys) or `AuditEvent`s.

        Only `operation` is required; missing ids and timestamps are generated.
        The whole batch is validated first: either all of it is logged or none.

        Example:
            >>> import polars as pl
            >>> from axon_audit import AuditLogger
            >>> audit = AuditLogger()
            >>> audit.log_batch(pl.DataFrame({"operation": ["STORE", "recall"], "user_id": ["u1", "u2"]}))
            2
            >>> audit.event_count
            2
        """
        df = normalize_batch(events)
        n = df.height
        if n == 0:
            return 0
        with self._lock:
            self._flush_locked()  # keeps insertion order: earlier single events first
            self._store.append(df)
            self._sealed_total += n
            self._rotate_if_full_locked()
            self._reset_check()
        return n

    # ------------------------------------------------------------------ buffer and rotation

    def _reset_check(self) -> None:
        if self._rotation:
            self._next_check = max(1, min(self._flush_size, self._max_events - self._store.count))
        else:
            self._next_check = self._flush_size

    def _flush_locked(self) -> None:
        buf = self._buf
        n = len(buf)
        if not n:
            return
        df = rows_to_frame(buf[:n])  # if this raises, the rows are still in the buffer
        self._store.append(df)
        del buf[:n]  # only rows sealed above; rows appended meanwhile stay
        self._sealed_total += n

    def _maintain(self) -> None:
        with self._lock:
            self._flush_locked()
            self._rotate_if_full_locked()
            self._reset_check()

    def _rotate_if_full_locked(self) -> None:
        if not self._rotation or self._store.count < self._max_events:
            return
        self._rotations += 1
        if self._export_path is None:
            self._dropped += self._store.keep_newest(self._max_events // 2)
            return
        self._export_all_locked()

    def _export_all_locked(self) -> None:
        chunks = self._store.take_all()
        if not chunks:
            return
        job = _Export(pl.concat([c.df for c in chunks], rechunk=False), datetime.now(timezone.utc))
        self._pending.append(job)
        self._submit_locked(job)

    def _submit_locked(self, job: _Export) -> None:
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="axon-audit-export")
        job.failed = False
        self._futures = [f for f in self._futures if not f.done()]
        try:
            self._futures.append(self._writer.submit(self._write_export, job))
        except RuntimeError:  # interpreter shutdown: the pool is gone, write here
            self._write_export(job)

    def _write_export(self, job: _Export) -> None:
        root = self._export_path
        assert root is not None
        json_path: Path | None = None
        try:
            json_path = write_json_export(job.df, root / rotation_json_name(job.at), replace=False)
            parquet = write_parquet_partitions(job.df, root / "parquet")
        except Exception as exc:  # noqa: BLE001 - any failure keeps the events in memory
            if json_path is not None:
                json_path.unlink(missing_ok=True)  # all or nothing, so a retry writes no duplicate
            with self._lock:
                job.failed = True
                self._export_failures += 1
            log.error("axon_audit: export of %d events failed, kept in memory for retry: %s", job.df.height, exc)
            return
        with self._lock:
            job.files = [json_path, *parquet]
            self._pending.remove(job)
            self._exported_events += job.df.height

    def flush(self) -> None:
        """Seal buffered events into the store, retry failed exports, and wait until
        every export started so far has been written.

        Example:
            >>> from axon_audit import AuditLogger
            >>> audit = AuditLogger()
            >>> _ = audit.log("store")
            >>> audit.flush(); audit.event_count
            1
        """
        with self._lock:
            self._flush_locked()
            self._rotate_if_full_locked()
            self._reset_check()
            for job in self._pending:
                if job.failed:
                    self._submit_locked(job)
            futures = list(self._futures)
        wait(futures)

    def close(self) -> None:
        """Flush, export everything in memory (when `auto_export_path` is set) and
        wait for the writes. The logger stays usable. Raises `ExportError` if some
        events could not be written (they are still in memory).

        Example:
            >>> from axon_audit import AuditLogger
            >>> with AuditLogger() as audit:
            ...     _ = audit.log("store")
        """
        with self._lock:
            self._flush_locked()
            if self._export_path is not None:
                self._export_all_locked()
            self._reset_check()
        self.flush()
        with self._lock:
            unwritten = sum(j.df.height for j in self._pending)
        if unwritten:
            raise ExportError(f"{unwritten} events could not be exported to {self._export_path}; they are kept in memory")

    def _close_at_exit(self) -> None:
        try:
            self.close()
        except Exception as exc:  # noqa: BLE001 - at exit, report and go on
            log.error("axon_audit: export at exit failed: %s", exc)

    def __enter__(self) -> "AuditLogger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> "AuditLogger":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.close)

    # ------------------------------------------------------------------ reading

    def _snapshot(self, include_archived: bool = False) -> Snapshot:
        """What a read sees, taken under the lock (read-your-writes: flushes first).
        With `include_archived`, rotations still being written and the Parquet files
        listed at this same instant, so every event is in exactly one place."""
        with self._lock:
            self._flush_locked()
            self._reset_check()
            live = list(self._store.chunks)
            if not include_archived:
                return Snapshot(live=live, stats_cache=self._stats_cache)
            jobs = list(self._pending)
            folder = self._archive_folder()
            parts = folder.parts() if folder is not None else None
        old: list[Chunk] = []
        for job in jobs:
            chunks = self._pending_chunks.get(job)
            if chunks is None:
                chunks = self._pending_chunks[job] = [Chunk.of(job.df.slice(s, CHUNK_ROWS).rechunk())
                                                      for s in range(0, job.df.height, CHUNK_ROWS)]
            old.extend(chunks)
        exclude = pl.concat([j.df["event_id"] for j in jobs]) if jobs else None
        return Snapshot(live=live, old=old, folder=folder, parts=parts, exclude=exclude)

    def _archive_folder(self) -> ExportFolder | None:
        if self._export_path is None:
            return None
        return ExportFolder(self._export_path, source="parquet")

    def _frames(self, f: Filters | None = None) -> list[pl.DataFrame]:
        """The in-memory chunks (those that can hold a match of `f`), unfiltered."""
        chunks = self._snapshot().live
        return [c.df for c in chunks if f is None or f.overlaps(c.min_us, c.max_us)]

    def _lazy(self, f: Filters | None = None) -> pl.LazyFrame:
        return self._snapshot().lazy(f or Filters())

    def _select(self, f: Filters) -> pl.DataFrame:
        """Matching events, newest first (ties: most recently logged first)."""
        return self._snapshot().select(f)

    # ------------------------------------------------------------------ statistics

    def get_statistics(self, *, include_archived: bool = False) -> dict[str, Any]:
        """Statistics over the events in memory (and the rotated ones with
        `include_archived=True`), plus the logger's counters.

        Example:
            >>> from axon_audit import AuditLogger
            >>> audit = AuditLogger()
            >>> _ = audit.log("store", duration_ms=10.0); _ = audit.log("recall", status="failure", duration_ms=30.0)
            >>> s = audit.get_statistics()
            >>> s["total_events"], s["success_rate"], s["avg_duration_ms"]
            (2, 0.5, 20.0)
        """
        stats = super().get_statistics(include_archived=include_archived)
        stats.update(self._counters())
        return stats

    def _counters(self) -> dict[str, Any]:
        with self._lock:
            return {
                "events_in_memory": self._store.count + len(self._buf),
                "total_events_logged": self._sealed_total + len(self._buf),
                "dropped_events": self._dropped,
                "rotations": self._rotations,
                "exported_events": self._exported_events,
                "pending_export_events": sum(j.df.height for j in self._pending),
                "export_failures": self._export_failures,
                "max_events": self._max_events,
                "rotation_enabled": self._rotation,
                "auto_export_enabled": self._export_path is not None,
                "auto_export_path": str(self._export_path) if self._export_path else None,
            }

    def get_stats(self) -> dict[str, Any]:
        """The older API's counters: `events_in_memory`, `total_events_logged`,
        `max_events`, `rotation_enabled`, `auto_export_enabled` (and the rest of
        the logger's counters)."""
        return self._counters()

    @property
    def event_count(self) -> int:
        """Events in memory now."""
        return self._store.count + len(self._buf)

    @property
    def total_events_logged(self) -> int:
        """Every event ever accepted by this logger (kept across `clear()`)."""
        return self._sealed_total + len(self._buf)

    @property
    def max_events(self) -> int:
        return self._max_events

    @property
    def auto_export_path(self) -> Path | None:
        return self._export_path

    async def clear(self) -> None:
        """Empty memory; `total_events_logged` is kept."""
        with self._lock:
            self._flush_locked()
            self._store.take_all()
            self._reset_check()

    # ------------------------------------------------------------------ exports

    def export_events(self, events: Iterable[AuditEvent], path: str | Path) -> int:
        """Write the given events (in their order) to `path` in the export format.

        Example:
            >>> import tempfile, pathlib
            >>> from axon_audit import AuditLogger
            >>> audit = AuditLogger()
            >>> _ = audit.log("store", user_id="user_123")
            >>> events = audit.query_events(user_id="user_123")
            >>> audit.export_events(events, pathlib.Path(tempfile.mkdtemp()) / "user_123_audit.json")
            1
        """
        path = _as_path(path)
        df = events_to_frame(events) if not isinstance(events, pl.DataFrame) else events
        write_json_export(df, path)
        return df.height

    def __repr__(self) -> str:
        return (f"AuditLogger(max_events={self._max_events}, auto_export_path={self._export_path!r}, "
                f"enable_rotation={self._rotation}, events_in_memory={self.event_count})")

