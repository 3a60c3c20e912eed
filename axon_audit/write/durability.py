"""The logger's write-ahead-log lane: recovery at start, epochs per export, release.

The WAL (`write.wal`) holds every accepted event until its export is
committed. Each export covers whole epochs: the lane cuts the log where the
buffer is cut, records the export's planned files in a job record before any
of them is written, and deletes the epochs (and job records) once every
export holding them is committed or cleared.

Recovery is one loop for every storage kind: for each job record the export
target says which files its commit point lists; a committed export's epochs
are skipped, a cut-off one's files are removed and its events replayed, so
every acknowledged event comes back exactly once.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson

from axon_audit.exceptions import AuditUnavailableError, AuditValueError, ExportError
from axon_audit.io.atomic import atomic_write
from axon_audit.io.location import Location
from axon_audit.model.schema import EMPTY_FRAME, rows_to_frame
from axon_audit.store.hot import HotStore
from axon_audit.write import wal as _wal
from axon_audit.write.targets import ExportJob, ExportTarget, RecordFn

__all__ = ["WalLane", "recover_jobs", "wal_counters"]

log = logging.getLogger("axon_audit")

_REPORT_EVERY = 60.0  # seconds between repeated error reports of one ongoing failure


def recover_jobs(wdir: Path, target: ExportTarget) -> set[int]:
    """The WAL epochs of exports whose commit landed; the files of exports cut off
    before their commit are removed (their events are replayed from the log)."""
    skip: set[int] = set()
    with target.recovering():
        for jf in sorted(wdir.glob("job-*.json")):
            job = orjson.loads(jf.read_bytes())
            listed = target.committed_files(job)
            if job["files"] and all(f in listed for f in job["files"]):
                skip.update(range(job["first_epoch"], job["last_epoch"] + 1))
                continue
            for f in job["files"]:
                if f not in listed:
                    target.remove(f)
            jf.unlink()
    return skip


class WalLane:
    """One logger's write-ahead log, its epochs and export job records."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.wal: _wal.WriteAheadLog | None = None
        self.next_first = 1  # first epoch not yet in an export job
        self.recovered = 0
        self.dropped_bytes = 0
        self.not_durable = 0
        self._reported = -_REPORT_EVERY
        self._jobs: list[ExportJob] = []  # jobs with WAL epochs, oldest first, until released

    def open(self, root: Path | Location, target: ExportTarget, store: HotStore, sync: str, interval: float,
             owner: object) -> int:
        """Recover what a previous logger left in the folder into `store`, then start
        the log (it closes when `owner` is collected). Returns the events recovered."""
        wdir = self.path
        try:
            wdir.mkdir(parents=True, exist_ok=True)
            if isinstance(root, Path):
                root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExportError(exc.errno, f"cannot open the write-ahead log {wdir} or the export folder {root} "
                                         f"it recovers into: {exc.strerror or exc}") from exc
        claimed = _wal.claim(wdir)  # one logger per WAL folder, across threads and processes
        if claimed is None:
            raise AuditValueError(f"wal_path {wdir} is in use by another logger; give each logger (and each "
                                  "process) its own wal_path")
        skip = recover_jobs(wdir, target)
        rec = _wal.recover(wdir, skip)
        existing = _wal.existing_epochs(wdir)
        for epoch in skip:
            _wal.segment_path(wdir, epoch).unlink(missing_ok=True)
        for jf in wdir.glob("job-*.json"):
            jf.unlink(missing_ok=True)
        rows: list[tuple[Any, ...]] = []
        for _, kind, payload in rec.records:  # row records batch into one frame; frames go in whole
            if kind == "R":
                rows.extend(payload)
                continue
            if rows:
                store.append(rows_to_frame(rows))
                rows = []
            store.append(payload)
        if rows:
            store.append(rows_to_frame(rows))
        n = rec.events
        self.recovered, self.dropped_bytes = n, rec.dropped_bytes
        for problem in rec.problems:
            log.warning("axon_audit: write-ahead log recovery: %s", problem)
        if n:
            log.warning("axon_audit: recovered %d events from the write-ahead log %s", n, wdir)
        first = max([*existing, _wal.last_released(wdir)]) + 1  # a number is never reused (wal_records)
        self.next_first = min(rec.epochs, default=first)
        self.wal = _wal.WriteAheadLog(wdir, sync, interval, first_epoch=first, owner=claimed)
        self.wal.released_upto = self.next_first - 1
        weakref.finalize(owner, self.wal.close)  # the writer thread ends with its logger
        return n

    # ------------------------------------------------------------------ epochs

    def cut_locked(self, buffered: Callable[[], int], seal: Callable[[int], None]) -> tuple[int, int]:
        """End the epoch exactly where the buffer is now and seal those rows:
        afterwards the store holds exactly the events of epochs < the new one."""
        wal = self.wal
        assert wal is not None
        with wal.lock:  # log() appends buffer + WAL under this lock: both cut at one point
            n = buffered()
            last = wal.cut_locked()
        seal(n)
        first, self.next_first = self.next_first, last + 1
        return first, last

    def track(self, job: ExportJob, epochs: tuple[int, int]) -> None:
        job.wal_first, job.wal_last = epochs
        self._jobs.append(job)

    def release_empty(self, epochs: tuple[int, int], at: datetime) -> None:
        """Epochs with nothing left to export (cleared, or empty): release them."""
        self._jobs.append(ExportJob(EMPTY_FRAME, at, wal_first=epochs[0], wal_last=epochs[1], done=True))
        self.release_locked()

    def release_locked(self) -> None:
        """Delete the WAL epochs whose events are all exported (or cleared)."""
        wal = self.wal
        if wal is None:
            return
        pending = [j.wal_first for j in self._jobs if not j.done and j.wal_first is not None]
        upto = min(pending) - 1 if pending else self.next_first - 1
        self._jobs = [j for j in self._jobs if not (j.done and (j.wal_last or 0) <= upto)]
        if upto > wal.released_upto:
            wal.release(upto)
            for jf in self.path.glob("job-*.json"):
                if int(jf.stem[4:]) <= upto:
                    jf.unlink(missing_ok=True)

    def record_for(self, job: ExportJob) -> RecordFn | None:
        """Before an export writes anything: a function that records its files (and,
        on object storage, the manifest that commits them) in the WAL folder, so
        recovery can tell a committed export from one cut off halfway."""
        if job.wal_last is None:
            return None

        def record(planned: list[str], manifest: str | None) -> Path:
            job_file = self.path / f"job-{job.wal_last:08d}.json"
            body = orjson.dumps({"first_epoch": job.wal_first, "last_epoch": job.wal_last, "files": planned,
                                 **({"manifest": manifest} if manifest else {})})
            def put(fh: IO[bytes]) -> None:
                fh.write(body)

            atomic_write(job_file, put)
            return job_file

        return record

    # ------------------------------------------------------------------ durability reports

    def report_not_durable(self, n: int, lock: threading.RLock, fail_closed: bool) -> None:
        wal = self.wal
        assert wal is not None
        with lock:
            self.not_durable += n
        msg = (f"{n} event(s) accepted but not written to the write-ahead log {self.path} "
               f"(kept in memory, retried): {wal.last_error!r}")
        if fail_closed:
            raise AuditUnavailableError(msg)
        now = time.monotonic()
        if now - self._reported > _REPORT_EVERY:  # report, but do not flood the log
            self._reported = now
            log.error("axon_audit: %s (%d such events so far)", msg, self.not_durable)


_NO_WAL: dict[str, Any] = {"wal_enabled": False, "wal_sync": None, "wal_fsyncs": 0, "wal_write_failures": 0,
                           "wal_writer_stopped": False, "wal_last_error": None, "wal_not_durable_events": 0,
                           "wal_recovered_events": 0, "wal_dropped_bytes": 0}


def wal_counters(lane: WalLane | None) -> dict[str, Any]:
    """The WAL's counters in `get_stats()` (zeros for a logger without one; that dict
    is shared: callers copy it into theirs)."""
    if lane is None:
        return _NO_WAL
    wal = lane.wal
    return {
        "wal_enabled": wal is not None,
        "wal_sync": None if wal is None else ("always" if wal.always else "interval"),
        "wal_fsyncs": 0 if wal is None else wal.fsyncs,
        "wal_write_failures": 0 if wal is None else wal.write_failures,
        # The writer thread stopped on an unexpected error: nothing logged since is made durable.
        "wal_writer_stopped": False if wal is None else wal.dead is not None,
        "wal_last_error": None if wal is None or wal.last_error is None else repr(wal.last_error),
        "wal_not_durable_events": 0 if lane is None else lane.not_durable,
        "wal_recovered_events": 0 if lane is None else lane.recovered,
        "wal_dropped_bytes": 0 if lane is None else lane.dropped_bytes,
    }
