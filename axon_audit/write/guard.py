"""The guarded append: the slower logging path taken when durability or fail-closed is on.

A logger with a write-ahead log or `fail_closed=True` appends through `Guard`
(one attribute test on the hot path decides): it applies the backpressure rule
before accepting an event, appends the row to the buffer and the WAL under the
WAL's lock (so a rotation cuts both at one point), and waits for the fsync where
the policy says so. Batches take the same route whole. A backlog bound alone
(`max_backlog`, on by default with exports) keeps the fast path: it tests
`Backpressure.refusing` and calls `gate()` only while it is set.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import polars as pl

from axon_audit.exceptions import AuditValueError
from axon_audit.write import wal as _wal
from axon_audit.write import wal_records as _records
from axon_audit.write.backpressure import Backpressure
from axon_audit.write.buffer import HotBuffer
from axon_audit.write.durability import WalLane

__all__ = ["Guard"]


class _PerThread(threading.local):
    defer = False  # log_event (always-WAL) awaits the fsync itself
    seq = 0


class Guard:
    """Backpressure and durability around the buffer's appends."""

    def __init__(self, hot: HotBuffer, lane: WalLane | None, bp: Backpressure) -> None:
        self._hot = hot
        self._rows = hot.rows
        self._lane = lane
        self._bp = bp
        self._tl = _PerThread()

    @property
    def wal(self) -> _wal.WriteAheadLog | None:
        return self._lane.wal if self._lane is not None else None

    def gate(self) -> None:
        self._bp.gate(self._hot.lock, self._hot.flush)

    def append(self, row: tuple[Any, ...]) -> None:
        wal = self.wal
        if self._bp.refusing or (self._bp.fail_closed and wal is not None and wal.broken):
            self.gate()
        if wal is None:
            self._rows.append(row)
            return
        # Refused before it is acknowledged if it cannot fit one record (u32 length). The texts'
        # lengths bound its size (6 bytes a character at most, once encoded): summed inline,
        # ~0.1 us; only an event near the limit is measured (`row_too_large`).
        _, _, _, _, u, s, t, m, _, e, _ = row
        n = (len(m) if m else 0) + (len(e) if e else 0) + (len(u) if u else 0) + (len(s) if s else 0)
        for x in t:
            n += len(x) + 1  # and its quotes and comma: 3 bytes, bounded by 6 * 1 below
        if 6 * n + _records.ROW_SLACK > _records.MAX_PAYLOAD and (size := _records.row_too_large(row)) is not None:
            raise AuditValueError(_too_large(f"this event's texts (metadata, error_message, ids) encode to {size} "
                                             "bytes"))
        with wal.lock:  # buffer and log take the row together (see WalLane.cut_locked)
            self._rows.append(row)
            seq = wal.append_locked(row)
        # "interval" waits only when the writer lags far behind: bounds what a crash can take.
        if wal.always and self._tl.defer:
            self._tl.seq = seq  # log_event awaits it without blocking its event loop
            return
        if (wal.always or seq - wal.durable > _wal.MAX_LAG) and not wal.wait_durable(seq):
            self.report_not_durable(1)

    async def log_durable(self, log: Callable[..., Any], *args: Any) -> Any:
        """`log(*args)`, then await its fsync without blocking the event loop."""
        wal = self.wal
        assert wal is not None
        tl = self._tl
        tl.defer = True  # append() leaves the wait to us (same thread, no await in between)
        try:
            event = log(*args)
        finally:
            tl.defer = False
        if not await wal.wait_durable_async(tl.seq):
            self.report_not_durable(1)
        return event

    def append_frame(self, df: pl.DataFrame) -> None:
        """A whole batch: refused, blocked or accepted as one; durable as one."""
        if self._bp.refusing:
            self.gate()
        wal = self.wal
        if wal is not None and (size := _records.frame_too_large(df)) is not None:
            raise AuditValueError(_too_large(f"events: a row of this batch holds {size} bytes of text"))
        seq = 0
        with self._hot.lock:
            if wal is not None:
                with wal.lock:
                    seq = wal.append_frame_locked(df)
            self._hot.append_frame_locked(df)
        if wal is not None and wal.always and not wal.wait_durable(seq):
            self.report_not_durable(df.height)

    def report_not_durable(self, n: int) -> None:
        assert self._lane is not None
        self._lane.report_not_durable(n, self._hot.lock, self._bp.fail_closed)


def _too_large(what: str) -> str:
    return (f"{what}; a write-ahead log record holds at most {_records.MAX_PAYLOAD} bytes (its length is a u32), "
            "so it cannot be made durable: nothing was stored")
