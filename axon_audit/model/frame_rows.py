"""`FrameRows`: the columns behind the `AuditEvent`s of one query answer, read on demand.

`frame_to_events` gives each event of an answer only this store and its position
(`AuditEvent._of_columns`); an event makes its id and row tuple on its first
read (`AuditEvent.__getattr__`). The store turns its frame's columns into Python
values once, for every event of the answer at the same time and only when first
asked: the `event_id` column alone for ids (hashing, `event_id`), every column
for the rows (any other field). Both are C loops (`to_list`, `map`, `zip`).
Once the rows are built the frame is let go (its string buffers may be shared
with the chunk it was gathered from).

Threads may read the events of one answer at once: every step only ever sets
a value that is then never changed (two racing threads may both build it; each
gets equal values), and the frame is dropped only after the ids and rows are set.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import repeat

import polars as pl

from axon_audit.model.enums import OPERATIONS, STATUSES
from axon_audit.model.event import AuditEvent
from axon_audit.model.row import R_OP, R_STATUS, Row

__all__ = ["FrameRows", "frame_events", "no_gc"]

# What a row holds for each operation/status code of the frame's Enum columns, as
# AuditEvent itself stores them (enum members or their str values: either row layout).
_OPS_BY_CODE = tuple(AuditEvent(operation=op, event_id="evt_layout")._row[R_OP] for op in OPERATIONS)
_STATUS_BY_CODE = tuple(AuditEvent(operation=OPERATIONS[0], status=s, event_id="evt_layout")._row[R_STATUS]
                        for s in STATUSES)


@contextmanager
def no_gc() -> Iterator[None]:
    """The cyclic GC paused: the objects made inside hold no cycles, and its passes
    over the growing heap would cost more than making them (measured: 2x at 10 K)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class FrameRows:
    """One answer's hot frame (rows in the answer's order), and the ids and row tuples
    made from it on first need."""

    __slots__ = ("_df", "_ids", "_rows")

    def __init__(self, df: pl.DataFrame) -> None:
        self._df: pl.DataFrame | None = df
        self._ids: list[str] | None = None
        self._rows: list[Row] | None = None

    @property
    def built(self) -> bool:
        """Are the rows built (and the frame let go)?"""
        return self._rows is not None

    def ids(self) -> list[str]:
        """The event ids, in the answer's order."""
        df = self._df  # read before _ids: the frame is dropped only once _ids is set
        ids = self._ids
        if ids is None:
            assert df is not None
            ids = self._ids = df["event_id"].to_list()
        return ids

    def rows(self) -> list[Row]:
        """The row tuples (`axon_audit.model.row` layout; explicit ids: seq -1, node "")."""
        df = self._df  # read before _rows: the frame is dropped only once _rows is set
        rows = self._rows
        if rows is None:
            assert df is not None
            self.ids()
            rows = self._rows = _rows_of(df)
            self._df = None
        return rows


def _rows_of(df: pl.DataFrame) -> list[Row]:
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
    with no_gc():
        return AuditEvent._of_columns(FrameRows(df), df.height)
