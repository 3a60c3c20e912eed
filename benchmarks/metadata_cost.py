"""What checking metadata at the door costs the logging path.

    PYTHONPATH=. .venv/bin/python benchmarks/metadata_cost.py [--events N] [--rounds R]

`await log_event(...)` with full arguments and no export, for metadata of three
shapes: none, flat (``{"source": "api", "batch_size": 2}``) and nested
(``{"source": "api", "tags": ["a", "b"]}``). Per event: CPU time of the loop
(`time.process_time`). Rounds are interleaved; medians are printed. To compare
two checkouts, run this alternately with PYTHONPATH pointing at each (the
README's figure: this tree against af38eb1, before the door's rules).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from axon_audit import AuditLogger

SHAPES: dict[str, dict[str, Any] | None] = {
    "none": None,
    "flat": {"source": "api", "batch_size": 2},
    "nested": {"source": "api", "tags": ["a", "b"]},
}


async def _run(events: int, metadata: dict[str, Any] | None) -> float:
    audit = AuditLogger(max_events=max(events, 10_000))
    start = time.process_time()
    for _ in range(events):
        await audit.log_event("STORE", user_id="user_1", session_id="s1", entry_ids=["e1", "e2"],
                              metadata=metadata, status="SUCCESS", error_message=None, duration_ms=12.5)
    return (time.process_time() - start) / events * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    runs: dict[str, list[float]] = {name: [] for name in SHAPES}
    for r in range(args.rounds):
        names = list(SHAPES)[r % len(SHAPES):] + list(SHAPES)[:r % len(SHAPES)]  # each shape first in turn
        for name in names:
            runs[name].append(asyncio.run(_run(args.events, SHAPES[name])))
    for name, values in runs.items():
        print(f"{name:7} {statistics.median(values):.3f} us/event CPU "
              f"(runs: {', '.join(f'{v:.3f}' for v in values)})")


if __name__ == "__main__":
    main()
