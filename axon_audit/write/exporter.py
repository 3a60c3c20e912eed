"""The exporter: rotated snapshots written in order by one writer thread.

Jobs are exported in logging order (a job never lands before an earlier one
that failed), all or nothing: a failed try is undone and its events stay in
memory, queryable, until a later rotation or `flush()` retries it. The logger
learns of each commit or failure through one callback; the exporter never
calls back into the logger otherwise.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from axon_audit.write.durability import WalLane
from axon_audit.write.targets import Attempt, ExportJob, ExportTarget, RecordFn

__all__ = ["Exporter", "export_counters", "logger_exporter"]

log = logging.getLogger("axon_audit")


class Exporter:
    """Writes `ExportJob`s through an `ExportTarget`, one at a time, in order.

    `lock` is the logger's lock (the pending list is part of what a read
    snapshots); `on_done(job, error)` runs under it after each commit
    (`error` None) or failure; `record(job)` gives the write-ahead log's
    job-record function for a job (None without a WAL).
    """

    def __init__(self, target: ExportTarget, lock: threading.RLock,
                 on_done: Callable[[ExportJob, BaseException | None], None],
                 record: Callable[[ExportJob], RecordFn | None]) -> None:
        self.target = target
        self._lock = lock
        self._on_done = on_done
        self._record = record
        self.pending: list[ExportJob] = []  # oldest first, until committed
        self.pending_events = 0
        self.exported_events = 0
        self.failures = 0
        self.last_error: str | None = None
        self._futures: list[Future[None]] = []
        self._writer: ThreadPoolExecutor | None = None

    @property
    def failing(self) -> bool:
        return any(j.failed for j in self.pending)

    def add_locked(self, job: ExportJob) -> None:
        """Queue a new job (the caller holds the lock) and start writing it."""
        self.pending.append(job)
        self.pending_events += job.df.height
        self.submit_locked(job)

    def retry_failed_locked(self) -> None:
        for job in self.pending:
            if job.failed:
                self.submit_locked(job)

    def submit_locked(self, job: ExportJob) -> None:
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="axon-audit-export")
        job.failed = False
        self._futures = [f for f in self._futures if not f.done()]
        try:
            self._futures.append(self._writer.submit(self._write, job))
        except RuntimeError:  # interpreter shutdown: the pool is gone, write here
            self._write(job)

    def in_flight_locked(self) -> list[Future[None]]:
        """The writes started so far and not finished."""
        return [f for f in self._futures if not f.done()]

    def submit_call(self, fn: Callable[[], Any]) -> Future[Any]:
        """Run `fn` on the writer thread, after the writes queued so far (tests hold it with this)."""
        with self._lock:
            if self._writer is None:
                self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="axon-audit-export")
            return self._writer.submit(fn)

    def _write(self, job: ExportJob) -> None:
        """Write one snapshot and commit it, then report; on failure undo and report."""
        with self._lock:
            if job not in self.pending:
                return
            earlier = self.pending[: self.pending.index(job)]
            if any(j.failed for j in earlier):  # keep export order = logging order
                job.failed = True
                return
        attempt = Attempt()
        try:
            df = job.df.sort("timestamp", maintain_order=True)
            self.target.export(job, df, attempt, self._record(job))
        except Exception as exc:  # noqa: BLE001 - any failure keeps the events in memory
            attempt.undo()
            with self._lock:
                job.failed = True
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._on_done(job, exc)
            log.error("axon_audit: export of %d events to %s failed, kept in memory for retry: %s",
                      job.df.height, getattr(self.target, "root", "?"), exc)
            return
        with self._lock:
            job.files = attempt.written
            job.done = True
            self.pending.remove(job)
            self.pending_events -= job.df.height
            self.exported_events += job.df.height
            self._on_done(job, None)


def export_counters(exporter: Exporter | None) -> dict[str, Any]:
    """The exporter's counters in `get_stats()` (zeros for a logger without exports)."""
    if exporter is None:
        return {"exported_events": 0, "pending_export_events": 0, "export_failures": 0, "last_export_error": None}
    return {"exported_events": exporter.exported_events, "pending_export_events": exporter.pending_events,
            "export_failures": exporter.failures, "last_export_error": exporter.last_error}


def logger_exporter(target: ExportTarget, lock: threading.RLock, lane: WalLane | None,
                    changed: Callable[[], None]) -> Exporter:
    """A logger's exporter. Its reports reach components only, never the logger: a
    logger holds its WAL folder until it is collected, and a reference cycle would
    delay that. After each commit the WAL releases what it holds; after every
    report `changed` runs (the backpressure renews its rule)."""

    def export_done(job: ExportJob, error: BaseException | None) -> None:
        if error is None and job.wal_last is not None and lane is not None:
            lane.release_locked()
        changed()

    return Exporter(target, lock, export_done, lane.record_for if lane is not None else _no_record)


def _no_record(job: ExportJob) -> None:
    """Without a WAL, exports leave no job records."""
    return None
