"""The seed document's `generate_compliance_report` example, verbatim but for its imports.

It reads the module-global `audit_logger`, as the seed's snippet does: a test sets
`seed_report.audit_logger` before calling it.
"""

from __future__ import annotations

from datetime import datetime

from axon_audit import AuditLogger, OperationType

audit_logger: AuditLogger


# Generate monthly compliance report
async def generate_compliance_report(month: int, year: int):
    start_time = datetime(year, month, 1)
    end_time = datetime(year, month + 1, 1)

    # All events in month
    events = audit_logger.query_events(  # noqa: F821 - the module global the caller sets, as in the seed
        start_time=start_time,
        end_time=end_time
    )

    # Group by user
    users = {}
    for event in events:
        user_id = event.user_id or "anonymous"
        if user_id not in users:
            users[user_id] = []
        users[user_id].append(event)

    # Generate report
    report = {
        "period": f"{year}-{month:02d}",
        "total_events": len(events),
        "users": len(users),
        "operations": {},
        "user_activity": {}
    }

    # Count operations
    for event in events:
        op = event.operation.value
        report["operations"][op] = report["operations"].get(op, 0) + 1

    # User activity
    for user_id, user_events in users.items():
        report["user_activity"][user_id] = {
            "total": len(user_events),
            "stores": sum(1 for e in user_events if e.operation == OperationType.STORE),
            "recalls": sum(1 for e in user_events if e.operation == OperationType.RECALL),
            "deletions": sum(1 for e in user_events if e.operation == OperationType.FORGET)
        }

    return report
