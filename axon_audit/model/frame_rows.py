"""`FrameRows`: the columns behind the `AuditEvent`s of one query answer, read on demand.

`frame_to_events` gives each event of an answer only this store
(`AuditEvent._of_columns`); the answer's first read of an event has the store
turn its frame's columns into Python values and hand them to every event of the
answer at once (`AuditEvent.__getattr__`): the `event_id` column alone when only
an id is read (hashing, `event_id`), every column and the row tuples for any
other field. Both are C loops (`to_list`, `map`, `zip`) and one slot-setting
loop. Once the rows are handed out the store lets go of the frame (its string
buffers may be shared with the chunk it was gathered from) and of the events.

Until then the events and their store refer to each other (a cycle: an answer
dropped unread is freed by the cyclic GC, as any cycle). Threads may read the
events of one answer at once: every value is set once and never changed (two
racing threads may both build it; each gets equal values), each event's row and
id are set before its store is cleared, and the frame and the events are let go
only after every event holds its row.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import repeat

import polars as pl

from axon_audit.model.enums import OPERATIONS, STATUSES
from axon_audit.model.event import AuditEvent
from axon_audit.model.row import Row

__all__ = ["FrameRows", "frame_events", "no_gc", "rows_of"]

# A row holds each operation/status as the enum's value (model.row), and the frame's Enum
# columns are coded in the order of these tuples: a code indexes its value.
_OPS_BY_CODE = OPERATIONS
_STATUS_BY_CODE = STATUSES


@contextmanager
def no_gc() -> Iterator[None]:
    """The cyclic GC paused while many objects are made: its passes over the growing
    heap would cost more than making them (measured: 2x at 10 K events)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class FrameRows:
    """One answer's hot frame (rows in the answer's order) and its events, which it
    hands their ids and rows on first need."""

    __slots__ = ("_df", "_ids", "_rows", "events")

    def __init__(self, df: pl.DataFrame) -> None:
        self._df: pl.DataFrame | None = df
        self._ids: list[str] | None = None
        self._rows: list[Row] | None = None
        self.events: list[AuditEvent] | None = None  # set by frame_events; None once every event has its row

    @property
    def built(self) -> bool:
        """Are the rows built?"""
        return self._rows is not None

    def _id_list(self, df: pl.DataFrame | None) -> list[str]:
        ids = self._ids
        if ids is None:
            assert df is not None  # the frame is dropped only after _ids is set
            ids = self._ids = df["event_id"].to_list()
        return ids

    def give_ids(self) -> None:
        """Every event its id (only): the `event_id` column alone is read."""
        df, events = self._df, self.events  # read before _ids: cleared (events, then frame) after it is set
        ids = self._id_list(df)
        if events is not None:
            for ev, eid in zip(events, ids, strict=True):  # one slot per event: the answer is a list of objects
                ev._id = eid

    def give_rows(self) -> None:
        """Every event its row tuple (`axon_audit.model.row` layout; explicit ids:
        seq -1, node "") and its id; then the frame and the events are let go."""
        df, events = self._df, self.events
        if events is None:  # another thread has handed them out
            return
        ids = self._id_list(df)
        rows = self._rows
        if rows is None:
            assert df is not None
            rows = self._rows = rows_of(df)
        for ev, row, eid in zip(events, rows, ids, strict=True):  # slots only: the answer is a list of objects
            ev._row = row
            ev._id = eid
            ev._store = None
        self.events = None
        self._df = None


def rows_of(df: pl.DataFrame) -> list[Row]:
    """The hot frame's rows as row tuples (`axon_audit.model.row` layout; explicit ids:
    seq -1, node ""), made in C loops; the ids are the frame's `event_id` column."""
    n = df.height
    entries = df["entry_ids"]
    if entries.null_count():  # never in the hot frame; fill_null on lists is slow, so only when needed
        entries = entries.fill_null([])
    ops = map(_OPS_BY_CODE.__getitem__, df["operation"].to_physical().to_list())
    statuses = map(_STATUS_BY_CODE.__getitem__, df["status"].to_physical().to_list())
    with no_gc():
        return list(zip(
            df["timestamp"].dt.epoch("us").to_list(),
            repeat(-1, n),
            repeat("", n),
            ops,
            df["user_id"].cast(pl.String).to_list(),
            df["session_id"].to_list(),
            entries.to_list(),
            df["metadata"].to_list(),
            statuses,
            df["error_message"].to_list(),
            df["duration_ms"].to_list(),
            strict=True,
        ))


def frame_events(df: pl.DataFrame) -> list[AuditEvent]:
    """The frame's rows as `AuditEvent`s over one `FrameRows` (nothing read yet)."""
    if df.height == 0:
        return []
    store = FrameRows(df)
    with no_gc():
        events = store.events = AuditEvent._of_columns(store, df.height)
    return events
