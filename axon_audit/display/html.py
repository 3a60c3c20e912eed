"""The HTML builders behind every `_repr_html_`: a summary card, tables and lists.

Every `_repr_html_` of the package builds its HTML here, and everything shown
is escaped here (`html.escape` with quotes): audit data (user ids, messages,
metadata, event ids) and file names are text in the notebook, never markup or
script. Only fragments these builders made (`Html`) are passed through as HTML.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta, timezone
from html import escape
from typing import Any

import polars as pl

__all__ = ["Html", "badge", "box", "card", "lines", "logger_card", "percent", "span", "table", "text", "when"]

_STYLE = (
    "border:1px solid #ccd;border-radius:6px;padding:8px 12px;margin:4px 0;"
    "font-family:system-ui,sans-serif;font-size:13px;max-width:980px"
)
_CELL = "padding:1px 8px;border-bottom:1px solid #eef;text-align:left;vertical-align:top;white-space:pre-wrap"


class Html(str):
    """An HTML fragment made by this module's builders (its data already escaped)."""

    __slots__ = ()


def when(value: datetime) -> str:
    """A time as every card shows it: in UTC, to the second (a naive one is taken as UTC).

    Example:
        >>> from datetime import datetime, timezone
        >>> from axon_audit.display.html import when
        >>> when(datetime(2026, 11, 3, 10, 21, 0, 512, tzinfo=timezone.utc))
        '2026-11-03 10:21:00 UTC'
    """
    utc = value.astimezone(timezone.utc) if value.tzinfo else value
    return utc.strftime("%Y-%m-%d %H:%M:%S UTC")


def percent(rate: float) -> str:
    """A rate in 0..1 as a percentage with two decimals.

    Example:
        >>> from axon_audit.display.html import percent
        >>> percent(0.96064)
        '96.06%'
    """
    return f"{rate:.2%}"


def span(value: timedelta) -> str:
    """A window length in its largest whole unit, else as `str`.

    Example:
        >>> from datetime import timedelta
        >>> from axon_audit.display.html import span
        >>> span(timedelta(minutes=15)), span(timedelta(hours=24)), span(timedelta(seconds=1.5))
        ('15 min', '1 day', '0:00:01.500000')
    """
    seconds = value.total_seconds()
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return f"{n:,} {'day' if unit == 'days' and n == 1 else unit}"
    return str(value)


def value_text(value: Any) -> str:
    """A value as every card and report shows it: times in UTC, counts with separators.

    Example:
        >>> from axon_audit.display.html import value_text
        >>> value_text(1234567), value_text(0.25), value_text(None)
        ('1,234,567', '0.25', 'none')
    """
    if isinstance(value, datetime):
        return when(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return span(value)
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def text(value: Any) -> Html:
    """Any value as HTML text: its `str` (numbers grouped), with ``& < > " '`` escaped.

    Example:
        >>> from axon_audit.display.html import text
        >>> text('<script>"x"</script>')
        '&lt;script&gt;&quot;x&quot;&lt;/script&gt;'
    """
    return Html(escape(value_text(value), quote=True))


def badge(label: str, good: bool) -> Html:
    """A coloured label (green when `good`, else red), for a pass/fail outcome."""
    colour = "#1a7f37" if good else "#cf222e"
    return Html(f"<span style='color:#fff;background:{colour};border-radius:4px;padding:0 6px'>"
                f"{text(label)}</span>")


def lines(values: Iterable[Any], limit: int = 50, empty: str = "none") -> Html:
    """Values one per line, escaped; at most `limit`, then how many more.

    Example:
        >>> from axon_audit.display.html import lines
        >>> lines(["a.json", "<b>.json", "c.json"], limit=2)
        'a.json<br>&lt;b&gt;.json<br>… 1 more'
    """
    items = list(values)
    shown = "<br>".join(text(v) for v in items[:limit])
    more = f"<br>… {len(items) - limit:,} more" if len(items) > limit else ""
    return Html(shown + more if items else text(empty))


def _section(value: Html | str | Iterable[Any]) -> Html:
    if isinstance(value, Html):
        return value
    if isinstance(value, str):
        return text(value)
    return lines(value)


def card(title: str, items: Mapping[str, Any],
         sections: Mapping[str, Html | str | Iterable[Any]] | None = None) -> Html:
    """A titled box of key/value rows, then optional titled sections that fold
    open: a table or list built here (`Html`), plain text, or values one per line.

    Example:
        >>> from axon_audit.display.html import card
        >>> html = card("Report", {"events": 3}, {"users": ["<ann>", "bob"]})
        >>> "<b>Report</b>" in html, "&lt;ann&gt;<br>bob" in html
        (True, True)
    """
    rows = "".join(
        f"<tr><td style='padding:1px 12px 1px 0;color:#556'>{text(k)}</td>"
        f"<td style='padding:1px 0'><b>{v if isinstance(v, Html) else text(v)}</b></td></tr>"
        for k, v in items.items()
    )
    folds = "".join(f"<details><summary>{text(name)}</summary>{_section(value)}</details>"
                    for name, value in (sections or {}).items())
    return box(title, Html(f"<table>{rows}</table>{folds}"))


def box(title: str, body: Html) -> Html:
    """A titled, bordered box around a fragment built here."""
    return Html(f"<div style='{_STYLE}'><div style='font-size:15px'><b>{text(title)}</b></div>{body}</div>")


def _cell(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(value_text, value))
    return value_text(value)


def table(df: pl.DataFrame, max_rows: int = 20, *, caption: str | None = None) -> Html:
    """A polars DataFrame as an HTML table: column names (no dtypes: a notebook
    reader wants the data), then at most `max_rows` rows, each value escaped and
    formatted as cards format it; above it `caption`, by default the shape.

    Example:
        >>> import polars as pl
        >>> from axon_audit.display.html import table
        >>> "<td style" in table(pl.DataFrame({"user": ["<img src=x>"]})), "&lt;img src=x&gt;" in table(
        ...     pl.DataFrame({"user": ["<img src=x>"]}))
        (True, True)
    """
    head = "".join(f"<th style='{_CELL}'>{text(name)}</th>" for name in df.columns)
    body = "".join("<tr>" + "".join(f"<td style='{_CELL}'>{text(_cell(v))}</td>" for v in row) + "</tr>"
                   for row in df.head(max_rows).iter_rows())
    more = f"; {df.height - max_rows:,} more rows not shown" if df.height > max_rows else ""
    rows = f"{df.height:,} row" + ("" if df.height == 1 else "s")
    shape = f"{rows} × {df.width:,} columns" if caption is None else caption
    return Html(f"<small>{text(shape)}{more}</small>"
                f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def logger_card(logger: Any) -> Html:
    """The summary card of an `AuditLogger`: statistics over what its reads cover by
    default (the whole trail when it exports), with its counters."""
    s = logger.get_statistics()
    left_out = s.get("events_not_covered", 0)
    covers = "whole trail" if s.get("covers") == "trail" else "events in memory"
    items = {
        "covers": covers + (f" ({left_out:,} events not covered)" if left_out else ""),
        "events in memory": s["events_in_memory"],
        "total events logged": s["total_events_logged"],
        "users": s["unique_users"],
        "success rate": percent(s["success_rate"]),
        "p50 / p95 latency": f"{s['p50_duration_ms']:,.2f} / {s['p95_duration_ms']:,.2f} ms",
        "first event": s["first_event"],
        "last event": s["last_event"],
        "rotations": s["rotations"],
        "exported events": s["exported_events"],
        "auto export": s["auto_export_path"] or "off",
    }
    ops = pl.DataFrame({"operation": list(s["by_operation"]), "events": list(s["by_operation"].values())})
    return card(f"AuditLogger (max_events={s['max_events']:,})", items, {"by operation": table(ops)})
