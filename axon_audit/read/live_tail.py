"""A live logger's events from another process: its export log, then its write-ahead log.

`LiveFollower` is what ``axon-audit tail PATH --wal WAL`` follows. A logger with
a write-ahead log (`axon_audit.write.wal`) holds every accepted event on disk,
in acceptance order, in segment files ``wal-<epoch>.log`` until the epoch's
export is committed to the export folder's manifest; then the files go. The
follower prints what the manifests list (`read.log_order.LogFollower`) and then
the segments' whole records as the writer's group commits land. A torn or
still-being-written last record is not read yet; a corrupt region is skipped
as recovery skips it (`write.wal_records.scan_segment`).

Exactly once across the live -> exported transition. The rule:

* An event read from a segment is remembered by its id (per epoch) until its
  export is seen; the exported part's rows with a remembered id are skipped.
  So an epoch read live prints in acceptance order; one that is exported before
  it was read (all or its rest) prints in the manifest's order (an export sorts
  a rotation by time). Either way each event prints once.
* A segment is not read once its export is committed: the logger's job record
  (``job-<epoch>.json`` in the WAL folder, written before the export writes a
  file) names the export's parts; when they are all seen on the manifest, its
  epochs are exported (recovery uses the same record and rule).
* Each look runs: list the segments, read the manifests, read the job records,
  read the listed segments in epoch order. The logger deletes a segment only
  after its commit, and its job record only after the segment, so: what was
  deleted before the listing is on the manifest read; a job record read later
  that is not yet on the manifest means its segment is read live (and its
  export skipped later); a segment that vanishes while it is read stops the
  look there, and the next look's manifest read holds its rest, before any
  later segment is read. Segments are followed by number: a WAL folder never
  reuses one (`write.wal_records.mark_released`), a restarted logger (after
  recovery) numbers on, and its recovered events are skipped when exported.
* A segment is finished once a later one exists (the writer writes epochs in
  order); the remembered ids of an epoch are forgotten once its segment is gone
  from a listing that came before a manifest read (its export is then seen, or
  it was cleared and never will be).

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from axon_audit import AuditLogger
    >>> from axon_audit.io.location import resolve
    >>> folder, wal = tempfile.mkdtemp(), Path(tempfile.mkdtemp()) / "wal"
    >>> audit = AuditLogger(max_events=3, auto_export_path=folder, wal_path=wal)
    >>> follower = LiveFollower(resolve(folder), wal)
    >>> for i in range(4):
    ...     _ = audit.log("store", user_id=f"u{i}")
    >>> [u for df in follower.fresh() for u in df["user_id"].cast(str)]
    ['u0', 'u1', 'u2', 'u3']
    >>> audit.close(); follower.fresh()
    []
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from axon_audit.exceptions import AuditValueError
from axon_audit.io.location import Location, StorageOptions, resolve
from axon_audit.model.schema import COLUMNS, FRAME_SCHEMA, frame_to_events
from axon_audit.query.filters import Filters
from axon_audit.read.log_order import LogFollower
from axon_audit.write.wal_records import decode_records, existing_epochs, scan_segment, segment_path

__all__ = ["LiveFollower", "follow_frames", "follow_log"]


class LiveFollower:
    """New events of the export folder at `root` and of the WAL folder `wal`, each once,
    in log order (see the module). `backlog`: the WAL's events not yet exported when
    it was made (not returned by `fresh`)."""

    def __init__(self, root: Location, wal: Path | str) -> None:
        self.wal = Path(wal)
        self._offsets: dict[int, int] = {}  # bytes of a segment read so far
        self._done = 0  # segments <= this are finished (read, exported or gone)
        self._live: dict[int, pl.Series] = {}  # per epoch: ids read from its segment, export not yet seen
        listed = existing_epochs(self.wal)
        self._log = LogFollower(root, listing=False)  # the parts there now count as seen; a part not yet
        # committed (no manifest lists it) is not read: recovery may remove it, its events are on the WAL
        self._forget(listed)
        self.backlog = _concat(self._read(listed, self._exported()))

    def fresh(self) -> list[pl.DataFrame]:
        """The events that landed since the last call: exported parts, then WAL records."""
        listed = existing_epochs(self.wal)
        out = [self._unseen(df) for df in self._log.fresh()]
        self._forget(listed)
        out += self._read(listed, self._exported())
        return [df for df in out if df.height]

    def _unseen(self, df: pl.DataFrame) -> pl.DataFrame:
        """`df` without the events already read live (they are forgotten: each is exported once)."""
        if not self._live:
            return df
        ids = df["event_id"]
        known = pl.concat(list(self._live.values()))
        for epoch, got in list(self._live.items()):
            self._live[epoch] = got.filter(~got.is_in(ids.implode()))
        return df.filter(~pl.col("event_id").is_in(known.implode()))

    def _forget(self, listed: list[int]) -> None:
        # Called after a manifest read that followed the listing: a segment missing
        # from the listing is exported (and seen) or was cleared.
        there = set(listed)
        self._live = {e: ids for e, ids in self._live.items() if e in there and ids.len()}

    def _exported(self) -> set[int]:
        """The epochs of job records whose parts are all on the manifests read."""
        out: set[int] = set()
        for jf in sorted(self.wal.glob("job-*.json")):
            try:
                job = orjson.loads(jf.read_bytes())
            except (OSError, orjson.JSONDecodeError):  # released meanwhile: its segments are gone too
                continue
            parts = [f for f in job.get("files", []) if f.endswith(".parquet")]
            if parts and all(f in self._log.seen for f in parts):
                out.update(range(int(job["first_epoch"]), int(job["last_epoch"]) + 1))
        return out

    def _read(self, listed: list[int], exported: set[int]) -> list[pl.DataFrame]:
        out: list[pl.DataFrame] = []
        for i, epoch in enumerate(listed):
            if epoch <= self._done:
                continue
            last = i == len(listed) - 1  # the writer may still append to it
            if epoch in exported:  # its rest was on the manifest
                self._finish(epoch)
                continue
            start = self._offsets.get(epoch, 0)
            try:
                with open(segment_path(self.wal, epoch), "rb") as fh:
                    fh.seek(start)
                    data = fh.read()
            except FileNotFoundError:  # exported meanwhile: the next manifest read has its rest
                break
            records, _, good_end = scan_segment(data)
            self._offsets[epoch] = start + good_end  # a torn or unwritten last record: not read yet
            if records:
                df = pl.concat([f.select(COLUMNS).cast(FRAME_SCHEMA) for f in decode_records(records)])
                ids = df["event_id"]
                self._live[epoch] = pl.concat([self._live[epoch], ids]) if epoch in self._live else ids
                out.append(df)
            if last:
                break
            self._finish(epoch)  # a later segment exists: nothing more comes to this one
        return out

    def _finish(self, epoch: int) -> None:
        self._done = epoch
        self._offsets.pop(epoch, None)


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    return pl.concat(frames) if frames else pl.DataFrame(schema=FRAME_SCHEMA).select(COLUMNS)


def follow_frames(follower: LiveFollower | LogFollower, interval: float = 1.0, expr: pl.Expr | None = None,
                  stop: Callable[[], bool] = lambda: False) -> Iterator[pl.DataFrame]:
    """Look for new events every `interval` seconds until `stop()`; yield each look's
    events matching `expr` (the hot frame's columns, in log order) when there are any."""
    while not stop():
        time.sleep(interval)
        frames = [df.select(COLUMNS).cast(FRAME_SCHEMA) for df in follower.fresh()]
        if frames:
            df = pl.concat(frames)
            if expr is not None:
                df = df.filter(expr)
            if df.height:
                yield df


def follow_log(path: str | Path, wal: str | Path | None = None, *, batches: bool = False, backlog: bool = False,
               interval: float = 1.0, storage_options: StorageOptions | None = None,
               stop: Callable[[], bool] = lambda: False, **filters: Any) -> Iterator[Any]:
    """`AuditLogger.subscribe` from another process: the events matching `filters` (the
    keywords of `query_events`, without `limit`) that land in the export folder `path`
    from now on and, with `wal` (the logger's ``wal_path``), in its write-ahead log as
    they are written; each once, in log order (see the module). Yields `AuditEvent`s, or
    DataFrames (the hot frame's columns) with ``batches=True``; ``backlog=True`` first
    yields the WAL's events not yet exported. Looks every `interval` seconds until
    `stop()` is true (checked before each look).

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from axon_audit import AuditLogger
        >>> folder, wal = tempfile.mkdtemp(), Path(tempfile.mkdtemp()) / "wal"
        >>> audit = AuditLogger(max_events=2, auto_export_path=folder, wal_path=wal)
        >>> _ = audit.log("store", user_id="u0", status="failure")
        >>> looks = iter([False, True])
        >>> feed = follow_log(folder, wal, backlog=True, interval=0.01, status="failure", stop=lambda: next(looks))
        >>> for i in range(1, 4):
        ...     _ = audit.log("store", user_id=f"u{i}", status="failure" if i % 2 else "success")
        >>> audit.flush()  # on the WAL now (its fsync runs every 5 ms by default), or exported
        >>> [e.user_id for e in feed]
        ['u0', 'u1', 'u3']
        >>> audit.close()
    """
    if not interval > 0:
        raise AuditValueError(f"interval: expected seconds > 0, got {interval!r}")
    expr = Filters.of(filters, allow_limit=False).expr()
    root = resolve(str(path), storage_options=storage_options)
    follower: LiveFollower | LogFollower = LogFollower(root) if wal is None else LiveFollower(root, wal)
    first = follower.backlog if backlog and isinstance(follower, LiveFollower) else None
    if first is not None and expr is not None:
        first = first.filter(expr)
    return _feed([first] if first is not None and first.height else [], follow_frames(follower, interval, expr, stop),
                 batches)


def _feed(first: list[pl.DataFrame], looks: Iterator[pl.DataFrame], batches: bool) -> Iterator[Any]:
    # A generator apart from follow_log: the follower starts (and bad input raises) at the call.
    for df in first:
        if batches:
            yield df
        else:
            yield from frame_to_events(df)
    for df in looks:
        if batches:
            yield df
        else:
            yield from frame_to_events(df)
