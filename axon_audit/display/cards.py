"""The notebook cards of events, event lists, statistics, archives, verify results
and the security monitor (what their `_repr_html_` return).

Each builder takes the object itself (duck-typed, so this module imports nothing
of the model or readers, which import it) and shows its key figures formatted
the one way every card does: counts grouped ("1,234"), rates as percentages
("96.06%"), times in UTC ("2026-11-03 10:21:00 UTC"). All text goes through the
escaping builders of `display.html`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

import orjson
import polars as pl

from axon_audit.display.html import Html, badge, box, card, lines, percent, table, when
from axon_audit.exceptions import AuditError

__all__ = ["archive_card", "event_card", "events_html", "monitor_card", "statistics_card", "verify_card"]

#: How many events an event list shows (the rest are counted, not shown).
EVENT_ROWS = 20
#: The keys of the statistics themselves; a source's own counters (a logger's) fold away below them.
_STATISTICS = frozenset({
    "total_events", "success_rate", "failure_count", "avg_duration_ms", "p50_duration_ms", "p95_duration_ms",
    "p99_duration_ms", "max_duration_ms", "by_operation", "by_status", "unique_users", "unique_sessions",
    "first_event", "last_event", "user_id", "total_operations", "first_activity", "last_activity",
    "most_common_operation",
})


def _ms(value: float | None) -> str:
    return "none" if value is None else f"{value:,.2f} ms"


def _span(first: Any, last: Any) -> str:
    if first is None or last is None:
        return "no events"
    return f"{when(first)} – {when(last)}"


def event_card(event: Any) -> Html:
    """One `AuditEvent`: who did what, when, how it went; entries and metadata fold open."""
    items = {
        "event id": event.event_id,
        "time": event.timestamp,
        "operation": event.operation.value,
        "user": event.user_id,
        "session": event.session_id,
        "status": event.status.value,
        "duration": _ms(event.duration_ms),
        "entries": len(event.entry_ids),
    }
    if event.error_message is not None:
        items["error"] = event.error_message
    meta = event.metadata
    sections: dict[str, Any] = {f"{len(event.entry_ids):,} entry ids": event.entry_ids}
    if meta:
        sections["metadata"] = orjson.dumps(meta, option=orjson.OPT_INDENT_2).decode()
    return card(f"AuditEvent {event.operation.value} ({event.status.value})", items, sections)


def _events_frame(events: Sequence[Any]) -> pl.DataFrame:
    return pl.DataFrame({
        "time": [e.timestamp for e in events],
        "operation": [e.operation.value for e in events],
        "user_id": [e.user_id for e in events],
        "session_id": [e.session_id for e in events],
        "status": [e.status.value for e in events],
        "duration_ms": [e.duration_ms for e in events],
        "entry_ids": [e.entry_ids for e in events],
        "event_id": [e.event_id for e in events],
    }, schema={"time": pl.Datetime("us", "UTC"), "operation": pl.String, "user_id": pl.String,
               "session_id": pl.String, "status": pl.String, "duration_ms": pl.Float64,
               "entry_ids": pl.List(pl.String), "event_id": pl.String})


def events_html(events: Sequence[Any], rows: int = EVENT_ROWS) -> Html:
    """A list of events: how many, then a table of the first `rows` of them."""
    n = len(events)
    shown = f"first {min(rows, n):,} shown" if n > rows else "all shown"
    caption = f"{n:,} events ({shown})"
    if n == 0:
        return box("0 events", Html(""))
    return box(f"{n:,} events", table(_events_frame(list(events[:rows])), rows, caption=caption))


def _counts(title: str, counts: Mapping[str, int]) -> Html:
    frame = pl.DataFrame({title: list(counts), "events": list(counts.values())},
                         schema={title: pl.String, "events": pl.Int64})
    return table(frame, len(counts), caption=f"{sum(counts.values()):,} events")


def statistics_card(stats: Mapping[str, Any]) -> Html:
    """`get_statistics()` (or, with a `user_id` key, `get_user_statistics()`): the
    counts, rate, latency and time span, then the counts by operation and status."""
    user = "user_id" in stats
    items: dict[str, Any] = {}
    sections: dict[str, Any] = {}
    counters = {k: v for k, v in stats.items() if k not in _STATISTICS}
    for key, value in stats.items():
        label = key.replace("_", " ")
        if key in counters:
            continue
        if isinstance(value, Mapping):
            sections[label] = _counts(key.removeprefix("by_"), value)
        elif key == "success_rate":
            items[label] = percent(value)
        elif key.endswith("_duration_ms") and isinstance(value, (int, float)):
            items[label.removesuffix(" ms")] = _ms(value)
        elif key != "user_id":
            items[label] = value
    if counters:
        sections[f"{len(counters):,} source counters"] = card(
            "counters", {k.replace("_", " "): v for k, v in counters.items()})
    title = f"User statistics: {stats['user_id']}" if user else "Audit statistics"
    return card(title, items, sections)


def archive_card(archive: Any) -> Html:
    """An `AuditArchive`: its folder, what it reads, how many files and events, and their time span."""
    items: dict[str, Any] = {"folder": str(archive.path), "reads": archive.source}
    files: list[Any] = []
    try:
        files = archive.files()
        s = archive.get_statistics()
    except (AuditError, OSError) as exc:  # e.g. a corrupt file: the card says so instead of raising
        items["error"] = str(exc)
        return card("AuditArchive", items)
    items.update({"files": len(files), "events": s["total_events"], "users": s["unique_users"],
                  "time span": _span(s["first_event"], s["last_event"]),
                  "success rate": percent(s["success_rate"])})
    names = [getattr(f, "name", None) or str(f).rsplit("/", 1)[-1] for f in files]
    return card("AuditArchive", items, {f"{len(files):,} files": names,
                                         "by operation": _counts("operation", s["by_operation"])})


def verify_card(result: Any, problems: int = 20) -> Html:
    """A `VerifyResult`: an OK/FAILED badge, what was checked, the first `problems` problems."""
    items: dict[str, Any] = {
        "result": badge("OK" if result.ok else "FAILED", result.ok),
        "files checked": result.files_checked,
        "events checked": result.events_checked,
        "tree size": result.tree_size,
        "problems": len(result.problems),
        "HMAC checked": "yes" if result.hmac_checked else "no",
        "signatures checked": result.signatures_checked,
    }
    sections: dict[str, Any] = {}
    if result.problems:
        sections[f"{len(result.problems):,} problems"] = lines(result.problems, limit=problems)
    for name in ("notes", "erasures", "retentions", "leftovers"):
        values = getattr(result, name)
        if values:
            sections[f"{len(values):,} {name}"] = lines(values)
    for name in ("checkpoints", "tree_heads"):
        kept = getattr(result, name)
        if kept:
            sections[f"{len(kept):,} {name.replace('_', ' ')}"] = lines(kept)
    return card("Integrity verification", items, sections)


def monitor_card(monitor: Any, severities: Mapping[str, str]) -> Html:
    """A `SecurityMonitor`: its rules (with their base `severities`) and every threshold."""
    t = monitor.thresholds
    items = {f.name.replace("_", " "): getattr(t, f.name) for f in fields(t)}
    rules = [f"{r} ({severities[r]})" for r in monitor.rules]
    return card(f"SecurityMonitor ({len(monitor.rules)} rules)", items, {"rules": rules})
