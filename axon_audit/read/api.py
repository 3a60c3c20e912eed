"""The read API shared by the logger and archives (`Reader`).

`Reader` turns a `Snapshot` (taken by the subclass's `_snapshot`) and the
caller's filters into answers: events newest first, LazyFrames, Arrow,
statistics, SQL and exports.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from axon_audit.exceptions import AuditTypeError
from axon_audit.io.json_export import write_json_export
from axon_audit.io.location import Location, StorageOptions, resolve
from axon_audit.io.sealed import check_export_target
from axon_audit.model.enums import EventStatus, OperationType
from axon_audit.model.event import AuditEvent
from axon_audit.model.results import EventList, Statistics
from axon_audit.model.schema import events_to_frame, frame_to_events
from axon_audit.query.filters import Filters
from axon_audit.query.row_compiler import select_rows
from axon_audit.read.snapshot import Snapshot
from axon_audit.read.sql import polars_safe, run_sql
from axon_audit.store.row_statistics import ROW_TUPLES, columns_of_rows, row_statistics, row_user_statistics
from axon_audit.store.statistics import copy_answer, snapshot_statistics, snapshot_user_statistics, user_statistics

__all__ = ["Reader"]

_EVERY_EVENT = Filters()  # frozen: one for every statistics read


class Reader:
    """The read API over a `Snapshot` (implemented by `_snapshot`)."""

    _storage_options: StorageOptions | None = None  # where exports to URIs go (a logger's setting)
    _naive_time: str | None = None  # how naive time bounds read: None is $AXON_AUDIT_NAIVE_TIME or local
    _stats_rows: tuple[Any, int] | None = None  # the buffered rows a statistics read last answered from

    def _snapshot(self, include_archived: bool | None, small: bool = False) -> Snapshot:  # pragma: no cover
        """What a read sees; `include_archived` None is the source's default (a logger:
        its whole trail when it exports, memory otherwise). `small`: the caller can
        take `Snapshot.rows` (a small logger's buffered rows) instead of chunks."""
        raise NotImplementedError

    def _small_snapshot(self, include_archived: bool | None) -> Snapshot:
        """`_snapshot`, with the buffered rows of a logger holding few events (none
        sealed yet) as `Snapshot.rows`; else sealed as usual. Above `ROW_TUPLES` rows,
        a statistics read asked again of the same rows seals them: the sealed summaries
        answer repeated reads in microseconds, while sealing costs ~2 ms at 1 000 rows
        against ~0.2 ms for an answer from the rows."""
        snap = self._snapshot(include_archived, small=True)
        if snap.rows is not None and len(snap.rows) > ROW_TUPLES:
            # Rows are only appended to the buffer or taken from its front: the same first
            # row (held here, so never another one at its address) and length, the same rows.
            seen, self._stats_rows = self._stats_rows, (snap.rows[0], len(snap.rows))
            if seen is not None and seen[0] is snap.rows[0] and seen[1] == len(snap.rows):
                return self._snapshot(include_archived)
        return snap

    def _coverage(self, include_archived: bool | None) -> dict[str, Any]:
        """What such a read covers, added to `get_statistics` (a logger's `covers`, `events_not_covered`)."""
        return {}

    def query_events(
        self,
        user_id: str | Iterable[str] | None = None,
        session_id: str | Iterable[str] | None = None,
        operation: OperationType | str | Iterable[OperationType | str] | None = None,
        status: EventStatus | str | Iterable[EventStatus | str] | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        entry_ids: Iterable[str] | None = None,
        limit: int | None = None,
        *,
        include_archived: bool | None = None,
        **more: Any,
    ) -> EventList:
        """Events matching every given filter, newest first (an `EventList`: a list
        that a notebook shows as a table).

        `operation`, `status`, `user_id` and `session_id` take one value or several;
        `entry_ids` matches events touching any of them; the time bounds are
        inclusive (a naive datetime is local time); `start_time` after `end_time`
        matches nothing. More filters: `event_id`, `metadata={"key": value}`
        (str/int/bool value), `error_contains`, `min_duration_ms`, `max_duration_ms`.
        A logger that exports (`auto_export_path`) searches its whole trail by default:
        memory and the rotated events (each event once); `include_archived=False`
        searches memory only (and logs a warning once if that leaves events out).

        Example:
            >>> from axon_audit import AuditLogger, OperationType
            >>> audit = AuditLogger()
            >>> for op in ("store", "store", "recall"):
            ...     _ = audit.log(op, user_id="user_123", entry_ids=["entry_1"], metadata={"source": "api"})
            >>> len(audit.query_events(user_id="user_123", operation=OperationType.STORE))
            2
            >>> len(audit.query_events(entry_ids=["entry_1", "entry_9"], limit=1))
            1
            >>> len(audit.query_events(metadata={"source": "api"}, operation=["store", "recall"]))
            3
        """
        f = Filters.of(dict(user_id=user_id, session_id=session_id, operation=operation, status=status,
                            start_time=start_time, end_time=end_time, entry_ids=entry_ids, limit=limit, **more),
                      naive_time=self._naive_time)
        _check_flag(include_archived)
        snap = self._snapshot(include_archived, small=True)
        if snap.rows is not None:  # a few buffered events: filtered as rows, no frame (see row_compiler)
            return EventList(select_rows(snap.rows, f, f.limit))
        if (small := snap.small_rows()) is not None:  # a few events in chunks: their row tuples, as above
            return EventList(select_rows(small[0], f, f.limit, small[1]))
        return EventList(frame_to_events(snap.guard(f, lambda: snap.select(f))))

    async def get_events(
        self,
        operation: OperationType | str | Iterable[OperationType | str] | None = None,
        user_id: str | Iterable[str] | None = None,
        session_id: str | Iterable[str] | None = None,
        status: EventStatus | str | Iterable[EventStatus | str] | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        limit: int | None = None,
        **filters: Any,
    ) -> EventList:
        """`query_events` for async code (runs in a worker thread). The positional
        order is Axon's `AuditLogger.get_events` (operation, user_id, session_id,
        status, start_time, end_time, limit), so Axon callers run unchanged; every
        filter also works by keyword, and the other `query_events` filters too.

        Example:
            >>> import asyncio
            >>> from axon_audit import AuditLogger
            >>> audit = AuditLogger()
            >>> for op in ("store", "recall", "store"):
            ...     _ = audit.log(op, user_id="user_123")
            >>> len(asyncio.run(audit.get_events("store", "user_123"))), len(asyncio.run(audit.get_events(limit=1)))
            (2, 1)
        """
        return await asyncio.to_thread(self.query_events, user_id=user_id, session_id=session_id,
                                       operation=operation, status=status, start_time=start_time,
                                       end_time=end_time, limit=limit, **filters)

    def get_event(self, event_id: str, *, include_archived: bool | None = None) -> AuditEvent | None:
        """The event with this id, or None; answered from the chunk indexes (and,
        for archived events, from the Parquet row groups whose id range holds it).

        Example:
            >>> from axon_audit import AuditLogger
            >>> audit = AuditLogger()
            >>> e = audit.log("forget", user_id="u1", entry_ids=["e1"])
            >>> audit.get_event(e.event_id) == e, audit.get_event("evt_nope")
            (True, None)
        """
        if not isinstance(event_id, str):
            raise AuditTypeError(f"event_id must be a str, got {type(event_id).__name__}")
        _check_flag(include_archived)
        snap, f = self._snapshot(include_archived), Filters.build(event_id=event_id, limit=1)
        found = snap.guard(f, lambda: snap.select(f))
        return frame_to_events(found)[0] if found.height else None

    def scan(self, *, include_archived: bool | None = None, **filters: Any) -> pl.LazyFrame:
        """The events matching `filters` (as `query_events`, without `limit`) as a
        polars LazyFrame over the in-memory chunks (and the Parquet files), in
        logging order.

        Example:
            >>> import polars as pl
            >>> from axon_audit import AuditLogger
            >>> audit = AuditLogger()
            >>> _ = audit.log("store", user_id="u1"); _ = audit.log("recall", user_id="u2")
            >>> audit.scan(operation="store").select(pl.len()).collect().item()
            1
        """
        _check_flag(include_archived)
        return self._snapshot(include_archived).lazy(Filters.of(filters, allow_limit=False,
                                                                 naive_time=self._naive_time))

    def to_arrow(self, *, include_archived: bool | None = None, **filters: Any) -> pa.Table:
        """The events matching `filters` as a pyarrow Table in the canonical schema
        (`ARROW_SCHEMA`), in logging order.

        Example:
            >>> from axon_audit import AuditLogger
            >>> audit = AuditLogger()
            >>> _ = audit.log("store", user_id="u1")
            >>> audit.to_arrow(user_id="u1").num_rows
            1
        """
        _check_flag(include_archived)
        snap = self._snapshot(include_archived)
        f = Filters.of(filters, allow_limit=False, naive_time=self._naive_time)
        return snap.guard(f, lambda: snap.arrow(f))

    def sql(self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None, *,
            read_only: bool = True) -> pl.DataFrame:
        """Run DuckDB SQL over the views `events` (a logger's: in memory), `archived`
        (rotated: the Parquet files and rotations still being written) and
        `all_events` (both, each event once: the whole trail). Pass values as `params` (`?` or `$name`), never
        in the query text. Thread-safe; each call has a database of its own.
        `sql_arrow` returns Arrow instead; here a column polars cannot hold (an
        INTERVAL, a UNION) comes back as text.

        Read-only by default: queries only (SELECT), no file access but the views,
        no settings (COPY, ATTACH, INSTALL, SET, CREATE and `read_csv('/etc/…')`
        raise `AuditValueError`). `read_only=False` runs any statement with full
        file access: for trusted code only.

        Example:
            >>> from axon_audit import AuditLogger
            >>> audit = AuditLogger()
            >>> _ = audit.log("store", user_id="u1", duration_ms=5.0)
            >>> audit.sql("SELECT user_id, sum(duration_ms) AS ms FROM events WHERE operation = ? GROUP BY 1",
            ...           ["STORE"]).rows()
            [('u1', 5.0)]
            >>> audit.sql("COPY events TO 'x.csv'")  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            axon_audit.exceptions.AuditValueError: query: sql() is read-only and runs queries only (SELECT); ...
        """
        # `events` stays memory even when the logger exports: a query names the view it
        # reads (the choice is in the text, not a default), `all_events` is there for the
        # whole trail, and queries written against `events` keep their meaning.
        table = run_sql(self._snapshot(True), query, params, read_only=read_only, naive_time=self._naive_time)
        return pl.from_arrow(polars_safe(table))  # type: ignore[return-value]

    def sql_arrow(self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None, *,
                  read_only: bool = True) -> pa.Table:
        """`sql`, returning a pyarrow Table (every DuckDB type as Arrow has it).

        Example:
            >>> from axon_audit import AuditLogger
            >>> AuditLogger().sql_arrow("SELECT count(*) AS n FROM all_events").to_pylist()
            [{'n': 0}]
        """

        return run_sql(self._snapshot(True), query, params, read_only=read_only, naive_time=self._naive_time)

    def get_statistics(self, *, include_archived: bool | None = None) -> Statistics:
        """Statistics over what `query_events` would search (`include_archived` as
        there), as a `Statistics` dict. A logger adds its counters and `covers`
        ("trail" or "memory") and `events_not_covered` (accepted events left out:
        rotated away or dropped).

        Example:
            >>> from axon_audit import AuditLogger
            >>> audit = AuditLogger()
            >>> _ = audit.log("store", duration_ms=10.0); _ = audit.log("recall", status="failure", duration_ms=30.0)
            >>> s = audit.get_statistics()
            >>> s["total_events"], s["success_rate"], s["avg_duration_ms"]
            (2, 0.5, 20.0)
        """

        _check_flag(include_archived)
        snap = self._small_snapshot(include_archived)
        if snap.rows is not None:  # a few buffered events: from the row tuples, nothing sealed
            stats = row_statistics([columns_of_rows(snap.rows)])
        elif snap.small is not None:  # a small store's one chunk: its answers are made already
            stats = copy_answer(snap.small.stats)
        else:
            stats = snap.guard(_EVERY_EVENT, lambda: snapshot_statistics(snap))
        stats.update(self._counters())
        stats.update(self._coverage(include_archived))
        return Statistics(stats)

    def _counters(self) -> dict[str, Any]:
        """The source's own counters, added to `get_statistics` (a logger's: memory, exports, WAL)."""
        return {}

    def get_user_statistics(self, user_id: str, *, include_archived: bool | None = None) -> Statistics:
        """One user's activity over what `query_events` would search
        (`include_archived` as there), as a `Statistics` dict.

        Example:
            >>> from axon_audit import AuditLogger
            >>> audit = AuditLogger()
            >>> _ = audit.log("store", user_id="u1"); _ = audit.log("store", user_id="u1")
            >>> audit.get_user_statistics("u1")["most_common_operation"]
            'STORE'
        """

        if not isinstance(user_id, str):
            raise AuditTypeError(f"user_id must be a str, got {type(user_id).__name__}")
        _check_flag(include_archived)
        snap = self._small_snapshot(include_archived)
        if snap.rows is not None:  # a few buffered events: from the row tuples, nothing sealed
            return Statistics(row_user_statistics([columns_of_rows(snap.rows)], user_id))
        if snap.small is not None:  # a small store's one chunk: its answers are made already
            return Statistics(copy_answer(snap.small.user(user_id)))
        fast = snapshot_user_statistics(snap, user_id)  # the live store: its chunks' per-user summaries
        if fast is not None:
            return Statistics(fast)
        f = Filters.build(user_id=user_id)
        # One pass picks the user's rows; the statistics then read only those.
        rows = snap.guard(f, lambda: snap.lazy(f).collect())
        return Statistics(user_statistics(rows.lazy(), user_id))

    def export_to_file(self, path: str | Path, *, include_archived: bool | None = None, force: bool = False,
                       **filters: Any) -> int:
        """Write the events matching `filters` (as `query_events`) to `path` in the
        export format, oldest first; return how many were written. Never inside an
        export folder (one holding a manifest, or this source's own folder: its
        files are sealed evidence); an existing file only with `force=True`.

        Example:
            >>> import tempfile, pathlib
            >>> from axon_audit import AuditLogger
            >>> audit = AuditLogger()
            >>> _ = audit.log("store", user_id="user_123")
            >>> target = pathlib.Path(tempfile.mkdtemp()) / "trail.json"
            >>> audit.export_to_file(target, user_id="user_123")
            1
            >>> audit.export_to_file(target)  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            axon_audit.exceptions.AuditValueError: path: '...trail.json' already exists; pass force=True to replace it
        """
        target = self._target(path, force)
        _check_flag(include_archived)
        snap, f = self._snapshot(include_archived), Filters.of(filters, naive_time=self._naive_time)
        df = snap.guard(f, lambda: snap.select(f)).reverse()
        write_json_export(df, target)
        return df.height

    def export_events(self, events: Iterable[AuditEvent] | pl.DataFrame, path: str | Path, *,
                      force: bool = False) -> int:
        """Write the given events (in their order) to `path` in the export format
        (where `export_to_file` may write).

        Example:
            >>> import tempfile, pathlib
            >>> from axon_audit import AuditLogger
            >>> audit = AuditLogger()
            >>> _ = audit.log("store", user_id="user_123")
            >>> events = audit.query_events(user_id="user_123")
            >>> audit.export_events(events, pathlib.Path(tempfile.mkdtemp()) / "user_123_audit.json")
            1
        """
        target = self._target(path, force)
        df = events if isinstance(events, pl.DataFrame) else events_to_frame(events)
        write_json_export(df, target)
        return df.height

    def _target(self, path: Any, force: Any) -> Path | Location:
        """Where an export may go (see `export_to_file`)."""
        target = _as_target(path, self._storage_options)
        if not isinstance(force, bool):
            raise AuditTypeError(f"force must be a bool, got {type(force).__name__}")
        # A logger names its folder `auto_export_path`, an archive `path`; a logger's WAL folder is its own too.
        own = [getattr(self, "auto_export_path", None) or getattr(self, "path", None),
               getattr(getattr(self, "_config", None), "wal_path", None)]
        check_export_target(resolve(target, storage_options=self._storage_options), force=force,
                            own=[resolve(o, storage_options=self._storage_options) for o in own if o is not None])
        return target

    async def export_to_json(
        self, path: str | Path, start_time: datetime | None = None, end_time: datetime | None = None,
        *, include_archived: bool | None = None, force: bool = False,
    ) -> int:
        """The older API's export (runs in a worker thread)."""
        return await asyncio.to_thread(self.export_to_file, path, start_time=start_time, end_time=end_time,
                                       include_archived=include_archived, force=force)


def _check_flag(value: Any) -> None:
    if value is not None and not isinstance(value, bool):
        raise AuditTypeError(f"include_archived must be a bool or None, got {type(value).__name__}")


def _as_path(path: Any) -> Path:
    if not isinstance(path, (str, Path)):
        raise AuditTypeError(f"path must be a str or Path, got {type(path).__name__}")
    return Path(path)


def _as_target(path: Any, storage_options: StorageOptions | None = None) -> Path | Location:
    """Where an export goes: a local path stays a `Path`; a URI (`file://`,
    `s3://`) becomes a `Location` (with the logger's `storage_options`)."""
    if isinstance(path, str) and "://" in path:
        loc = resolve(path, storage_options=storage_options)
        return loc.local_path() if loc.is_local else loc
    return _as_path(path)

