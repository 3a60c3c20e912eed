"""The compliance report as one self-contained HTML page an auditor can open.

`report_page` builds the whole document: inline CSS, the charts as inline SVG
(`axon_audit.display.svg_charts`), the summary, every section as a table, the
period's alerts with their messages and a footer saying how the page was made.
No script, no external URL: the file alone is the report. Every value from the
data is escaped (`html.escape`). The chart series are polars aggregations of the
report's small chart frames (days x operations), never a loop over events.

`summary_rows` is the summary both the page and the terminal show first.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone
from html import escape
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

import polars as pl

from axon_audit.display.html import value_text
from axon_audit.display.svg_charts import hbars, line_chart, stacked_bars

__all__ = ["ALERT_COLUMNS", "alerts_page", "report_page", "summary_rows"]

#: The alert columns a reader needs (the event ids are in the JSON output).
ALERT_COLUMNS = ("severity", "rule", "user_id", "window_start", "count", "threshold", "message")

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;color:#1d2333;margin:0;background:#f4f5f9}
main{max-width:1180px;margin:0 auto;padding:20px 28px 8px}
h1{font-size:24px;margin:4px 0 2px}h2{font-size:17px;margin:26px 0 8px;border-bottom:2px solid #dde1ec;
padding-bottom:4px}.sub{color:#5a6275;margin:0 0 14px;font-size:13px;overflow-wrap:anywhere}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px}
.card{background:#fff;border:1px solid #dde1ec;border-radius:8px;padding:10px 14px}
.card .k{color:#5a6275;font-size:12px}.card .v{font-size:19px;font-weight:600;overflow-wrap:anywhere}
.charts{display:grid;grid-template-columns:1fr 1fr;gap:12px}.chart{background:#fff;border:1px solid #dde1ec;
border-radius:8px;padding:8px}.chart.wide{grid-column:1/3}
table{border-collapse:collapse;background:#fff;font-size:12.5px;width:100%;border:1px solid #dde1ec}
th{background:#eef0f6;text-align:left;padding:4px 8px;white-space:nowrap}
td{padding:3px 8px;border-top:1px solid #edf0f5;vertical-align:top;overflow-wrap:anywhere}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}td.key{white-space:nowrap}
.more{color:#5a6275;font-size:12px;margin:4px 0 0}.sev{border-radius:4px;padding:1px 6px;color:#fff;
font-size:11px;font-weight:600}.sev-low{background:#6b7280}.sev-medium{background:#b7791f}
.sev-high{background:#c2410c}.sev-critical{background:#991b1b}
footer{max-width:1180px;margin:18px auto 30px;padding:10px 28px;color:#5a6275;font-size:12px;
border-top:1px solid #dde1ec;overflow-wrap:anywhere}
@media print{body{background:#fff}.chart,.card,table{break-inside:avoid}}
"""


# Columns that never wrap mid-value (a rule name, an id, a time).
_KEYS = ("rule", "severity", "window_start", "user_id")

def _version() -> str:
    try:  # what `axon-audit --version` says
        return package_version("axon_audit")
    except PackageNotFoundError:
        return "(not installed)"


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    # The cards' format (display.html), with an empty cell for a missing value.
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(map(value_text, value))
    return value_text(value)


def summary_rows(report: Any, operations: int = 5) -> list[tuple[str, str]]:
    """(label, value) pairs: period, totals, failure rate, top operations, sections and their rows."""
    s = report.frames["summary"].row(0, named=True)
    total = s["total_events"]
    ops = report.frames["operations"].sort("count", "operation", descending=[True, False]).head(operations)
    sections = [(name, df.height) for name, df in report.frames.items() if name != "summary"]
    return [
        ("period", report.period),
        ("total events", f"{total:,}"),
        ("users", f"{s['users']:,}"),
        ("sessions", f"{s['sessions']:,}"),
        ("failures", f"{s['failures']:,}"),
        ("failure rate", f"{s['failures'] / total:.2%}" if total else "n/a"),
        ("first event", _fmt(s["first_event"])),
        ("last event", _fmt(s["last_event"])),
        ("top operations", ", ".join(f"{op} {n:,}" for op, n in ops.iter_rows())),
        ("sections", ", ".join(f"{name} {n:,}" for name, n in sections)),
    ]


def _table(df: pl.DataFrame, top: int | None, hint: str, *, badge: str | None = None) -> str:
    shown = df if top is None else df.head(top)
    numeric = [dtype.is_numeric() for dtype in df.schema.values()]
    head = "".join(f"<th>{_e(name)}</th>" for name in df.columns)
    rows = []
    for row in shown.iter_rows():
        cells = []
        for name, value, is_num in zip(df.columns, row, numeric, strict=True):
            text = _e(_fmt(value))
            if name == badge and value is not None:
                text = f"<span class='sev sev-{_e(value)}'>{text}</span>"
            cls = " class='n'" if is_num else " class='key'" if name in _KEYS else ""
            cells.append(f"<td{cls}>{text}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    if not df.height:
        rows.append(f"<tr><td colspan='{max(df.width, 1)}'>none</td></tr>")
    more = df.height - shown.height
    note = f"<p class='more'>… and {more:,} more{_e(hint)}</p>" if more > 0 else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{note}"


def _days(report: Any, daily: pl.DataFrame) -> list[date]:
    """Every day of the period (a bounded one of at most 93 days), else the days with events."""
    if report.start is not None and report.end is not None:
        first, last = report.start.date(), (report.end - timedelta(microseconds=1)).date()
        if (last - first).days <= 92:
            return [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return sorted(daily["day"].unique().to_list())


def _charts(report: Any, top_users: int) -> str:
    charts = getattr(report, "charts", None) or {}
    if "daily" not in charts:
        return ""
    daily = charts["daily"]
    days = pl.DataFrame({"day": _days(report, daily)}, schema={"day": pl.Date})
    labels = [d.strftime("%d") if len(days) <= 31 else d.strftime("%m-%d") for d in days["day"]]
    order = (daily.group_by("operation").agg(pl.col("events").sum())
             .sort("events", "operation", descending=[True, False])["operation"].to_list())
    wide = days.join(daily.pivot("operation", index="day", values="events"), on="day", how="left").fill_null(0)
    series = {op: wide[op].to_list() for op in order}
    rate = days.join(daily.group_by("day").agg(pl.col("failures").sum() / pl.col("events").sum()),
                     on="day", how="left")["failures"].to_list()
    users = report.frames["user_activity"].head(top_users)
    latency = charts["latency_histogram"]
    month = f" ({days['day'][0]:%Y-%m})" if len(days) and len(days) <= 31 else ""
    parts = [
        ("wide", stacked_bars(labels, series, title=f"Events per day by operation{month}", width=1100)),
        ("wide", line_chart(labels, rate, title="Failure rate per day", width=1100)),
        ("", hbars(users["user_id"].to_list(), users["total"].to_list(), title=f"Top {users.height} users by events",
                   width=560)),
        ("", stacked_bars(latency["bucket"].to_list(), {"events": latency["events"].to_list()},
                          title="Latency distribution (events by ms, s)", width=560,
                          height=max(240, 40 + 18 * users.height))),
    ]
    return "<h2>Charts</h2><div class='charts'>" + "".join(
        f"<div class='chart {cls}'>{svg}</div>" for cls, svg in parts) + "</div>"


def _alerts(alerts: pl.DataFrame | None, top: int | None, hint: str) -> str:
    if alerts is None:
        return ""
    counts = [(what, alerts.group_by(what).agg(pl.len()).sort("len", what, descending=[True, False]))
              for what in ("rule", "severity")]
    lists = [("alerts", f"{alerts.height:,}")] + [
        (f"by {what}", ", ".join(f"{k} {n:,}" for k, n in df.iter_rows()) or "none") for what, df in counts]
    frame = alerts.select(c for c in ALERT_COLUMNS if c in alerts.columns)
    return ("<h2 id='alerts'>Security alerts</h2>" + _pairs(lists) + "<div style='height:8px'></div>"
            + _table(frame, top, hint, badge="severity"))


def _pairs(items: Sequence[tuple[str, str]]) -> str:
    return "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in items) + "</table>"


def _cards(items: Sequence[tuple[str, str]]) -> str:
    return "<div class='cards'>" + "".join(
        f"<div class='card'><div class='k'>{_e(k)}</div><div class='v'>{_e(v)}</div></div>" for k, v in items
    ) + "</div>"


def _document(title: str, sub: str, body: str, source: str | None, generated_at: datetime | None,
              version: str | None) -> str:
    generated = (generated_at or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>"
        f"<h1>{_e(title)}</h1><p class='sub'>{_e(sub)}</p>{body}"
        f"</main><footer>Produced by axon_audit {_e(version or _version())}"
        + (f" from {_e(source)}" if source else "")
        + f" at {_e(generated.strftime('%Y-%m-%d %H:%M:%S'))} UTC. Figures are computed from the period's events; "
        "the JSON output (<code>-f json</code>) holds every row.</footer></body></html>\n"
    )


def report_page(report: Any, alerts: pl.DataFrame | None = None, *, source: str | None = None,
                top: int | None = 50, hint: str = "", generated_at: datetime | None = None,
                version: str | None = None) -> str:
    """The whole HTML document of a `ComplianceReport` (`alerts`: `Alerts.to_frame()`
    of the period, or None to leave the section out); at most `top` rows a table
    (None: all), the rows beyond counted with `hint` after the count."""
    rows = summary_rows(report)
    sections = "".join(
        f"<h2 id='{_e(name)}'>{_e(name.replace('_', ' ').capitalize())} <small>({df.height:,} rows)</small></h2>"
        + _table(df, top, hint)
        for name, df in report.frames.items() if name != "summary")
    body = (_cards(rows[1:8]) + "<div style='height:10px'></div>" + _pairs(rows[8:])
            + _charts(report, 15) + _alerts(alerts, top, hint) + sections)
    where = f" of {source}" if source else ""
    return _document(f"Compliance report {report.period}", f"Audit events{where}, period {report.period} (UTC)",
                     body, source, generated_at, version)


def alerts_page(alerts: pl.DataFrame, summary: Sequence[tuple[str, str]], *, source: str | None = None,
                top: int | None = 50, hint: str = "", generated_at: datetime | None = None,
                version: str | None = None) -> str:
    """The security alerts (`Alerts.to_frame()`) as one HTML document: `summary`
    (label, value) pairs, then at most `top` alerts with their messages."""
    frame = alerts.select(c for c in ALERT_COLUMNS if c in alerts.columns)
    where = f" of {source}" if source else ""
    body = _pairs(summary) + "<div style='height:8px'></div>" + _table(frame, top, hint, badge="severity")
    return _document("Security alerts", f"Audit events{where}", body, source, generated_at, version)
