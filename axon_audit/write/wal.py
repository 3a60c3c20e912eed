"""The write-ahead log: accepted events on disk before (or soon after) `log_event` returns.

Layout: a folder of segment files ``wal-<epoch>.log``. An *epoch* is the stretch
of events between two rotations: a rotation cuts the log (under the same lock
that appends, so a cut splits the event stream exactly where the rotated
snapshot ends) and the next events go to the next epoch's file. Once a rotated
snapshot is exported and committed to the export folder's manifest, its epochs'
files are deleted (`release`).

The record format and reading it back (recovery) live in `write.wal_records`.

One writer thread writes and fsyncs. Group commit: whatever was queued while the
previous write+fsync ran goes out in the next single write+fsync, so concurrent
callers under ``sync="always"`` share one fsync. ``sync="interval"`` fsyncs at
most every `interval` seconds (default 5 ms) and does not wait: a crash may lose
the events of the last interval (and never more than `MAX_LAG` events: a logger
waits when the writer falls that far behind).
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import polars as pl

from axon_audit.write.wal_records import (
    Recovery,
    encode_frames,
    encode_record,
    encode_rows,
    existing_epochs,
    last_released,
    mark_released,
    recover,
    scan_segment,
    segment_path,
)

# The record functions are re-exported: callers know the WAL by this one module.
__all__ = ["SYNC_POLICIES", "Recovery", "WriteAheadLog", "claim", "encode_record", "existing_epochs",
           "last_released", "recover", "scan_segment",
           "segment_path"]

log = logging.getLogger("axon_audit")

SYNC_POLICIES = ("always", "interval")
DEFAULT_INTERVAL = 0.005
MAX_LAG = 50_000  # "interval": a logger waits when this many events are not yet fsynced
_RETRY_PAUSE = (0.05, 2.0)  # first and longest pause between retries of a failed write
_REPORT_EVERY = 60.0  # seconds between error reports while writes keep failing


class _Roll:
    """Queue marker: the epoch before it ends here."""

    __slots__ = ("epoch",)

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch


class _WriteFailed(Exception):
    def __init__(self, done: int) -> None:
        super().__init__(done)
        self.done = done


class _Frame:
    __slots__ = ("df",)

    def __init__(self, df: pl.DataFrame) -> None:
        self.df = df


def claim(folder: Path) -> int | None:
    """Lock `folder` for one writer: an fd holding an exclusive flock, or None if
    another logger (in this or another process) holds it."""
    import fcntl

    fd = os.open(Path(folder) / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


class WriteAheadLog:
    """The writer side. Appends happen under `lock` (the logger also appends its
    buffer row under it, so a cut is consistent with the buffer)."""

    def __init__(self, folder: Path, sync: str = "always", interval: float = DEFAULT_INTERVAL,
                 first_epoch: int = 1, owner: int | None = None) -> None:
        self._owner = owner  # the fd holding the folder's lock (see `claim`)
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.always = sync == "always"
        self.interval = interval
        self.lock = threading.Lock()
        self._io_lock = threading.Lock()  # segment files: the writer's writes vs release()'s deletions
        self._cv = threading.Condition(self.lock)
        self._queue: list[Any] = []
        self.appended = 0       # items (rows, frames) appended so far: an item's sequence number
        self.durable = 0        # items written and fsynced (or released)
        self.failed_upto = 0    # items whose last write attempt failed (waiters give up on them)
        self.epoch = first_epoch  # epoch receiving new appends
        self.released_upto = first_epoch - 1
        self.write_failures = 0
        self.failing = False  # the last write failed: waiters do not wait for the retry
        self._async_waiters: list[tuple[int, Any, Any]] = []
        self.fsyncs = 0
        self.last_error: BaseException | None = None
        self.dead: BaseException | None = None  # the writer thread stopped on this (see _run)
        self._closed = False
        self._fh: Any = None
        self._fh_epoch = -1
        self._w_epoch = first_epoch  # the epoch the writer thread's next item belongs to
        self._thread = threading.Thread(target=self._run, name="axon-audit-wal", daemon=True)
        self._thread.start()

    @property
    def broken(self) -> bool:
        """Writes are failing, or the writer thread stopped: appends are not made durable."""
        return self.failed_upto > self.durable or self.dead is not None

    # -- appending (caller holds self.lock)
    def append_locked(self, row: tuple) -> int:
        self._queue.append(row)
        self.appended += 1
        if self.always or len(self._queue) == 1:
            self._cv.notify()
        return self.appended

    def append_frame_locked(self, df: pl.DataFrame) -> int:
        self._queue.append(_Frame(df))
        self.appended += 1
        self._cv.notify()
        return self.appended

    def cut_locked(self) -> int:
        """End the current epoch; return its number."""
        closed = self.epoch
        self._queue.append(_Roll(closed))
        self.epoch += 1
        self._cv.notify()
        return closed

    # -- waiting
    def wait_durable(self, seq: int, timeout: float | None = None) -> bool:
        """True once item `seq` is fsynced; False if its write failed (or timeout)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while self.durable < seq:
                if self.failed_upto >= seq or self.failing or self._closed or self.dead is not None:
                    return False
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cv.wait(left)
            return True

    async def wait_durable_async(self, seq: int) -> bool:
        """`wait_durable` for a coroutine: the event loop runs on while the fsync is done."""
        import asyncio

        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        with self._cv:
            if self.durable >= seq:
                return True
            if self.failing or self._closed or self.dead is not None:
                return False
            self._async_waiters.append((seq, loop, fut))
            self._cv.notify()
        return await fut

    def _wake_async_locked(self) -> None:
        """Resolve the coroutines whose item is durable (True) or failed (False)."""
        keep = []
        for seq, loop, fut in self._async_waiters:
            if self.durable >= seq:
                result = True
            elif self.failed_upto >= seq or self.failing or self._closed or self.dead is not None:
                result = False
            else:
                keep.append((seq, loop, fut))
                continue
            try:
                loop.call_soon_threadsafe(_resolve, fut, result)
            except RuntimeError:  # that loop is closed
                pass
        self._async_waiters = keep

    def sync(self) -> bool:
        """Wait until everything appended so far is durable."""
        with self.lock:
            seq = self.appended
            self._cv.notify()
        return self.wait_durable(seq)

    # -- releasing
    def release(self, upto_epoch: int) -> None:
        """Delete the files of epochs <= `upto_epoch` (their events are exported)."""
        with self.lock:
            if upto_epoch <= self.released_upto:
                return
            self.released_upto = upto_epoch
        # Under the writer's I/O lock: a write of an epoch that is being released either
        # lands before these deletions (and is deleted) or sees the new `released_upto`
        # and skips. Without it a late write re-created a released epoch's file, and a
        # recovery replayed events that were already exported or cleared.
        with self._io_lock:
            mark_released(self.folder, upto_epoch)  # a later logger numbers on from here
            for epoch in existing_epochs(self.folder):
                if epoch <= upto_epoch:
                    segment_path(self.folder, epoch).unlink(missing_ok=True)
            _fsync_dir(self.folder)

    # -- the writer thread
    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # noqa: BLE001 - a bug in the loop itself: no waiter may hang on it
            with self._cv:
                self.dead = exc
                self.last_error = exc
                self.failing = True
                self.failed_upto = self.appended
                self._wake_async_locked()
                self._cv.notify_all()
            log.critical("axon_audit: the write-ahead log writer stopped (events are kept in memory, "
                         "no longer made durable): %r", exc)

    def _loop(self) -> None:
        pause = _RETRY_PAUSE[0]
        reported = 0.0
        while True:
            with self._cv:
                while not self._queue and not self._closed:
                    self._cv.wait()
            if self.always:
                time.sleep(0)  # let callers woken by the last fsync append first: fewer, fuller fsyncs
            with self._cv:
                if not self._queue and self._closed:
                    return
                items, self._queue = self._queue, []
                upto = self.appended
                released = self.released_upto
            done = 0
            try:
                done = self._write(items, released)
            except _WriteFailed as failed:  # any exception: _write wraps them all
                done = failed.done
                with self._cv:
                    left = items[done:]
                    self._queue[:0] = left  # keep what is not on disk, in order
                    self.durable = upto - sum(1 for it in left if type(it) is not _Roll)
                    self.failed_upto = upto
                    self.failing = True
                    self.write_failures += 1
                    self.last_error = failed.__cause__
                    self._wake_async_locked()
                    self._cv.notify_all()
                if time.monotonic() - reported > _REPORT_EVERY:  # report, but do not flood the log
                    reported = time.monotonic()
                    log.error("axon_audit: write-ahead log write failed (%d so far; events kept in memory, "
                              "retried): %s", self.write_failures, failed.__cause__)
                self._close_fh()
                with self._cv:
                    if self._closed:  # closing: stop retrying (the events are in memory, not durable)
                        return
                    self._cv.wait(pause)  # close() wakes it
                pause = min(pause * 2, _RETRY_PAUSE[1])
                continue
            with self._cv:
                self.durable = upto
                self.fsyncs += 1
                if self.failing:
                    self.failing = False
                    log.warning("axon_audit: write-ahead log writes succeed again")
                if self._async_waiters:
                    self._wake_async_locked()
                self._cv.notify_all()
            pause = _RETRY_PAUSE[0]
            if not self.always and self.interval > 0:
                time.sleep(self.interval)  # group the next interval's events into one fsync

    def _write(self, items: list[Any], released: int) -> int:
        """Write `items` (rows, frames, roll markers) with one fsync per epoch touched;
        returns len(items). On any failure (an OSError, but also MemoryError or an
        encoding error) raises `_WriteFailed` with how many items are on disk, so a
        retry writes none of them twice."""
        done = start = 0
        try:
            for i, item in enumerate(items):
                if type(item) is _Roll:  # the items so far end its epoch
                    self._write_epoch(self._w_epoch, items[start:i], released)
                    done = start = i + 1
                    self._close_fh()
                    self._w_epoch = item.epoch + 1
            self._write_epoch(self._w_epoch, items[start:], released)
        except BaseException as exc:
            raise _WriteFailed(done) from exc
        return len(items)

    def _write_epoch(self, epoch: int, part: list[Any], released: int) -> None:
        """Append `part` (rows and frames of `epoch`) and fsync, unless the epoch is
        released (exported: skipped). Raises if the segment file is no longer in
        the folder: an fsync of an unlinked file makes nothing durable."""
        if not part or epoch <= max(released, self.released_upto):
            return
        chunks: list[bytes] = []
        rows: list[tuple] = []
        for item in part:
            if type(item) is tuple:
                rows.append(item)
                continue
            if rows:
                chunks += encode_rows(rows)
                rows = []
            chunks += encode_frames(item.df)
        if rows:
            chunks += encode_rows(rows)
        with self._io_lock:  # see release(): `released_upto` is read again under it
            if epoch <= self.released_upto:
                return
            fh = self._open(epoch)
            fh.write(b"".join(chunks))
            fh.flush()
            os.fsync(fh.fileno())
            if os.fstat(fh.fileno()).st_nlink == 0:
                path = str(segment_path(self.folder, epoch))
                raise FileNotFoundError(errno.ENOENT, "write-ahead log segment deleted while open "
                                                      "(was its folder removed?)", path)

    def _open(self, epoch: int) -> Any:
        if self._fh is None or self._fh_epoch != epoch:
            self._close_fh()
            path = segment_path(self.folder, epoch)
            new = not path.exists()
            self._fh = open(path, "ab")
            self._fh_epoch = epoch
            if new:
                _fsync_dir(self.folder)
        return self._fh

    def _close_fh(self) -> None:
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError:
                pass
            self._fh = None

    def close(self, timeout: float = 10.0) -> None:
        if not self.failing:
            self.sync_quietly(timeout)
        with self._cv:
            self._closed = True
            self._wake_async_locked()
            self._cv.notify_all()
        self._thread.join(timeout)
        self._close_fh()
        if self._owner is not None:
            os.close(self._owner)  # releases the folder for the next logger
            self._owner = None

    def sync_quietly(self, timeout: float) -> None:
        with self.lock:
            seq = self.appended
        self.wait_durable(seq, timeout)


def _resolve(fut: Any, result: bool) -> None:
    if not fut.done():
        fut.set_result(result)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
