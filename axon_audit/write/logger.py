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

import orjson
import polars as pl

from axon_audit.integrity import manifest as _integrity
from axon_audit.write import wal as _wal
from axon_audit.exceptions import AuditTypeError, AuditUnavailableError, AuditValueError, ExportError
from axon_audit.io.location import Location, StorageOptions, resolve
from axon_audit.model.event import (
    IDS,
    format_us,
    now_us,
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
from axon_audit.read.archive import ExportFolder
from axon_audit.compliance.pii import PIIRedactor, as_redactor
from axon_audit.query.filters import Filters
from axon_audit.read.api import Reader, _as_target
from axon_audit.read.snapshot import Snapshot
from axon_audit.model.schema import EMPTY_FRAME, events_to_frame, normalize_batch, rows_to_frame
from axon_audit.io.atomic import atomic_write
from axon_audit.io.json_export import event_objects, write_json_export
from axon_audit.io.layout import unique_json_path
from axon_audit.io.parquet import plan_parquet, put_export, write_parquet_planned
from axon_audit.store.statistics import StatsCache
from axon_audit.store.hot import CHUNK_ROWS, Chunk, HotStore

__all__ = ["AuditLogger"]

log = logging.getLogger("axon_audit")

_OP = OperationType
_ST = EventStatus
_SUCCESS = EventStatus.SUCCESS
# Exact spellings seen in practice ("STORE", "store"); others go through coerce_*.
_OP_BY_NAME = {**{m.value: m for m in _OP}, **{m.value.lower(): m for m in _OP}}
_ST_BY_NAME = {**{m.value: m for m in _ST}, **{m.value.lower(): m for m in _ST}}
_INF = float("inf")
_new = object.__new__
_dumps = orjson.dumps
_DUMPS_OPTS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS  # as encode_metadata
_time_ns = time.time_ns
DEFAULT_FLUSH_SIZE = 16_384
BACKLOG_POLICIES = ("block", "raise")
_BLOCK_PAUSE = (0.01, 1.0)
_REPORT_EVERY = 60.0  # seconds between repeated error reports of one ongoing failure  # first and longest pause between export retries while blocked


class _PerThread(threading.local):
    defer = False  # log_event (always-WAL) awaits the fsync itself
    seq = 0


@dataclass(eq=False)
class _Export:
    """A rotated snapshot on its way to disk; queryable as archived until written.

    `wal_first`..`wal_last`: the write-ahead log epochs holding exactly these
    events (None without a WAL); they are deleted once the export is committed.
    """

    df: pl.DataFrame
    at: datetime
    failed: bool = False
    files: list[Path] = field(default_factory=list)
    wal_first: int | None = None
    wal_last: int | None = None
    done: bool = False
    # Object storage: the JSON object and Parquet plan of the first attempt. A retry
    # reuses the names, so objects of an attempt whose commit is in doubt are overwritten,
    # never left beside a second copy.
    remote: tuple[Location, list] | None = None


@dataclass(eq=False)
class _Attempt:
    """What one try of an export has written so far (undone if it fails)."""

    written: list = field(default_factory=list)
    job_file: Path | None = None


class AuditLogger(Reader):
    """Columnar audit logger: log events fast, query and export them.

    Args:
        max_events: events kept in memory before rotation.
        auto_export_path: folder for rotation exports (JSON + Parquet); None keeps
            the newest ``max_events // 2`` events at rotation and counts the rest
            as dropped.
        enable_rotation: False keeps every event in memory.
        flush_size: buffered rows sealed into one columnar chunk at a time.
        wal_path: local folder of the write-ahead log (needs `auto_export_path`,
            which may be an ``s3://`` URI); a new logger on it recovers every
            acknowledged event exactly once.
        wal_sync: "always" (fsynced before `log_event` returns; callers share
            fsyncs) or "interval" (fsynced every `wal_interval` seconds).
        hmac_key: signs the head of the export folder's manifest (on object
            storage: of this logger's own manifest; see `verify`).
        max_backlog: events awaiting export (failed or slow writes) before
            `backlog_policy` applies: "block" (wait, retrying) or "raise"
            (`AuditUnavailableError`). None: unbounded.
        fail_closed: raise `AuditUnavailableError` from `log` while exports or
            the WAL fail, instead of carrying on (the default).
        redact_pii: True (or a `PIIRedactor`) redacts PII in metadata before it is
            stored; event, user, session and entry ids are never touched.

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
        wal_path: str | Path | None = None,
        wal_sync: str = "always",
        wal_interval: float = _wal.DEFAULT_INTERVAL,
        hmac_key: str | bytes | None = None,
        max_backlog: int | None = None,
        backlog_policy: str = "block",
        fail_closed: bool = False,
        redact_pii: bool | PIIRedactor | None = None,
        storage_options: StorageOptions | None = None,
    ) -> None:
        if isinstance(max_events, bool) or not isinstance(max_events, int):
            raise AuditTypeError(f"max_events must be an int, got {type(max_events).__name__}")
        if max_events < 1:
            raise AuditValueError(f"max_events must be >= 1, got {max_events}")
        if isinstance(flush_size, bool) or not isinstance(flush_size, int) or flush_size < 1:
            raise AuditValueError(f"flush_size must be an int >= 1, got {flush_size!r}")
        if wal_path is not None and not isinstance(wal_path, (str, Path)):
            raise AuditTypeError(f"wal_path must be a path or None, got {type(wal_path).__name__}")
        if wal_path is not None and auto_export_path is None:
            raise AuditValueError("wal_path needs auto_export_path: the log is truncated once its events are exported")
        if wal_sync not in _wal.SYNC_POLICIES:
            raise AuditValueError(f"wal_sync must be one of {_wal.SYNC_POLICIES}, got {wal_sync!r}")
        if isinstance(wal_interval, bool) or not isinstance(wal_interval, (int, float)) or not 0 <= wal_interval <= 10:
            raise AuditValueError(f"wal_interval must be a number of seconds in [0, 10], got {wal_interval!r}")
        if max_backlog is not None and (isinstance(max_backlog, bool) or not isinstance(max_backlog, int)
                                        or max_backlog < 1):
            raise AuditValueError(f"max_backlog must be an int >= 1 or None, got {max_backlog!r}")
        if backlog_policy not in BACKLOG_POLICIES:
            raise AuditValueError(f"backlog_policy must be one of {BACKLOG_POLICIES}, got {backlog_policy!r}")
        if not isinstance(fail_closed, bool):
            raise AuditTypeError(f"fail_closed must be a bool, got {type(fail_closed).__name__}")
        self._hmac_key = _integrity._key_bytes(hmac_key)
        self._max_events = max_events
        self._storage_options = storage_options
        self._export_path = _export_root(auto_export_path, storage_options)
        self._manifest: _integrity.WriterManifest | None = None  # object storage: this logger's own manifest
        self._rotation = bool(enable_rotation)
        self._flush_size = flush_size
        self._redact = as_redactor(redact_pii)  # None when off: one attribute test in log()

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
        self._last_export_error: str | None = None
        self._pending_events = 0
        self._max_backlog = max_backlog
        self._backlog_policy = backlog_policy
        self._fail_closed = fail_closed
        self._refusing = False  # checked by log() before it accepts an event (backlog / fail-closed)
        self._blocked_waits = 0
        self._refused = 0
        self._wal: _wal.WriteAheadLog | None = None
        self._wal_path = Path(wal_path) if wal_path is not None else None
        self._wal_next_first = 1  # first epoch not yet in an export job
        self._wal_recovered = 0
        self._wal_dropped_bytes = 0
        self._wal_not_durable = 0
        self._not_durable_reported = -_REPORT_EVERY
        self._wal_jobs: list[_Export] = []  # jobs with WAL epochs, oldest first, until released
        # One attribute test on the logging path decides whether the slower, guarded
        # append (WAL, backlog bound, fail-closed) runs.
        self._guarded = wal_path is not None or max_backlog is not None or fail_closed
        self._next_check = 1
        self._wal_always = False
        self._tl = _PerThread()
        if self._wal_path is not None:
            self._open_wal(wal_sync, float(wal_interval))
            self._wal_always = wal_sync == "always"
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
        if type(operation) is not _OP:  # names as str: one dict lookup (coerce_* cost ~1 us)
            op = _OP_BY_NAME.get(operation) if type(operation) is str else None
            operation = op if op is not None else coerce_operation(operation)
        if type(status) is not _ST:
            st = _ST_BY_NAME.get(status) if type(status) is str else None
            status = st if st is not None else coerce_status(status)
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
        if self._redact is not None and metadata is not None:
            metadata = self._redact(metadata)  # opt-in PII redaction (ids are never touched)
        if metadata is None:
            meta = None
        elif type(metadata) is dict and metadata:
            # encode_metadata's fast path inlined (the call alone cost ~100 ns); anything
            # unusual goes through it again for the error that names the argument.
            try:
                meta = _dumps(metadata, None, _DUMPS_OPTS).decode()
            except Exception:  # noqa: BLE001 - re-raised as AuditValueError below
                meta = encode_metadata(metadata)
            if "null" in meta or "NaN" in meta:  # orjson writes NaN/inf as null: check them
                meta = encode_metadata(metadata)
        else:
            meta = encode_metadata(metadata)
        if error_message is not None and (type(error_message) is not str or not error_message.isascii()):
            error_message = check_text(error_message, "error_message")
        if duration_ms is not None and not (type(duration_ms) is float and 0.0 <= duration_ms < _INF):
            duration_ms = coerce_duration(duration_ms)
        ids = IDS
        row = (_time_ns() // 1000, next(ids.counter), ids.node, operation, user_id, session_id,
               entries, meta, status, error_message, duration_ms)
        buf = self._buf
        if self._guarded:  # WAL / backlog bound / fail-closed: see _append_guarded
            self._append_guarded(row)
        else:
            buf.append(row)
        if len(buf) >= self._next_check:
            self._maintain()
        event = _new(AuditEvent)  # AuditEvent._from_row inlined: one call less per event
        event._row = row
        event._id = None
        return event

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
        if self._wal_always:  # awaits the fsync instead of blocking the event loop
            return await self._log_event_durable(operation, user_id, session_id, entry_ids, metadata, status,
                                                 error_message, duration_ms)
        return self.log(operation, user_id, session_id, entry_ids, metadata, status, error_message, duration_ms)

    async def _log_event_durable(self, *args: Any) -> AuditEvent:
        wal = self._wal
        assert wal is not None
        tl = self._tl
        tl.defer = True  # _append_guarded leaves the wait to us (same thread, no await in between)
        try:
            event = self.log(*args)
        finally:
            tl.defer = False
        if not await wal.wait_durable_async(tl.seq):
            self._report_not_durable(1)
        return event

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
        if self._redact is not None:
            df = self._redact.redact_frame(df)
        n = df.height
        if n == 0:
            return 0
        if self._refusing:
            self._gate()
        wal = self._wal
        seq = 0
        with self._lock:
            self._flush_locked()  # keeps insertion order: earlier single events first
            if wal is not None:
                with wal.lock:
                    seq = wal.append_frame_locked(df)
            self._store.append(df)
            self._sealed_total += n
            self._rotate_if_full_locked()
            self._reset_check()
        if wal is not None and wal.always and not wal.wait_durable(seq):
            self._report_not_durable(n)
        return n

    # ------------------------------------------------------------------ buffer and rotation

    def _reset_check(self) -> None:
        if self._rotation:
            self._next_check = max(1, min(self._flush_size, self._max_events - self._store.count))
        else:
            self._next_check = self._flush_size

    def _flush_locked(self, n: int | None = None) -> None:
        buf = self._buf
        n = len(buf) if n is None else n
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
        self._resubmit_failed_locked()  # a rotation retries earlier failed exports first
        self._export_all_locked()

    def _cut_wal_locked(self) -> tuple[int, int] | None:
        """End the WAL's epoch exactly where the buffer is now and seal those rows:
        afterwards the store holds exactly the events of epochs < the new one."""
        wal = self._wal
        if wal is None:
            self._flush_locked()
            return None
        with wal.lock:  # log() appends buffer + WAL under this lock: both cut at one point
            n = len(self._buf)
            last = wal.cut_locked()
        self._flush_locked(n)
        first, self._wal_next_first = self._wal_next_first, last + 1
        return first, last

    def _export_all_locked(self) -> None:
        epochs = self._cut_wal_locked()
        chunks = self._store.take_all()
        at = datetime.now(timezone.utc)
        if not chunks:
            if epochs is not None:  # nothing to export: those epochs are empty, release them
                self._wal_jobs.append(_Export(EMPTY_FRAME, at, wal_first=epochs[0], wal_last=epochs[1], done=True))
                self._release_wal_locked()
            return
        job = _Export(pl.concat([c.df for c in chunks], rechunk=False), at)
        if epochs is not None:
            job.wal_first, job.wal_last = epochs
            self._wal_jobs.append(job)
        self._pending.append(job)
        self._pending_events += job.df.height
        self._update_refusing_locked()
        self._submit_locked(job)

    def _resubmit_failed_locked(self) -> None:
        for job in self._pending:
            if job.failed:
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

    def _wal_job_file(self, job: _Export, planned: list[str], manifest: str | None = None) -> Path | None:
        """Before an export writes anything: record its files (and, on object storage,
        the manifest that commits them) in the WAL folder, so recovery can tell a
        committed export from one cut off halfway."""
        if job.wal_last is None or self._wal_path is None:
            return None
        job_file = self._wal_path / f"job-{job.wal_last:08d}.json"
        body = orjson.dumps({"first_epoch": job.wal_first, "last_epoch": job.wal_last, "files": planned,
                             **({"manifest": manifest} if manifest else {})})
        atomic_write(job_file, lambda fh: fh.write(body))
        return job_file

    def _export_to_folder(self, job: _Export, root: Path, df: pl.DataFrame, attempt: _Attempt) -> None:
        """Chain, write and commit one export in a local folder, under its lock (the
        folder's one manifest chain is shared by every writer of the folder)."""
        objects = event_objects(df)
        with _integrity.folder_lock(root):
            manifest = _integrity.load_manifest(root)
            start = _integrity.chain_end(manifest, "json")
            df = df.with_columns(_integrity.chain_column(objects, start))
            json_path = unique_json_path(root, job.at)
            plan = plan_parquet(df, root / "parquet")
            planned = [p.relative_to(root).as_posix() for p in [json_path, *(p for p, _, _ in plan)]]
            attempt.job_file = self._wal_job_file(job, planned)
            json_path = write_json_export(df, json_path, replace=False, objects=objects)
            attempt.written.append(json_path)
            attempt.written += write_parquet_planned(df, plan)
            entries = [_integrity.file_entry(root, json_path, "json", df, start)]
            for path, a, n in plan:
                prev = start if a == 0 else df["chain"][a - 1]
                entries.append(_integrity.file_entry(root, path, "parquet", df.slice(a, n), prev))
            try:
                _integrity.append_entries(root, manifest, entries, self._hmac_key, format_us(now_us()))
            except BaseException:
                if not _committed(root, planned):
                    raise

    def _export_to_object_store(self, job: _Export, root: Location, df: pl.DataFrame, attempt: _Attempt) -> None:
        """Chain, upload and commit one export on object storage. No lock there: this
        logger's own manifest, written only by its export thread."""
        if self._manifest is None:
            self._manifest = _integrity.WriterManifest(root, self._hmac_key)
        manifest = self._manifest
        objects = event_objects(df)
        start = manifest.chain_end("json")
        df = df.with_columns(_integrity.chain_column(objects, start))
        if job.remote is None:
            job.remote = (unique_json_path(root, job.at), plan_parquet(df, root / "parquet"))  # type: ignore
        json_path, plan = job.remote
        names = [root.relative(p.path) for p in [json_path, *(p for p, _, _ in plan)]]
        attempt.job_file = self._wal_job_file(job, names, manifest.commit_name)
        attempt.written = [json_path, *(p for p, _, _ in plan)]  # before the upload: one may fail midway
        digests = put_export(df, json_path, plan, objects)
        entries = [_integrity.object_entry(names[0], "json", df, start, digests[0])]
        for name, (_, a, n), digest in zip(names[1:], plan, digests[1:]):
            prev = start if a == 0 else df["chain"][a - 1]
            entries.append(_integrity.object_entry(name, "parquet", df.slice(a, n), prev, digest))
        try:
            manifest.commit(entries, format_us(now_us()))
        except BaseException:
            try:
                landed = manifest.landed()
            except OSError:
                # Cannot tell whether the commit took effect: keep the objects and the WAL's
                # job record (recovery decides from the manifest); the retry reuses the names.
                attempt.written, attempt.job_file = [], None
                raise
            if not landed:
                raise

    def _write_export(self, job: _Export) -> None:
        """Write one snapshot: chain its events, write JSON + Parquet atomically, then
        commit them to the manifest (the commit point), then release its WAL epochs.
        All or nothing: on failure the written files are removed and the events stay
        in memory for the next rotation or flush()."""
        root = self._export_path
        assert root is not None
        with self._lock:
            if job not in self._pending:
                return
            earlier = self._pending[: self._pending.index(job)]
            if any(j.failed for j in earlier):  # keep export order = logging order
                job.failed = True
                return
        attempt = _Attempt()
        try:
            df = job.df.sort("timestamp", maintain_order=True)
            if isinstance(root, Location):
                self._export_to_object_store(job, root, df, attempt)
            else:
                self._export_to_folder(job, root, df, attempt)
        except Exception as exc:  # noqa: BLE001 - any failure keeps the events in memory
            for path in attempt.written:
                try:
                    path.unlink(missing_ok=True)  # all or nothing, so a retry writes no duplicate
                except OSError:  # the store refuses even that: verify will name the stray file
                    pass
            if attempt.job_file is not None:
                attempt.job_file.unlink(missing_ok=True)
            with self._lock:
                job.failed = True
                self._export_failures += 1
                self._last_export_error = f"{type(exc).__name__}: {exc}"
                self._update_refusing_locked()
            log.error("axon_audit: export of %d events to %s failed, kept in memory for retry: %s",
                      job.df.height, root, exc)
            return
        with self._lock:
            job.files = attempt.written
            job.done = True
            self._pending.remove(job)
            self._pending_events -= job.df.height
            self._exported_events += job.df.height
            if job.wal_last is not None:
                self._release_wal_locked()
            self._update_refusing_locked()

    # ------------------------------------------------------------------ WAL, backlog, fail-closed

    def _append_guarded(self, row: tuple) -> None:
        wal = self._wal
        if self._refusing or (self._fail_closed and wal is not None and wal.failed_upto > wal.durable):
            self._gate()
        if wal is None:
            self._buf.append(row)
            return
        with wal.lock:  # buffer and log take the row together (see _cut_wal_locked)
            self._buf.append(row)
            seq = wal.append_locked(row)
        # "interval" waits only when the writer lags far behind: bounds what a crash can take.
        if wal.always and self._tl.defer:
            self._tl.seq = seq  # log_event awaits it without blocking its event loop
            return
        if (wal.always or seq - wal.durable > _wal.MAX_LAG) and not wal.wait_durable(seq):
            self._report_not_durable(1)

    def _report_not_durable(self, n: int) -> None:
        wal = self._wal
        assert wal is not None
        with self._lock:
            self._wal_not_durable += n
        msg = (f"{n} event(s) accepted but not written to the write-ahead log {self._wal_path} "
               f"(kept in memory, retried): {wal.last_error}")
        if self._fail_closed:
            raise AuditUnavailableError(msg)
        now = time.monotonic()
        if now - self._not_durable_reported > _REPORT_EVERY:  # report, but do not flood the log
            self._not_durable_reported = now
            log.error("axon_audit: %s (%d such events so far)", msg, self._wal_not_durable)

    def _refusal_locked(self) -> str | None:
        """Why log() must not accept a new event now (None: it may)."""
        if self._fail_closed:
            failing = [j for j in self._pending if j.failed]
            if failing:
                return (f"fail_closed: exports to {self._export_path} are failing "
                        f"({self._pending_events} events wait in memory): {self._last_export_error}")
            wal = self._wal
            if wal is not None and wal.failed_upto > wal.durable:
                return f"fail_closed: the write-ahead log {self._wal_path} cannot be written: {wal.last_error}"
        if self._max_backlog is not None and self._pending_events >= self._max_backlog:
            return (f"backlog full: {self._pending_events} events wait for export to {self._export_path} "
                    f"(max_backlog={self._max_backlog}); last error: {self._last_export_error}")
        return None

    def _update_refusing_locked(self) -> None:
        self._refusing = self._refusal_locked() is not None

    def _gate(self) -> None:
        """Before accepting an event while refusing: raise (fail-closed or
        backlog_policy="raise") or block, retrying the exports, until there is room."""
        pause = _BLOCK_PAUSE[0]
        while True:
            with self._lock:
                reason = self._refusal_locked()
                if reason is None:
                    self._update_refusing_locked()
                    return
                if self._fail_closed or self._backlog_policy == "raise":
                    self._refused += 1
                    raise AuditUnavailableError(f"event refused: {reason}")
                self._blocked_waits += 1
            self.flush()  # retries failed exports and waits for the writes
            with self._lock:
                if self._refusal_locked() is None:
                    continue
            time.sleep(pause)
            pause = min(pause * 2, _BLOCK_PAUSE[1])

    def _release_wal_locked(self) -> None:
        """Delete the WAL epochs whose events are all exported (or cleared)."""
        wal = self._wal
        if wal is None:
            return
        pending = [j.wal_first for j in self._wal_jobs if not j.done and j.wal_first is not None]
        upto = min(pending) - 1 if pending else self._wal_next_first - 1
        self._wal_jobs = [j for j in self._wal_jobs if not (j.done and (j.wal_last or 0) <= upto)]
        if upto > wal.released_upto:
            wal.release(upto)
            assert self._wal_path is not None
            for jf in self._wal_path.glob("job-*.json"):
                if int(jf.stem[4:]) <= upto:
                    jf.unlink(missing_ok=True)

    def _recover_object_store_jobs(self, root: Location, wdir: Path) -> set[int]:
        """The WAL epochs of exports that their writer manifest committed; the objects
        of exports cut off before that are deleted (their events are replayed)."""
        skip: set[int] = set()
        manifests: dict[str, set[str]] = {}
        for jf in sorted(wdir.glob("job-*.json")):
            job = orjson.loads(jf.read_bytes())
            name = job.get("manifest")
            if name is not None and name not in manifests:
                manifests[name] = _integrity.listed_files(root, name)
            listed = manifests.get(name, set()) if name else set()
            if job["files"] and all(f in listed for f in job["files"]):
                skip.update(range(job["first_epoch"], job["last_epoch"] + 1))
                continue
            for f in job["files"]:
                (root / f).unlink(missing_ok=True)
            jf.unlink()
        return skip

    def _open_wal(self, sync: str, interval: float) -> None:
        """Recover what a previous logger left in the WAL folder, then start the log.

        An export cut off before its manifest commit is undone (its files removed,
        its events replayed); a committed export's epochs are skipped, so every
        acknowledged event comes back exactly once.
        """
        root, wdir = self._export_path, self._wal_path
        assert root is not None and wdir is not None
        try:
            wdir.mkdir(parents=True, exist_ok=True)
            if isinstance(root, Path):
                root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExportError(exc.errno, f"cannot open the write-ahead log {wdir} or the export folder {root} "
                              f"it recovers into: {exc.strerror or exc}") from exc
        owner = _wal.claim(wdir)  # one logger per WAL folder, across threads and processes
        if owner is None:
            raise AuditValueError(f"wal_path {wdir} is in use by another logger; give each logger (and each "
                                  "process) its own wal_path")
        if isinstance(root, Location):
            # Each job names the writer manifest that commits it; only this WAL's logger wrote
            # those files and that manifest, so no lock is needed to undo what it left halfway.
            skip = self._recover_object_store_jobs(root, wdir)
            rec = _wal.recover(wdir, skip)
        else:
            with _integrity.folder_lock(root):
                _integrity.remove_stale_temps(root)
                listed = {e.get("file") for e in _integrity.load_manifest(root).get("entries", [])}
                skip = set()
                for jf in sorted(wdir.glob("job-*.json")):
                    job = orjson.loads(jf.read_bytes())
                    if job["files"] and all(f in listed for f in job["files"]):
                        skip.update(range(job["first_epoch"], job["last_epoch"] + 1))
                    else:
                        for f in job["files"]:
                            if f not in listed:
                                (root / f).unlink(missing_ok=True)
                        jf.unlink()
                rec = _wal.recover(wdir, skip)
        existing = _wal.existing_epochs(wdir)
        for epoch in skip:
            _wal.segment_path(wdir, epoch).unlink(missing_ok=True)
        for jf in wdir.glob("job-*.json"):
            jf.unlink(missing_ok=True)
        rows: list[tuple] = []
        for _, kind, payload in rec.records:
            if kind == "R":
                rows.extend(payload)
                continue
            if rows:
                self._store.append(rows_to_frame(rows))
                rows = []
            self._store.append(payload)
        if rows:
            self._store.append(rows_to_frame(rows))
        n = rec.events
        self._sealed_total += n
        self._wal_recovered = n
        self._wal_dropped_bytes = rec.dropped_bytes
        for problem in rec.problems:
            log.warning("axon_audit: write-ahead log recovery: %s", problem)
        if n:
            log.warning("axon_audit: recovered %d events from the write-ahead log %s", n, wdir)
        first = max(existing, default=0) + 1
        self._wal_next_first = min(rec.epochs, default=first)
        self._wal = _wal.WriteAheadLog(wdir, sync, interval, first_epoch=first, owner=owner)
        self._wal.released_upto = self._wal_next_first - 1
        weakref.finalize(self, self._wal.close)  # the writer thread ends with its logger
        with self._lock:
            self._rotate_if_full_locked()

    def flush(self) -> None:
        """Seal buffered events into the store, retry failed exports, wait until
        every export started so far has been written and (with a WAL) until every
        event logged so far is fsynced.

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
            self._resubmit_failed_locked()
            futures = list(self._futures)
        wait(futures)
        if self._wal is not None:
            self._wal.sync()

    def _rewrite_memory(self, fn: Any) -> int:
        """Replace every in-memory frame (store and unwritten exports) by `fn(frame)`,
        which must keep the rows and their order; returns the events seen. Used by
        GDPR erasure. Waits until no export is being written, so no file is
        written from a frame that was not rewritten."""
        while True:
            self.flush()
            with self._lock:
                if any(not f.done() for f in self._futures):
                    continue  # a rotation started after flush(): wait for it too
                self._flush_locked()
                # Everything is computed before anything is swapped: if fn raises, nothing changed.
                frames = [fn(c.df) for c in self._store.chunks]
                jobs = [fn(j.df) for j in self._pending]  # failed exports waiting for a retry
                if any(new.height != old.height for new, old in zip(frames, self._store.chunks)):
                    raise AssertionError("_rewrite_memory: fn must keep every row")
                self._store.take_all()
                for df in frames:
                    self._store.append(df)
                for job, df in zip(self._pending, jobs):
                    job.df = df
                    self._pending_chunks.pop(job, None)  # readers' chunks of the old frame
                self._reset_check()
                return sum(df.height for df in frames) + sum(df.height for df in jobs)

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
                self._resubmit_failed_locked()
                self._export_all_locked()
            self._reset_check()
        self.flush()
        with self._lock:
            unwritten = self._pending_events
            err = self._last_export_error
        if unwritten:
            raise ExportError(f"{unwritten} events could not be exported to {self._export_path}; "
                              f"they are kept in memory (last error: {err})")

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
                "pending_export_events": self._pending_events,
                "export_failures": self._export_failures,
                "last_export_error": self._last_export_error,
                "refused_events": self._refused,
                "blocked_waits": self._blocked_waits,
                "max_backlog": self._max_backlog,
                "backlog_policy": self._backlog_policy,
                "fail_closed": self._fail_closed,
                **self._wal_counters(),
                "max_events": self._max_events,
                "rotation_enabled": self._rotation,
                "auto_export_enabled": self._export_path is not None,
                "auto_export_path": str(self._export_path) if self._export_path else None,
            }

    def _wal_counters(self) -> dict[str, Any]:
        wal = self._wal
        return {
            "wal_enabled": wal is not None,
            "wal_sync": None if wal is None else ("always" if wal.always else "interval"),
            "wal_fsyncs": 0 if wal is None else wal.fsyncs,
            "wal_write_failures": 0 if wal is None else wal.write_failures,
            "wal_not_durable_events": self._wal_not_durable,
            "wal_recovered_events": self._wal_recovered,
            "wal_dropped_bytes": self._wal_dropped_bytes,
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
    def auto_export_path(self) -> Path | str | None:
        """The export folder: a `Path`, or the URI of an object-store prefix."""
        p = self._export_path
        return p.uri if isinstance(p, Location) else p

    async def clear(self) -> None:
        """Empty memory; `total_events_logged` is kept."""
        with self._lock:
            epochs = self._cut_wal_locked()
            self._store.take_all()
            if epochs is not None:  # cleared on purpose: a restart must not bring them back
                self._wal_jobs.append(_Export(EMPTY_FRAME, datetime.now(timezone.utc),
                                              wal_first=epochs[0], wal_last=epochs[1], done=True))
                self._release_wal_locked()
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
        path = _as_target(path, self._storage_options)
        df = events_to_frame(events) if not isinstance(events, pl.DataFrame) else events
        write_json_export(df, path)
        return df.height

    def _repr_html_(self) -> str:
        """A summary card for Jupyter."""
        from axon_audit.display.html import logger_card

        return logger_card(self)

    def __repr__(self) -> str:
        return (f"AuditLogger(max_events={self._max_events}, auto_export_path={self.auto_export_path!r}, "
                f"enable_rotation={self._rotation}, events_in_memory={self.event_count})")


def _export_root(path: Any, storage_options: StorageOptions | None) -> Path | Location | None:
    """A local folder stays a `Path` (as given); a URI becomes a `Location`."""
    if path is None:
        return None
    if not isinstance(path, (str, Path)):
        raise AuditTypeError(f"auto_export_path must be a path, a URI or None, got {type(path).__name__}")
    if not (isinstance(path, str) and "://" in path):
        return Path(path)
    loc = resolve(path, storage_options=storage_options, argument="auto_export_path")
    return loc.local_path() if loc.is_local else loc


def _committed(root: Path, planned: list[str]) -> bool:
    """Whether the manifest lists every planned file (a commit whose last step raised)."""
    try:
        listed = {e.get("file") for e in _integrity.load_manifest(root).get("entries", [])}
    except Exception:  # noqa: BLE001 - unreadable: not committed
        return False
    return bool(planned) and all(f in listed for f in planned)

