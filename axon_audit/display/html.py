"""Small HTML builders for Jupyter's `_repr_html_`: a summary card and tables.

Everything shown is escaped; tables are polars' own HTML (bounded in rows).
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

import polars as pl

__all__ = ["card", "logger_card", "table"]

_STYLE = (
    "border:1px solid #ccd;border-radius:6px;padding:8px 12px;margin:4px 0;"
    "font-family:system-ui,sans-serif;font-size:13px;max-width:980px"
)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def card(title: str, items: Mapping[str, Any], sections: Mapping[str, str] | None = None) -> str:
    """A titled box of key/value rows, then optional titled HTML sections (already HTML).

    Example:
        >>> from axon_audit.display.html import card
        >>> "<b>Report</b>" in card("Report", {"events": 3})
        True
    """
    rows = "".join(
        f"<tr><td style='padding:1px 12px 1px 0;color:#556'>{escape(str(k))}</td>"
        f"<td style='padding:1px 0'><b>{escape(_fmt(v))}</b></td></tr>"
        for k, v in items.items()
    )
    body = f"<div style='{_STYLE}'><div style='font-size:15px'><b>{escape(title)}</b></div><table>{rows}</table>"
    for name, html in (sections or {}).items():
        body += f"<details><summary>{escape(name)}</summary>{html}</details>"
    return body + "</div>"


def table(df: pl.DataFrame, max_rows: int = 20) -> str:
    """A polars DataFrame as HTML, at most `max_rows` rows."""
    with pl.Config(tbl_rows=max_rows, fmt_str_lengths=60, tbl_hide_dataframe_shape=False):
        return df._repr_html_()


def logger_card(logger: Any) -> str:
    """The summary card of an `AuditLogger` (its statistics and counters)."""
    s = logger.get_statistics()
    items = {
        "events in memory": s["events_in_memory"],
        "total events logged": s["total_events_logged"],
        "users": s["unique_users"],
        "success rate": f"{s['success_rate']:.2%}",
        "p50 / p95 latency (ms)": f"{s['p50_duration_ms']:.3g} / {s['p95_duration_ms']:.3g}",
        "first event": s["first_event"],
        "last event": s["last_event"],
        "rotations": s["rotations"],
        "exported events": s["exported_events"],
        "auto export": s["auto_export_path"] or "off",
    }
    ops = pl.DataFrame({"operation": list(s["by_operation"]), "events": list(s["by_operation"].values())})
    return card(f"AuditLogger (max_events={s['max_events']:,})", items, {"by operation": table(ops)})
