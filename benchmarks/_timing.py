"""Repeated timing: warm-up, then runs until enough runs or the time budget is spent;
and the `await log_event` loop the per-call cost benchmarks share."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Plan:
    """How hard to measure one figure."""

    warmup: int = 1
    min_runs: int = 3
    max_runs: int = 7
    budget_s: float = 3.0  # stop adding runs (past min_runs) once this much time went into them


def measure(fn: Callable[[], Any], plan: Plan, setup: Callable[[], Any] | None = None,
            per: int = 1, scale: float = 1.0) -> dict[str, Any]:
    """Time `fn()` (after an untimed `setup()` each run); return median/min/max
    of (seconds * scale / per), the number of runs, the last result, and the
    seconds spent in all (warm-up and setups included)."""
    result = None
    t_all = time.perf_counter()
    for _ in range(plan.warmup):
        if setup is not None:
            setup()
        result = fn()
    times: list[float] = []
    spent = 0.0
    while len(times) < plan.max_runs and (len(times) < plan.min_runs or spent < plan.budget_s):
        if setup is not None:
            setup()
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        dt = time.perf_counter() - t0
        times.append(dt)
        spent += dt
    vals = [t * scale / per for t in times]
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "runs": len(vals),
            "result": result, "spent_s": time.perf_counter() - t_all,
            "run_s": statistics.median(times), "planned_runs": plan.min_runs + plan.warmup}


# The seed's full-argument call, as the log_event cost benchmarks (backlog, subscription,
# sink) make it.
LOG_EVENT_ARGS: dict[str, Any] = dict(user_id="user_123", session_id="session_abc", entry_ids=["entry_1", "entry_2"],
                                      metadata={"source": "api", "batch_size": 2}, status="SUCCESS",
                                      error_message=None, duration_ms=45.2)


async def log_event_loop(audit: Any, n: int) -> tuple[float, float]:
    """`n` awaited full-argument `log_event` calls: (thread CPU seconds, wall seconds)."""
    log_event = audit.log_event
    args = LOG_EVENT_ARGS
    c0, w0 = time.thread_time(), time.perf_counter()
    for _ in range(n):
        await log_event("store", **args)
    return time.thread_time() - c0, time.perf_counter() - w0
