"""The append buffer and the hot store, sealed and rotated under one lock.

`log()` appends row tuples to `rows` without a lock and compares the buffer's
length with `rows.next_check` (an attribute of the list itself, so the hot
path reads no extra object). Past it, the logger calls `maintain()`: the rows
are sealed into one columnar chunk, and a full store rotates: its chunks
become one `ExportJob` for the exporter, or, without an export folder, the
newest half is kept and the rest counted as dropped (a warning each time).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import polars as pl

from axon_audit.model.schema import rows_to_frame
from axon_audit.query.row_compiler import SMALL_ROWS
from axon_audit.read.archive import ExportFolder
from axon_audit.read.delta_source import DeltaFolder
from axon_audit.read.snapshot import Snapshot
from axon_audit.store.hot import CHUNK_ROWS, Chunk, HotStore
from axon_audit.store.statistics import StatsCache
from axon_audit.write.durability import WalLane
from axon_audit.write.exporter import Exporter
from axon_audit.write.subscription import Subscribers
from axon_audit.write.targets import ExportJob

__all__ = ["HotBuffer", "Rows"]

log = logging.getLogger("axon_audit")


class Rows(list[tuple[Any, ...]]):
    """The append buffer: a plain list that also carries the length at which the
    next flush or rotation check is due."""

    __slots__ = ("next_check",)

    def __init__(self) -> None:
        super().__init__()
        self.next_check = 1


class HotBuffer:
    """The buffer, the store, and the rotation rule of one logger.

    `on_rotated()` runs (under the lock) after a rotation queued an export, so the
    logger can renew its backpressure state; it is the only call back up.
    """

    def __init__(self, max_events: int, rotation: bool, flush_size: int, lane: WalLane | None,
                 exporter: Exporter | None, lock: threading.RLock, folder: ExportFolder | DeltaFolder | None) -> None:
        self.max_events = max_events
        self.rotation = rotation
        self.flush_size = flush_size
        self.lane = lane
        self.exporter = exporter
        self.lock = lock  # flushes, rotations, snapshots; never taken by log()
        self.folder = folder
        self.rows = Rows()
        self.store = HotStore()
        self.stats_cache = StatsCache()
        self.store.on_seal = self.stats_cache.advance  # the sealer keeps the running statistics current
        self.on_rotated: Callable[[], None] = lambda: None
        self._pending_chunks: weakref.WeakKeyDictionary[ExportJob, list[Chunk]] = weakref.WeakKeyDictionary()
        self.sealed_total = 0  # events moved from the buffer (or a batch) into the store
        self.dropped = 0
        self.rotations = 0
        self.subscribers = Subscribers(self)  # live subscriptions: each sealed chunk is offered to them

    @property
    def count(self) -> int:
        """Events in memory now (sealed and buffered)."""
        return self.store.count + len(self.rows)

    def reset_check(self) -> None:
        if self.rotation:
            self.rows.next_check = max(1, min(self.flush_size, self.max_events - self.store.count))
        else:
            self.rows.next_check = self.flush_size

    def flush_locked(self, n: int | None = None, for_read: bool = False) -> None:
        rows = self.rows
        n = len(rows) if n is None else n
        if not n:
            return
        df = rows_to_frame(rows[:n])  # if this raises, the rows are still in the buffer
        self.store.append(df, for_read)
        del rows[:n]  # only rows sealed above; rows appended meanwhile stay
        self.sealed_total += n
        if self.subscribers.subs:
            self.subscribers.offer_locked(df)

    def maintain(self) -> None:
        with self.lock:
            self.flush_locked()
            self.rotate_if_full_locked()
            self.reset_check()

    def flush(self) -> tuple[list[ExportJob], bool]:
        """Seal the buffer, retry failed exports, wait for the exports of every event
        logged so far and (with a WAL) for every event logged so far to be fsynced.
        A cut: rotations started meanwhile are not waited for. Returns the jobs of
        the cut (each committed or failed now) and whether the fsync succeeded."""
        with self.lock:
            self.maintain()
            jobs: list[ExportJob] = []
            if self.exporter is not None:
                self.exporter.retry_failed_locked()
                jobs = list(self.exporter.pending)
        return self.settle(jobs)

    def export_everything(self) -> tuple[list[ExportJob], bool]:
        """`flush`, having first handed everything in memory to the exporter (close);
        live subscriptions end once they have delivered everything logged before."""
        with self.lock:
            self.flush_locked()
            self.subscribers.end_all_locked()
            jobs = []
            if self.exporter is not None:
                self.exporter.retry_failed_locked()
                self.export_all_locked()
                jobs = list(self.exporter.pending)
            self.reset_check()
        return self.settle(jobs)

    def settle(self, jobs: list[ExportJob]) -> tuple[list[ExportJob], bool]:
        if self.exporter is not None:
            self.exporter.wait_for(jobs)
        wal = self.lane.wal if self.lane is not None else None
        return jobs, wal.sync() if wal is not None else True

    def unsettled(self, jobs: list[ExportJob], wal_ok: bool, root: object) -> str | None:
        """What a `flush`/`export_everything` could not make durable (None: all of it)."""
        failed = sum(j.df.height for j in jobs if not j.done)
        if failed:
            err = self.exporter.last_error if self.exporter is not None else None
            return (f"{failed} events could not be exported to {root}; they are kept in memory and "
                    f"retried (last error: {err})")
        if not wal_ok and self.lane is not None and self.lane.wal is not None:
            wal = self.lane.wal
            return (f"{wal.appended - wal.durable} write(s) of logged events are not durable in the write-ahead "
                    f"log {self.lane.path}; the events are kept in memory and retried "
                    f"(last error: {wal.last_error!r})")
        return None

    def append_frame_locked(self, df: pl.DataFrame) -> None:
        """A batch, after the rows logged before it (insertion order is logging order)."""
        self.flush_locked()
        self.store.append(df)
        self.sealed_total += df.height
        if self.subscribers.subs:
            self.subscribers.offer_locked(df)
        self.rotate_if_full_locked()
        self.reset_check()

    def backlog_locked(self) -> list[pl.DataFrame]:
        """The events in memory not yet committed to the export folder, in logging order: exports
        being written or waiting for a retry, then the store (the caller has sealed the buffer)."""
        jobs = [job.df for job in self.exporter.pending] if self.exporter is not None else []
        return jobs + [chunk.df for chunk in self.store.chunks]

    def rotate_if_full_locked(self) -> None:
        if not self.rotation or self.store.count < self.max_events:
            return
        self.rotations += 1
        if self.exporter is None:
            n = self.store.keep_newest(self.max_events // 2)
            self.dropped += n
            # Once per rotation (not per event): the loss is the caller's to know.
            log.warning("axon_audit: rotation dropped %s events (no auto_export_path); set auto_export_path "
                        "to keep them", f"{n:,}")
            return
        self.exporter.retry_failed_locked()  # a rotation retries earlier failed exports first
        self.export_all_locked()

    def cut_locked(self) -> tuple[int, int] | None:
        """Seal the buffer; with a WAL, end its epoch at the same point."""
        if self.lane is None:
            self.flush_locked()
            return None
        return self.lane.cut_locked(lambda: len(self.rows), self.flush_locked)

    def export_all_locked(self) -> None:
        """Hand everything in memory to the exporter as one job."""
        assert self.exporter is not None
        epochs = self.cut_locked()
        chunks = self.store.take_all()
        at = datetime.now(timezone.utc)
        if not chunks:
            if epochs is not None and self.lane is not None:  # nothing to export: release those epochs
                self.lane.release_empty(epochs, at)
            return
        job = ExportJob(pl.concat([c.df for c in chunks], rechunk=False), at)
        if epochs is not None and self.lane is not None:
            self.lane.track(job, epochs)
        self.exporter.add_locked(job)
        self.on_rotated()

    def clear_locked(self) -> None:
        """Empty memory; a WAL's epochs of it are released (a restart must not bring them back)."""
        epochs = self.cut_locked()
        self.store.take_all()
        if epochs is not None and self.lane is not None:
            self.lane.release_empty(epochs, datetime.now(timezone.utc))
        self.reset_check()

    # ------------------------------------------------------------------ what reads see

    def snapshot(self, include_archived: bool, small: bool = False) -> Snapshot:
        """What a read sees, taken under the lock (read-your-writes: flushes first).
        With `include_archived`, rotations still being written and the Parquet files
        listed at this same instant, so every event is in exactly one place.
        `small`: when every event read is in the buffer and there are at most
        `SMALL_ROWS`, a copy of the rows instead, unsealed (`Snapshot.rows`); when one
        chunk holds them all and its answers are made, those too (`Snapshot.small`)."""
        with self.lock:
            if (small and not self.store.chunks and len(self.rows) <= SMALL_ROWS
                    and (not include_archived or (self.folder is None and self.exporter is None))):
                return Snapshot(rows=list(self.rows))
            self.flush_locked(for_read=True)  # this read derives what it needs itself
            self.reset_check()
            live = list(self.store.chunks)
            if not include_archived:
                # A small store's one chunk whose answers the sealer made: statistics read them as they are.
                answers = live[0].answers if small and len(live) == 1 else None
                return Snapshot(live=live, stats_cache=self.stats_cache, refresh=self._live_chunks, small=answers)
            jobs = list(self.exporter.pending) if self.exporter is not None else []
            folder = self.folder
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

    def _live_chunks(self) -> list[Chunk]:
        with self.lock:
            self.flush_locked(for_read=True)
            self.reset_check()
            return list(self.store.chunks)

    def rewrite_locked(self, fn: Callable[[pl.DataFrame], pl.DataFrame]) -> int:
        """Replace every in-memory frame (store and unwritten exports) by `fn(frame)`,
        which must keep the rows and their order; returns the events seen. The
        caller holds the lock and has made sure no export is being written."""
        pending = self.exporter.pending if self.exporter is not None else []
        self.flush_locked()
        # Everything is computed before anything is swapped: if fn raises, nothing changed.
        frames = [fn(c.df) for c in self.store.chunks]
        jobs = [fn(j.df) for j in pending]  # failed exports waiting for a retry
        if any(new.height != old.height for new, old in zip(frames, self.store.chunks, strict=True)):
            raise AssertionError("rewrite: fn must keep every row")
        self.store.take_all()
        for df in frames:
            self.store.append(df)
        for job, df in zip(pending, jobs, strict=True):
            job.df = df
            self._pending_chunks.pop(job, None)  # readers' chunks of the old frame
        self.reset_check()
        return sum(df.height for df in frames) + sum(df.height for df in jobs)

    def counters(self) -> dict[str, Any]:
        return {
            "events_in_memory": self.count,
            "total_events_logged": self.sealed_total + len(self.rows),
            "dropped_events": self.dropped,
            "rotations": self.rotations,
        }
