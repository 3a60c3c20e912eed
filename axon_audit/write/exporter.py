"""The exporter: rotated snapshots written in order by one writer thread.

Jobs are exported in logging order (a job never lands before an earlier one
that failed for a transient reason, an `OSError` or `MemoryError`), all or
nothing: a failed try is undone and its events stay in memory, queryable, until
a later rotation or `flush()` retries it. A job that fails for any other reason
(a data error: the same try would fail again) is *poison*: it is kept and
retried the same way, counted and reported, but the jobs behind it are exported
meanwhile, so one bad batch never stops the log. The logger learns of each
commit or failure through one callback; the exporter never calls back into the
logger otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from axon_audit.write.durability import WalLane
from axon_audit.write.switching import shorter_switch_interval
from axon_audit.write.targets import Attempt, ExportJob, ExportTarget, FolderTarget, RecordFn

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
        self._changed = threading.Condition(lock)  # a write started or ended, or the pause ended
        self._paused = 0  # while > 0 no write starts (see `paused_locked`)
        self.writing: ExportJob | None = None  # the job being written now

    @property
    def failing(self) -> bool:
        return any(j.failed for j in self.pending)

    @property
    def poisoned_events(self) -> int:
        """Events of jobs that failed for a non-transient reason (kept, retried)."""
        return sum(j.df.height for j in self.pending if j.poison)

    @contextlib.contextmanager
    def paused_locked(self) -> Iterator[None]:
        """Hold every write that has not started, after waiting for the one being
        written (the caller holds the lock): inside, no export reads any job's
        frame, so the frames can be replaced. Waits for one write at most."""
        self._paused += 1
        try:
            while self.writing is not None:
                self._changed.wait()
            yield
        finally:
            self._paused -= 1
            self._changed.notify_all()

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

    def wait_for(self, jobs: list[ExportJob]) -> None:
        """Wait until each of `jobs` is committed or its latest try has failed (a cut:
        jobs queued later are not waited for, so this ends while logging goes on)."""
        with self._lock:
            while any(not j.done and not j.failed for j in jobs) and self.in_flight_locked():
                self._changed.wait(0.5)  # woken at each write's end; the timeout re-checks the pool

    def submit_call(self, fn: Callable[[], Any]) -> Future[Any]:
        """Run `fn` on the writer thread, after the writes queued so far (tests hold it with this)."""
        with self._lock:
            if self._writer is None:
                self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="axon-audit-export")
            return self._writer.submit(fn)

    def _write(self, job: ExportJob) -> None:
        """Write one snapshot and commit it, then report; on failure undo and report."""
        with self._lock:
            while self._paused:
                self._changed.wait()
            if job not in self.pending:
                return
            earlier = self.pending[: self.pending.index(job)]
            if any(j.failed and not j.poison for j in earlier):  # keep export order = logging order
                job.failed = True
                self._changed.notify_all()
                return
            self.writing = job
        try:
            self._try(job)
        finally:
            with self._lock:
                self.writing = None
                self._changed.notify_all()

    def _try(self, job: ExportJob) -> None:
        attempt = Attempt()
        try:
            with shorter_switch_interval():  # the GIL back from the loggers sooner (see write.switching)
                df = job.df.sort("timestamp", maintain_order=True)
                self.target.export(job, df, attempt, self._record(job))
        except BaseException as exc:  # any failure keeps the events in memory
            attempt.undo()
            # Not the storage nor memory: the same try would fail the same way (a data error).
            poison = isinstance(exc, Exception) and not isinstance(exc, (OSError, MemoryError))
            with self._lock:
                job.failed = True
                job.poison = poison
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._report(job, exc)
            if poison:
                log.error("axon_audit: export of %d events to %s failed on their data, not on the storage "
                          "(%s: %s); they are kept in memory and retried, later exports go on",
                          job.df.height, getattr(self.target, "root", "?"), type(exc).__name__, exc)
            else:
                log.error("axon_audit: export of %d events to %s failed, kept in memory for retry: %s",
                          job.df.height, getattr(self.target, "root", "?"), exc)
            if not isinstance(exc, Exception):
                raise  # KeyboardInterrupt, SystemExit: recorded above, then on their way
            return
        with self._lock:
            job.files = attempt.written
            job.done = True
            job.failed = job.poison = False
            self.pending.remove(job)
            self.pending_events -= job.df.height
            self.exported_events += job.df.height
            self._report(job, None)

    def _report(self, job: ExportJob, error: BaseException | None) -> None:
        try:
            self._on_done(job, error)
        except Exception as exc:  # noqa: BLE001 - the export's outcome stands; the writer thread goes on
            log.error("axon_audit: after the export of %d events: %s: %s", job.df.height, type(exc).__name__, exc)


_NO_EXPORTS: dict[str, Any] = {"exported_events": 0, "pending_export_events": 0, "export_failures": 0,
                               "last_export_error": None, "poisoned_export_events": 0, "global_log_commits": 0,
                               "global_log_conflicts": 0, "global_log_failures": 0, "last_global_log_error": None}


def export_counters(exporter: Exporter | None) -> dict[str, Any]:
    """The exporter's counters in `get_stats()` (zeros for a logger without exports;
    that dict is shared: callers copy it into theirs)."""
    if exporter is None:
        return _NO_EXPORTS
    glog = getattr(exporter.target, "global_log", None)
    # Object storage: the lake's global log (integrity.global_log); zeros elsewhere.
    global_counters = {"global_log_commits": glog.commits if glog else 0,
                       "global_log_conflicts": glog.conflicts if glog else 0,
                       "global_log_failures": glog.failures if glog else 0,
                       "last_global_log_error": glog.last_error if glog else None}
    return {"exported_events": exporter.exported_events, "pending_export_events": exporter.pending_events,
            "export_failures": exporter.failures, "last_export_error": exporter.last_error,
            "poisoned_export_events": exporter.poisoned_events, **global_counters}


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

    if isinstance(target, FolderTarget):  # a logger starting on the folder clears what a crash cut off
        try:
            if removed := target.undo_interrupted():
                log.warning("axon_audit: removed %d file(s) of an export to %s interrupted before its commit "
                            "(their events were never committed)", removed, target.root)
        except OSError as exc:  # readers leave those files out anyway; the next logger tries again
            log.warning("axon_audit: cannot clear an interrupted export in %s: %s", target.root, exc)
    return Exporter(target, lock, export_done, lane.record_for if lane is not None else _no_record)


def _no_record(job: ExportJob) -> None:
    """Without a WAL, exports leave no job records."""
    return None
