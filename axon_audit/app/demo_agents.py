"""The demo's agents: workload replayers (`log_batch` with the workload's own
timestamps) and MemorySystem users on a simulated office clock, whose audited
calls reach the logger through `AtSimulatedTime`.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from axon_audit.app.demo_plan import CALENDAR
from axon_audit.exceptions import AuditValueError
from axon_audit.integrations.hooks import audit_context
from axon_audit.integrations.memory import MemorySystem
from axon_audit.write.logger import AuditLogger

__all__ = ["AtSimulatedTime", "memory_agent", "replay"]

# The simulated "now" of each memory agent (each asyncio task has its own context).
_NOW: contextvars.ContextVar[datetime] = contextvars.ContextVar("axon_audit_demo_now")


async def replay(audit: AuditLogger, chunks: list[pl.DataFrame], advance: Callable[[int], None]) -> None:
    """One agent: its share of the workload through `log_batch`, timestamps included."""
    for chunk in chunks:
        audit.log_batch(chunk)
        advance(chunk.height)
        await asyncio.sleep(0)


class AtSimulatedTime:
    """The logger as the MemorySystem sees it: each event stamped with its agent's
    simulated time (`_NOW`), handed to `log_batch` in small batches (one-row
    batches cost ~3 ms each); `flush` logs the rest."""

    def __init__(self, audit: AuditLogger, every: int = 50) -> None:
        self._audit = audit
        self._every = every
        self._rows: list[dict[str, Any]] = []
        self.auto_export_path = audit.auto_export_path  # MemorySystem.export refuses to write there

    def log(self, operation: Any, user_id: str | None = None, session_id: str | None = None,
            entry_ids: list[str] | None = None, metadata: dict[str, Any] | None = None, status: Any = "SUCCESS",
            error_message: str | None = None, duration_ms: float | None = None) -> None:
        self._rows.append({"timestamp": _NOW.get(), "operation": operation, "user_id": user_id,
                           "session_id": session_id, "entry_ids": entry_ids, "metadata": metadata,
                           "status": status, "error_message": error_message, "duration_ms": duration_ms})
        if len(self._rows) >= self._every:
            self.flush()

    def flush(self) -> None:
        rows, self._rows = self._rows, []
        if rows:
            self._audit.log_batch(rows)


def _agent_clock(agent: int, ops: int, seed: int, start: datetime, days: int) -> list[datetime]:
    """Sorted office-hours times of one memory agent's operations over the demo's month."""
    rng = np.random.default_rng([seed, 77, agent])
    start_us = int(start.timestamp()) * 1_000_000
    us = np.sort(CALENDAR.times(rng, CALENDAR.offsets_us(np.full(ops, agent)), start_us, days * 86_400_000_000))
    return pl.Series(us, dtype=pl.Int64).cast(pl.Datetime("us", "UTC")).to_list()


async def memory_agent(memory: MemorySystem, agent: int, ops: int, seed: int, start: datetime, days: int,
                       advance: Callable[[int], None]) -> None:
    """One user of the memory system: stores, recalls, forgets, imports, compacts, and
    (rarely: a bulk export is an event the monitor watches) exports."""
    rng = random.Random(seed * 1_000 + agent)
    words = ["tea", "meeting", "project", "invoice", "travel", "birthday", "password", "report"]
    mine: list[str] = []
    clock = _agent_clock(agent, ops, seed, start, days)
    with audit_context(user_id=f"agent_{agent:02d}", session_id=f"agent_{agent:02d}_s{seed}"):
        for i in range(ops):
            _NOW.set(clock[i])
            roll = rng.random()
            try:
                if roll < 0.40:
                    mine.append(await memory.store(f"{rng.choice(words)} note {i}", importance=round(rng.random(), 2),
                                                   tags=[rng.choice(["work", "home"])]))
                elif roll < 0.91:
                    await memory.recall(rng.choice(words), k=rng.choice([3, 5, 10]))
                elif roll < 0.95:
                    # Some ids were already forgotten (by compaction): a PARTIAL event, as in real life.
                    picks = rng.sample(mine, min(len(mine), 2)) + (["entry_gone"] if rng.random() < 0.2 else [])
                    await memory.forget(picks)
                    mine = [m for m in mine if m not in picks]
                elif roll < 0.989:
                    await memory.import_data([f"{w} imported" for w in rng.sample(words, 4)])
                elif roll < 0.990:
                    await memory.export()
                else:
                    await memory.compact()
            except AuditValueError:
                # "memory is full": audited as FAILURE already; make room as an operator would.
                await memory.compact(session_id="maintenance")
            if i % 50 == 49:
                advance(50)
                await asyncio.sleep(0)
    advance(ops % 50)
