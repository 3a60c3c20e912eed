"""What auditing costs a memory-system call: `audited` and `MemorySystem` with and
without an `AuditLogger` (medians of short runs; compare the two columns).

    .venv/bin/python benchmarks/integration_overhead.py
"""

from __future__ import annotations

import asyncio
import statistics
import time

from axon_audit import AuditLogger, MemoryConfig, MemorySystem, audited


def per_call_us(fn, n: int = 20_000, repeats: int = 5) -> float:
    async def run() -> float:
        t = time.perf_counter()
        for i in range(n):
            await fn(i)
        return (time.perf_counter() - t) / n * 1e6

    return statistics.median(asyncio.run(run()) for _ in range(repeats))


def main() -> None:
    audit = AuditLogger(max_events=10_000_000)

    async def plain(i, user_id=None):
        return i

    wrapped = audited("recall", audit_logger=audit)(plain)
    rows = [("async no-op", per_call_us(lambda i: plain(i, user_id="u1")),
             per_call_us(lambda i: wrapped(i, user_id="u1")))]
    for label, op in (("MemorySystem.store", "store"), ("MemorySystem.recall (100 entries)", "recall")):
        results = []
        for logger in (None, audit):
            memory = MemorySystem(MemoryConfig(), audit_logger=logger)
            asyncio.run(memory.import_data([f"note {i}" for i in range(100)]))
            # `memory` is bound as a default: each call is timed against this iteration's MemorySystem.
            if op == "store":
                call = lambda i, memory=memory: memory.store("some text", importance=0.5, tags=["t"], user_id="u1")
            else:
                call = lambda i, memory=memory: memory.recall("note 5", k=3, user_id="u1")
            results.append(per_call_us(call, n=5_000))
        rows.append((label, *results))
    print(f"{'call':<36}{'unaudited µs':>14}{'audited µs':>12}{'overhead µs':>13}")
    for label, a, b in rows:
        print(f"{label:<36}{a:>14.2f}{b:>12.2f}{b - a:>13.2f}")


if __name__ == "__main__":
    main()
