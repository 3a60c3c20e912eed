"""Compliance toolkit timings vs the seed's own per-event Python (same events, same run).

    .venv/bin/python benchmarks/bench_compliance.py [n_events]

Medians of a few runs; short on purpose (the machine is shared).
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import datetime, timezone

from axon_audit import (
    AuditLogger,
    OperationType,
    PIIRedactor,
    SecurityMonitor,
    compliance_report,
    subject_access_report,
)
from axon_audit.workload import generate_events, iter_log_calls

UTC = timezone.utc


def median_ms(fn, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def seed_report(audit: AuditLogger, month: int, year: int) -> dict:
    """The seed document's generate_compliance_report, loop for loop (sync)."""
    events = audit.query_events(start_time=datetime(year, month, 1, tzinfo=UTC),
                                end_time=datetime(year, month + 1, 1, tzinfo=UTC))
    users: dict = {}
    for event in events:
        users.setdefault(event.user_id or "anonymous", []).append(event)
    report = {"period": f"{year}-{month:02d}", "total_events": len(events), "users": len(users),
              "operations": {}, "user_activity": {}}
    for event in events:
        op = event.operation.value
        report["operations"][op] = report["operations"].get(op, 0) + 1
    for user_id, user_events in users.items():
        report["user_activity"][user_id] = {
            "total": len(user_events),
            "stores": sum(1 for e in user_events if e.operation == OperationType.STORE),
            "recalls": sum(1 for e in user_events if e.operation == OperationType.RECALL),
            "deletions": sum(1 for e in user_events if e.operation == OperationType.FORGET),
        }
    return report


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500_000
    audit = AuditLogger(enable_rotation=False)
    audit.log_batch(generate_events(n, seed=1, start=datetime(2026, 11, 1, tzinfo=UTC), days=30))
    ours = median_ms(lambda: compliance_report(audit, "2026-11"))
    seed = median_ms(lambda: seed_report(audit, 11, 2026), runs=1)
    print(f"{n:,} events in November")
    print(f"compliance_report (all sections)      {ours:9.1f} ms")
    print(f"seed generate_compliance_report loop  {seed:9.1f} ms   ratio {seed / ours:5.1f}x")
    print(f"SecurityMonitor().evaluate (7 rules)  {median_ms(lambda: SecurityMonitor().evaluate(audit)):9.1f} ms")
    print(f"subject_access_report(user_00003)     "
          f"{median_ms(lambda: subject_access_report(audit, 'user_00003')):9.1f} ms")

    calls = list(iter_log_calls(generate_events(50_000, seed=2)))
    for label, redact in (("off", None), ("on ", PIIRedactor())):
        logger = AuditLogger(max_events=10_000_000, redact_pii=redact)
        log = logger.log
        t = time.perf_counter()
        for c in calls:
            log(**c)
        us = (time.perf_counter() - t) / len(calls) * 1e6
        print(f"log() with metadata, redact_pii {label}     {us:9.2f} us/event")


if __name__ == "__main__":
    main()
