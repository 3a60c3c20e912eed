"""`AuditLogger`: the seed's API as a small facade over the write components.

Logging appends one row tuple to a list (no lock: `list.append` is atomic, and
only one flusher at a time removes rows, from the front, after they are sealed
into a frame). Reads flush first, so a query sees every event whose `log_event`
returned. A full store rotates: its chunks become one `ExportJob` that the
`Exporter` writes through the export target on its own thread, so the logging
path never waits on file I/O. The components, each called one way only:

    AuditLogger ─► HotBuffer (write.buffer)          rows, chunks, rotation, snapshots
        │       ─► WalLane (write.durability)        WAL epochs, job records, recovery
        │       ─► Backpressure (write.backpressure) refuse / block / raise
        └──────► Exporter (write.exporter) ─► FolderTarget | ObjectStoreTarget (write.targets)
    (reports back up by callback only: Exporter.on_done, HotBuffer.on_rotated)
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import orjson

from axon_audit.compliance.pii import PIIRedactor, as_redactor
from axon_audit.display.html import logger_card
from axon_audit.exceptions import ExportError
from axon_audit.integrity.checkpoint import SigningKey
from axon_audit.io.location import Location, StorageOptions
from axon_audit.model.coerce import (
    check_text,
    checked_metadata,
    coerce_duration,
    coerce_entry_ids,
    coerce_operation,
    coerce_status,
    encode_metadata,
)
from axon_audit.model.enums import EventStatus, OperationType
from axon_audit.model.event import AuditEvent
from axon_audit.model.ids import IDS
from axon_audit.model.timestamps import naive_time_rule
from axon_audit.read.api import Reader
from axon_audit.read.snapshot import Snapshot
from axon_audit.write import wal as _wal
from axon_audit.write.backpressure import Backpressure
from axon_audit.write.batch import BatchIntake
from axon_audit.write.buffer import HotBuffer
from axon_audit.write.config import DEFAULT_FLUSH_SIZE, LoggerConfig
from axon_audit.write.coverage import Coverage
from axon_audit.write.durability import WalLane, wal_counters
from axon_audit.write.exporter import export_counters, logger_exporter
from axon_audit.write.guard import Guard
from axon_audit.write.subscription import subscribe as _subscribe

__all__ = ["DEFAULT_FLUSH_SIZE", "AuditLogger"]

log = logging.getLogger("axon_audit")

_OP = OperationType
_ST = EventStatus
_SUCCESS = EventStatus.SUCCESS
# Exact spellings seen in practice ("STORE", "store") -> the value a row holds; others: coerce_*.
_OP_BY_NAME = {**{m.value: m.value for m in _OP}, **{m.value.lower(): m.value for m in _OP}}
_ST_BY_NAME = {**{m.value: m.value for m in _ST}, **{m.value.lower(): m.value for m in _ST}}
_INF = float("inf")
_new = object.__new__
_dumps = orjson.dumps
_DUMPS_OPTS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS  # as encode_metadata
_time_ns = time.time_ns


class AuditLogger(Reader):
    """Columnar audit logger: log events fast, query and export them.

    Args:
        max_events: events kept in memory before rotation.
        auto_export_path: folder for rotation exports (JSON + Parquet), which reads
            then cover too (see `query_events`); None keeps the newest
            ``max_events // 2`` events at rotation and drops the rest (with a warning).
        enable_rotation: False keeps every event in memory.
        flush_size: buffered rows sealed into one columnar chunk at a time.
        wal_path: local folder of the write-ahead log (needs `auto_export_path`,
            which may be an ``s3://`` URI); a new logger on it recovers every
            acknowledged event exactly once.
        wal_sync: "always" (fsynced before `log_event` returns; callers share
            fsyncs) or "interval" (fsynced every `wal_interval` seconds).
        hmac_key: signs the head of the export folder's manifest (on object
            storage: of this logger's own manifest; see `verify`).
        signing_key: an Ed25519 `SigningKey` (or its text, or a key file) that
            signs each export's checkpoint of the export log; its public half
            alone verifies (`verify(..., public_key=)`, `verify_inclusion`).
        max_backlog: events awaiting export (failed or slow writes) before
            `backlog_policy` applies: "block" (wait, retrying) or "raise"
            (`AuditUnavailableError`). "default" (the default): with
            `auto_export_path` and rotation, ``max(4 * max_events, 1_000_000)``
            events (`write.backpressure.default_max_backlog`), else unbounded.
            None: unbounded, only when asked for (memory then grows with the
            backlog while exports lag or fail).
        fail_closed: raise `AuditUnavailableError` from `log` while exports or
            the WAL fail, instead of carrying on (the default).
        redact_pii: True (or a `PIIRedactor`) redacts PII in metadata before it is
            stored; event, user, session and entry ids are never touched.
        naive_time: "local" (the host's zone, as `datetime.now()`) or "utc": how naive times
            read (`log_batch`, query bounds); default ``$AXON_AUDIT_NAIVE_TIME`` or "local".
        lake_format: "parquet" (the default) or "delta": each rotation one Delta Lake commit
            at `auto_export_path` (the ``delta`` extra; `io.delta`); read with ``AuditArchive(as_of=)``.

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
        signing_key: SigningKey | str | Path | None = None,
        max_backlog: int | Literal["default"] | None = "default", backlog_policy: str = "block",
        fail_closed: bool = False, redact_pii: bool | PIIRedactor | None = None,
        storage_options: StorageOptions | None = None,
        naive_time: Literal["local", "utc"] | None = None, lake_format: Literal["parquet", "delta"] = "parquet",
    ) -> None:
        self._naive_time = naive_time_rule(naive_time)
        cfg = self._config = LoggerConfig.check(
            max_events, auto_export_path, enable_rotation, flush_size=flush_size, wal_path=wal_path,
            wal_sync=wal_sync, wal_interval=wal_interval, hmac_key=hmac_key, signing_key=signing_key,
            max_backlog=max_backlog,
            backlog_policy=backlog_policy, fail_closed=fail_closed, storage_options=storage_options,
            lake_format=lake_format)
        self._hmac_key = cfg.hmac_key  # erasure re-signs the folder with it
        self._storage_options = cfg.storage_options
        self._export_path = cfg.export_root
        self._redact = as_redactor(redact_pii)  # None when off: one attribute test in log()
        self._lock = threading.RLock()
        lane = self._lane = WalLane(cfg.wal_path) if cfg.wal_path is not None else None
        bp = self._bp = Backpressure(cfg.max_backlog, cfg.backlog_policy, cfg.fail_closed, root=cfg.export_root,
                                     lane=lane)
        self._exporter = bp.exporter = (
            None if cfg.export_root is None else
            logger_exporter(cfg.export_target(), self._lock, lane, bp.update_locked))
        folder = cfg.export_folder()
        self._hot = hot = HotBuffer(cfg.max_events, cfg.rotation, cfg.flush_size, lane, self._exporter,
                                    self._lock, folder)
        hot.on_rotated = bp.update_locked
        self._cover = Coverage(hot, self._exporter)  # reads: whole trail when exporting (write.coverage)
        self._buf = hot.rows  # the hot path appends here directly
        # One attribute test on the logging path decides whether the slower, guarded
        # append (WAL, fail-closed) runs; a backlog bound alone costs one flag test.
        self._guarded = cfg.guarded
        self._guard = Guard(hot, lane, bp)
        self._intake = BatchIntake(hot, self._guard, self._redact, self._naive_time)
        self._wal: _wal.WriteAheadLog | None = None
        self._wal_always = False
        if lane is not None and self._exporter is not None and cfg.export_root is not None:
            hot.sealed_total += lane.open(cfg.export_root, self._exporter.target, hot.store, cfg.wal_sync,
                                          cfg.wal_interval, self)
            self._wal = lane.wal
            self._wal_always = cfg.wal_sync == "always"
            with self._lock:
                hot.rotate_if_full_locked()
        hot.reset_check()
        if self._export_path is not None:
            ref = weakref.ref(self)
            atexit.register(lambda: _close_at_exit(ref()))

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
        # every argument has passed, so an invalid call logs nothing. Rows hold the enums'
        # values (model.row); a name as str is one dict lookup (coerce_* ~1 us).
        op = (operation._value_ if type(operation) is _OP
              else _OP_BY_NAME.get(operation) if type(operation) is str else None)
        if op is None:
            op = coerce_operation(operation).value
        st = status._value_ if type(status) is _ST else _ST_BY_NAME.get(status) if type(status) is str else None
        if st is None:
            st = coerce_status(status).value
        if user_id is not None and (type(user_id) is not str or not user_id.isascii()):
            user_id = check_text(user_id, "user_id")
        if session_id is not None and (type(session_id) is not str or not session_id.isascii()):
            session_id = check_text(session_id, "session_id")
        if entry_ids is None:
            entries: tuple[str, ...] = ()
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
        meta: str | None
        if metadata is None:
            meta = None
        elif type(metadata) is dict and metadata:
            # encode_metadata's fast path inlined (the call alone cost ~100 ns); anything
            # unusual goes through it again for the error that names the argument.
            try:
                text = _dumps(metadata, None, _DUMPS_OPTS).decode()
            except Exception:  # noqa: BLE001 - re-raised as AuditValueError by encode_metadata
                meta = encode_metadata(metadata)
            else:  # orjson writes NaN/inf as null and an Enum/UUID as its value: only plain,
                meta = text  # finite scalars pass here; encode_metadata refuses or accepts the rest
                for v in metadata.values():
                    t = type(v)
                    if not (t is str or t is int or v is None or t is bool or (t is float and v - v == 0.0)):
                        meta = checked_metadata(metadata, text)  # walks the rest; no second dumps
                        break
        else:
            meta = encode_metadata(metadata)
        if error_message is not None and (type(error_message) is not str or not error_message.isascii()):
            error_message = check_text(error_message, "error_message")
        if duration_ms is not None and not (type(duration_ms) is float and 0.0 <= duration_ms < _INF):
            duration_ms = coerce_duration(duration_ms)
        ids = IDS
        row = (_time_ns() // 1000, next(ids.counter), ids.node, op, user_id, session_id,
               entries, meta, st, error_message, duration_ms)
        buf = self._buf
        if self._guarded:  # WAL / fail-closed: see write.guard
            self._guard.append(row)
        else:
            # The backlog bound (`max_backlog`, on by default with exports) as one flag, renewed by
            # Backpressure.update_locked at each rotation and export commit or failure: block or raise.
            if self._bp.refusing:
                self._guard.gate()
            buf.append(row)
        if len(buf) >= buf.next_check:  # the buffer carries its own threshold: no extra lookup
            self._hot.maintain()
        event: AuditEvent = _new(AuditEvent)  # AuditEvent._from_row inlined: one call less per event
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
            event: AuditEvent = await self._guard.log_durable(self.log, operation, user_id, session_id, entry_ids,
                                                              metadata, status, error_message, duration_ms)
            return event
        return self.log(operation, user_id, session_id, entry_ids, metadata, status, error_message, duration_ms)

    def log_batch(self, events: Any) -> int:
        """Log many events at once from a pyarrow Table/RecordBatch, a polars
        DataFrame, or a list of dicts (export-format keys) or `AuditEvent`s.

        Only `operation` is required; missing ids and timestamps are generated.
        Values obey `log`'s rules; ids a batch brings must be distinct and new.
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
        return self._intake.admit(events)  # checks ids the batch brings against what is held

    subscribe = _subscribe  # live subscriptions (write.subscription): nothing per event on log()

    def flush(self) -> None:
        """Seal buffered events into the store, retry failed exports, wait until the
        exports of every event logged so far are written and (with a WAL) until
        every event logged so far is fsynced. Raises `ExportError` naming what is
        not durable when some of it could not be (it stays in memory, retried).

        Example:
            >>> from axon_audit import AuditLogger
            >>> audit = AuditLogger()
            >>> _ = audit.log("store")
            >>> audit.flush(); audit.event_count
            1
        """
        if (problem := self._hot.unsettled(*self._hot.flush(), self._export_path)) is not None:
            raise ExportError(problem)

    def _settle(self, exports: bool = True) -> None:
        """`flush` that leaves failures to the counters (erasure goes on while exports fail);
        with `exports` False only the WAL's fsync of what was logged so far is waited for."""
        self._hot.flush() if exports else self._hot.settle([])

    def _rewrite_memory(self, fn: Any) -> int:
        """Replace every in-memory frame (store and unwritten exports) by `fn(frame)`,
        which must keep the rows and their order; returns the events seen. Used by
        GDPR erasure. While the frames are swapped no export is being written (the
        one in progress is waited for, later ones are held), so no file is written
        from a frame that was not rewritten; logging goes on meanwhile, and no
        backlog has to drain first."""
        with self._lock:
            if self._exporter is None:
                return self._hot.rewrite_locked(fn)
            with self._exporter.paused_locked():
                return self._hot.rewrite_locked(fn)

    def close(self) -> None:
        """Flush, export everything in memory (when `auto_export_path` is set), wait
        for the writes, end every subscription (after what was logged before). The
        logger stays usable. Raises `ExportError` if some of those events could not
        be written (still in memory); events logged by other threads meanwhile are not counted.

        Example:
            >>> from axon_audit import AuditLogger
            >>> with AuditLogger() as audit:
            ...     _ = audit.log("store")
        """
        jobs, _ = self._hot.export_everything()
        if (problem := self._hot.unsettled(jobs, True, self._export_path)) is not None:
            raise ExportError(problem)

    def __enter__(self) -> AuditLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> AuditLogger:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.close)

    # ------------------------------------------------------------------ reading

    def _snapshot(self, include_archived: bool | None = None, small: bool = False) -> Snapshot:
        return self._hot.snapshot(self._cover.check(include_archived), small)

    def _coverage(self, include_archived: bool | None) -> dict[str, Any]:
        return self._cover.fields(include_archived)

    # ------------------------------------------------------------------ statistics

    def _counters(self) -> dict[str, Any]:
        ex, lane, root = self._exporter, self._lane, self._export_path
        with self._lock:
            return {
                **self._hot.counters(), **export_counters(ex), **self._bp.counters(), **wal_counters(lane),
                "max_events": self._hot.max_events, "rotation_enabled": self._hot.rotation,
                "auto_export_enabled": root is not None, "auto_export_path": str(root) if root else None,
            }

    def get_stats(self) -> dict[str, Any]:
        """The older API's counters: `events_in_memory`, `total_events_logged`,
        `max_events`, `rotation_enabled`, `auto_export_enabled` (and the rest of
        the logger's counters)."""
        return self._counters()

    @property
    def event_count(self) -> int:
        """Events in memory now."""
        return self._hot.count

    @property
    def total_events_logged(self) -> int:
        """Every event ever accepted by this logger (kept across `clear()`)."""
        return self._hot.sealed_total + len(self._buf)

    @property
    def max_events(self) -> int:
        return self._hot.max_events

    @property
    def auto_export_path(self) -> Path | str | None:
        """The export folder: a `Path`, or the URI of an object-store prefix."""
        p = self._export_path
        return p.uri if isinstance(p, Location) else p

    async def clear(self) -> None:
        """Empty memory; `total_events_logged` is kept."""
        with self._lock:
            self._hot.clear_locked()

    def _repr_html_(self) -> str:
        """A summary card for Jupyter."""
        return logger_card(self)

    def __repr__(self) -> str:
        return (f"AuditLogger(max_events={self._hot.max_events}, auto_export_path={self.auto_export_path!r}, "
                f"enable_rotation={self._hot.rotation}, events_in_memory={self.event_count})")


def _close_at_exit(audit: AuditLogger | None) -> None:
    try:
        if audit is not None:
            audit.close()
    except Exception as exc:  # noqa: BLE001 - at exit, report and go on
        log.error("axon_audit: export at exit failed: %s", exc)
