"""Backpressure: when the logger must not accept an event, and what it does then.

Two reasons refuse an event: the caller chose `fail_closed=True` and exports or
the write-ahead log are failing, or the export backlog reached `max_backlog`.
Then `backlog_policy="raise"` (and fail-closed) raise `AuditUnavailableError`;
"block" waits, retrying the exports, until there is room. The logging path
tests one flag (`refusing`), kept current by the logger after every change.

A logger with an export folder (and rotation) is bounded by default: see
`default_max_backlog`. Only an explicit `max_backlog=None` leaves it unbounded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from axon_audit.exceptions import AuditUnavailableError
from axon_audit.io.location import Location
from axon_audit.write.durability import WalLane
from axon_audit.write.exporter import Exporter

__all__ = ["BACKLOG_POLICIES", "DEFAULT_BACKLOG_ROTATIONS", "DEFAULT_MAX_BACKLOG", "Backpressure",
           "default_max_backlog"]

BACKLOG_POLICIES = ("block", "raise")
_BLOCK_PAUSE = (0.01, 1.0)  # first and longest pause between export retries while blocked

# The default bound on events awaiting export: DEFAULT_BACKLOG_ROTATIONS rotations,
# and never fewer than DEFAULT_MAX_BACKLOG events. Why these values: a healthy export
# thread writes one rotation (JSON + Parquet) while the next one fills, so a backlog of
# several rotations only builds up when exports stall or fail (a slow disk, fsync
# pauses, a failed write waiting for its retry). 4 rotations, and at least 1 M events
# (~3 s of logging at 300 K events/s; 10 rotations at max_events=100 000), ride out
# such a stall without slowing callers; the floor in events keeps small rotations
# (max_events=10 000, the default, would give 40 000) from blocking on every short
# stall. Memory stays bounded: an event awaiting export costs ~230 B (measured:
# 1 M of them add ~230 MB RSS), against the unbounded growth seen without a bound
# (3.3 M events, 2.7 GiB RSS).
DEFAULT_BACKLOG_ROTATIONS = 4
DEFAULT_MAX_BACKLOG = 1_000_000


def default_max_backlog(max_events: int) -> int:
    """The bound of a logger with exports that does not pass `max_backlog`.

    Example:
        >>> default_max_backlog(100_000), default_max_backlog(10_000), default_max_backlog(500_000)
        (1000000, 1000000, 2000000)
    """
    return max(DEFAULT_BACKLOG_ROTATIONS * max_events, DEFAULT_MAX_BACKLOG)


class Backpressure:
    """The refusal rule of one logger and its counters."""

    def __init__(self, max_backlog: int | None, policy: str, fail_closed: bool, *,
                 root: Path | Location | None = None, lane: WalLane | None = None) -> None:
        self.max_backlog = max_backlog
        self.policy = policy
        self.fail_closed = fail_closed
        self.root = root
        self.lane = lane
        self.exporter: Exporter | None = None  # set once the exporter exists (it reports here)
        self.refusing = False  # checked by log() before it accepts an event
        self.refused = 0
        self.blocked_waits = 0

    def counters(self) -> dict[str, object]:
        return {"refused_events": self.refused, "blocked_waits": self.blocked_waits,
                "max_backlog": self.max_backlog, "backlog_policy": self.policy, "fail_closed": self.fail_closed}

    def reason_locked(self) -> str | None:
        """Why log() must not accept a new event now (None: it may)."""
        exporter, lane, root = self.exporter, self.lane, self.root
        pending = exporter.pending_events if exporter is not None else 0
        last_error = exporter.last_error if exporter is not None else None
        if self.fail_closed:
            if exporter is not None and exporter.failing:
                return (f"fail_closed: exports to {root} are failing "
                        f"({pending} events wait in memory): {last_error}")
            wal = lane.wal if lane is not None else None
            if lane is not None and wal is not None and wal.broken:
                return f"fail_closed: the write-ahead log {lane.path} cannot be written: {wal.last_error!r}"
        if self.max_backlog is not None and pending >= self.max_backlog:
            return (f"backlog full: {pending} events wait for export to {root} "
                    f"(max_backlog={self.max_backlog}); last error: {last_error}")
        return None

    def update_locked(self) -> None:
        """Renew `refusing` after the backlog or a failure changed (under the logger's lock)."""
        self.refusing = self.reason_locked() is not None

    def gate(self, lock: threading.RLock, flush: Callable[[], object]) -> None:
        """Before accepting an event while refusing: raise (fail-closed or
        backlog_policy="raise") or block, retrying the exports, until there is room.
        `flush` retries the exports and waits for them."""
        pause = _BLOCK_PAUSE[0]
        while True:
            with lock:
                why = self.reason_locked()
                if why is None:
                    self.refusing = False
                    return
                if self.fail_closed or self.policy == "raise":
                    self.refused += 1
                    raise AuditUnavailableError(f"event refused: {why}")
                self.blocked_waits += 1
            flush()
            with lock:
                if self.reason_locked() is None:
                    continue
            time.sleep(pause)
            pause = min(pause * 2, _BLOCK_PAUSE[1])
