"""`log_batch`'s intake: the batch is checked (`normalize_batch`), its own event
ids are looked up in everything the logger holds, and it is appended whole.

An event id names one event: a batch that brings its own ids (a replay, an
import) must not reuse one that is already in memory (the store, rotations
still being written) or in the logger's export folder. The lookup is one
vectorized semi-join over the `event_id` columns (Parquet reads only that
column) and is paid only by batches that bring ids; batches are admitted one at
a time so two of them cannot both bring the same new id.
"""

from __future__ import annotations

import threading
from typing import Any

import polars as pl

from axon_audit.compliance.pii import PIIRedactor
from axon_audit.model.schema import normalize_batch
from axon_audit.query.filters import Filters
from axon_audit.write.buffer import HotBuffer
from axon_audit.write.guard import Guard

__all__ = ["BatchIntake"]


class BatchIntake:
    """Checks and appends batches for one logger."""

    def __init__(self, hot: HotBuffer, guard: Guard, redact: PIIRedactor | None, naive_time: str = "local") -> None:
        self._hot = hot
        self._guard = guard
        self._redact = redact
        self._naive_time = naive_time  # how the batch's naive times read (the logger's rule)
        self._lock = threading.Lock()  # one batch at a time: check and append as one step

    def known_id(self, ids: pl.Series) -> str | None:
        """One of `ids` that the logger already holds (memory or export folder), or None."""
        snap = self._hot.snapshot(include_archived=True)
        held = snap.lazy(Filters()).select("event_id")
        hit = held.join(pl.LazyFrame({"event_id": ids}), on="event_id", how="semi").head(1).collect()
        return hit["event_id"][0] if hit.height else None

    def admit(self, events: Any) -> int:
        with self._lock:
            df = normalize_batch(events, self.known_id, naive_time=self._naive_time)
            if self._redact is not None:
                df = self._redact.redact_frame(df)
            if df.height == 0:
                return 0
            self._guard.append_frame(df)
            return df.height
