"""The compliance commands: `report` (a month's compliance report) and `alerts`
(the security monitor's findings). `REPORT_COMMANDS` holds both.

Each prints a summary first, then its rows: at most `--top` a table on the
terminal (the rest counted), or every row as JSON or CSV, or one self-contained
HTML page (`axon_audit.display.report_html`); `--output FILE` writes any but the
terminal table to a file (never into an export folder, never over a file without
`--force`).
"""

from __future__ import annotations

import re
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any

import click
import orjson
import polars as pl
from rich.table import Table

from axon_audit.app.options import (
    NAIVE_TIME_OPTION,
    TIME,
    BadInput,
    check_order,
    choice,
    key_value,
    output_file,
    with_storage_options,
)
from axon_audit.app.render import cell, markup_text, new_console, write_text
from axon_audit.compliance.monitor import RULES, SEVERITIES, Alerts, MonitorThresholds, SecurityMonitor
from axon_audit.compliance.report import ComplianceReport, compliance_report
from axon_audit.display.report_html import ALERT_COLUMNS, alerts_page, report_page, summary_rows
from axon_audit.exceptions import AuditValueError
from axon_audit.read.sources import open_source

__all__ = ["REPORT_COMMANDS", "SECTIONS", "alerts", "parse_thresholds", "report"]

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
#: The report's sections, in the order it prints them (`--section` picks the one -f csv writes).
SECTIONS = ("summary", "operations", "statuses", "user_activity", "failures_by_operation",
            "exports_and_deletions", "entry_access", "latency_ms")
_TABLE_TOP, _HTML_TOP = 10, 50
_MORE = "; use --top 0 for all or -f csv"
# Columns a narrow terminal must not break inside a word: names, levels, times.
_KEYS = frozenset({"rule", "severity", "operation", "status", "window (UTC)", "entry_id", "timestamp"})


def _emit(text: str, output: str | None) -> None:
    if output is None:
        write_text(text)
        return
    with open(output, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    new_console(err=True).print(f"wrote {markup_text(output)} ({len(text.encode()):,} bytes)")


def _csv(df: pl.DataFrame) -> str:
    """A frame as CSV: times as ISO UTC text, lists joined by ';'."""
    return df.with_columns(pl.col(pl.Datetime).dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"),
                           pl.col(pl.List(pl.String)).list.join(";")).write_csv()


def _rows(df: pl.DataFrame, top: int | None, title: str, what: str) -> Table:
    """At most `top` rows (None: all) as a table; the rest counted in its caption."""
    shown = df if top is None else df.head(top)
    more = df.height - shown.height
    caption = f"… and {more:,} more{_MORE}" if more else f"{df.height:,} {what}"
    table = Table(title=cell(title), caption=cell(caption), title_justify="left", caption_justify="left")
    for name, dtype in df.schema.items():
        key = name in _KEYS
        table.add_column(cell(name), justify="right" if dtype.is_numeric() else "left",
                         no_wrap=key or dtype.is_numeric(), overflow="fold", min_width=len(name) if key else None)
    for row in shown.iter_rows():
        table.add_row(*("" if v is None else cell(_number(v)) if isinstance(v, float) else cell(v) for v in row))
    return table


def _number(value: float) -> str:
    """A float as a narrow column holds it: whole above 100, else three figures (12.3 ms, 0.031)."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}".removesuffix(".0") if abs(value) >= 10 else f"{value:.3g}"


def _pairs(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=cell(title), title_justify="left", show_header=False)
    table.add_column("figure", no_wrap=True)
    table.add_column("value", overflow="fold")
    for key, value in rows:
        table.add_row(cell(key), cell(value))
    return table


def _top(top: int | None, default: int) -> int | None:
    """`--top`: its value, the format's default when not given, None (all) for 0."""
    n = default if top is None else top
    return n or None


def _working(what: str) -> Any:
    # A spinner on stderr while a large folder is read (rich shows it only on a terminal:
    # piped and redirected output stay clean).
    return new_console(err=True).status(markup_text(what))


def _open(path: str, storage_options: dict[str, Any] | None) -> Any:
    return open_source(path, storage_options=storage_options)


def _output(fmt: str, output: str | None, path: str, force: bool, storage_options: dict[str, Any] | None) -> None:
    if output is None:
        return
    if fmt == "table":
        raise BadInput("--output needs --format json, csv or html (a table is for the terminal)")
    output_file(output, "--output", source=path, force=force, storage_options=storage_options)


_FORMAT = click.option("--format", "-f", "fmt", type=choice(["table", "json", "csv", "html"]), default="table",
                       show_default=True, help="Output format (html: one self-contained page).")
_TOP_OPTION = click.option(
    "--top", type=click.IntRange(min=0), default=None,
    help=f"Rows per table: default {_TABLE_TOP} on the terminal, {_HTML_TOP} in html; 0 for all. "
         "JSON and CSV always hold every row.")
_OUTPUT = click.option("--output", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
_FORCE = click.option("--force", is_flag=True, help="Replace the --output file if it exists.")


@click.command()
@click.argument("path")
@click.option("--month", required=True, help="The month to report, as YYYY-MM (UTC).")
@_FORMAT
@_TOP_OPTION
@click.option("--section", type=choice(SECTIONS), default=None,
              help="The section -f csv writes (default: user_activity, one row per user).")
@_OUTPUT
@_FORCE
@with_storage_options
def report(path: str, month: str, fmt: str, top: int | None, section: str | None, output: str | None,
           force: bool, storage_options: dict[str, Any] | None) -> None:
    """The monthly compliance report of the folder's events: a summary, then each
    section (users, failures, exports and deletions, latency, …).

    \b
    Example:
      axon-audit report audit_demo --month 2025-01
      axon-audit report audit_demo --month 2025-01 -f html --output report.html
      axon-audit report audit_demo --month 2025-01 -f csv --section failures_by_operation
    """
    m = _MONTH.match(month.strip())
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise BadInput(f"--month: expected YYYY-MM, got {month!r}")
    fmt = fmt.lower()
    if section is not None and fmt != "csv":
        raise BadInput(f"--section picks the section -f csv writes; -f {fmt} shows every section")
    source = _open(path, storage_options)
    _output(fmt, output, path, force, storage_options)
    with _working(f"reading {path} for the report of {month.strip()} …"):
        result = compliance_report(source, month.strip())
    if not result.total_events:
        raise click.ClickException(f"no audit events in {path!r} for {month.strip()}")
    if fmt == "json":
        _emit(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode() + "\n",
              output)
    elif fmt == "csv":
        _emit(_csv(result.frames[(section or "user_activity").lower()]), output)
    elif fmt == "html":
        with _working("evaluating the security rules over the month …"):
            found = SecurityMonitor().evaluate(source, result.start, result.end)
        _emit(report_page(result, found.to_frame(), source=path, top=_top(top, _HTML_TOP), hint=_MORE), output)
    else:
        _print_report(result, _top(top, _TABLE_TOP))


def _print_report(result: ComplianceReport, top: int | None) -> None:
    console = new_console()
    console.print(_pairs(f"{result.period}: summary", summary_rows(result)))
    for name, df in result.frames.items():
        if name != "summary" and df.height:
            console.print(_rows(df, top, f"{result.period}: {name}", "rows"))


# --------------------------------------------------------------------------- alerts

def _duration(text: str) -> timedelta | None:
    m = _DURATION.match(text.strip().lower())
    if not text.strip() or not m or not any(m.groups()):
        return None
    w, d, h, mi, s = (int(g or 0) for g in m.groups())
    return timedelta(weeks=w, days=d, hours=h, minutes=mi, seconds=s)


def parse_thresholds(pairs: tuple[str, ...] | list[str]) -> MonitorThresholds:
    """`--threshold NAME=VALUE` pairs as a `MonitorThresholds` (the rest at their
    defaults): windows as durations (``30m``, ``2h``, ``1d``), counts as whole numbers.

    Example:
        >>> from axon_audit.app.report_commands import parse_thresholds
        >>> t = parse_thresholds(["max_deletions=50", "deletion_window=30m"])
        >>> t.max_deletions, t.deletion_window.total_seconds()
        (50, 1800.0)
    """
    kinds: dict[str, type] = {f.name: type(f.default) for f in fields(MonitorThresholds)}
    given: dict[str, Any] = {}
    for item in pairs:
        name, value = key_value(item, "--threshold", list(kinds), word="NAME")
        kind = kinds[name]
        parsed: Any
        if kind is timedelta:
            parsed = _duration(value)
            what = "a duration like 30m, 2h or 1d"
        else:
            try:
                parsed = kind(value.strip())
            except ValueError:
                parsed = None
            what = "a whole number" if kind is int else "a number"
        if parsed is None:
            raise BadInput(f"--threshold: {name} takes {what}, got {value!r}")
        given[name] = parsed
    try:
        return MonitorThresholds(**given)
    except AuditValueError as exc:
        raise BadInput(f"--threshold: {exc}") from None


def _alert_rows(found: Alerts, width: int) -> pl.DataFrame:
    """The alerts as a terminal of `width` columns shows them: no event ids (the JSON
    has them); the message says the count, window and threshold, so a narrow
    terminal drops those columns rather than fold the message a word per line."""
    frame = found.to_frame().select(
        "severity", "rule", pl.col("user_id").alias("user"),
        pl.col("window_start").dt.strftime("%Y-%m-%d %H:%M").alias("window (UTC)"),
        "count", "threshold", "message")
    if width < 100:
        return frame.drop("window (UTC)", "count", "threshold")
    return frame if width >= 160 else frame.drop("threshold")


def _alert_summary(found: Alerts, rules: tuple[str, ...], severity: str | None,
                   thresholds: tuple[str, ...]) -> list[tuple[str, str]]:
    frame = found.to_frame()

    def counts(column: str, order: list[str]) -> str:
        by = dict(frame.group_by(column).agg(pl.len()).iter_rows())
        return ", ".join(f"{k} {by[k]:,}" for k in order if k in by) or "none"

    rows = [("alerts", f"{len(found):,}"),
            ("by rule", counts("rule", sorted(RULES, key=lambda r: -found.by_rule().get(r, 0)))),
            ("by severity", counts("severity", list(reversed(SEVERITIES))))]
    if rules:
        rows.append(("rules", ", ".join(rules)))
    if severity:
        rows.append(("severity", f"{severity} or above"))
    if thresholds:
        rows.append(("thresholds", ", ".join(thresholds)))
    return rows


@click.command()
@click.argument("path")
@click.option("--since", "start_time", type=TIME,
              help="Start: 1h, 30m, 2d, 1w or an ISO time (no offset: local time, see --naive-time).")
@click.option("--until", "end_time", type=TIME, help="End: as --since.")
@NAIVE_TIME_OPTION
@click.option("--rule", "rules", multiple=True, metavar="NAME",
              help=f"Only this rule (repeat for several): {', '.join(RULES)}.")
@click.option("--severity", type=choice(SEVERITIES), default=None,
              help="Only alerts at least this severe: " + " < ".join(SEVERITIES) + ".")
@click.option("--threshold", "thresholds", multiple=True, metavar="NAME=VALUE",
              help="Change a threshold (repeat), e.g. max_deletions=50, failure_window=30m.")
@_FORMAT
@_TOP_OPTION
@_OUTPUT
@_FORCE
@with_storage_options
def alerts(path: str, start_time: datetime | None, end_time: datetime | None, rules: tuple[str, ...],
           severity: str | None, thresholds: tuple[str, ...], fmt: str, top: int | None, output: str | None,
           force: bool, storage_options: dict[str, Any] | None) -> None:
    """Security alerts (excessive deletions, failure bursts, unusual exports, …), most
    severe first: a summary (by rule, by severity), then the alerts.

    \b
    Example:
      axon-audit alerts audit_demo --since 1d
      axon-audit alerts audit_demo --rule excessive_deletions --threshold max_deletions=50
      axon-audit alerts audit_demo --severity high -f csv --output alerts.csv
    """
    check_order(start_time, end_time)
    unknown = [r for r in rules if r not in RULES]
    if unknown:
        raise BadInput(f"--rule: unknown {', '.join(map(repr, unknown))}; expected one of {', '.join(RULES)}")
    limits = parse_thresholds(thresholds)
    fmt = fmt.lower()
    source = _open(path, storage_options)
    _output(fmt, output, path, force, storage_options)
    monitor = SecurityMonitor(limits, rules=tuple(dict.fromkeys(rules)) or None)
    with _working(f"evaluating the security rules over {path} …"):
        found = monitor.evaluate(source, start_time, end_time)
    if severity:
        least = SEVERITIES.index(severity.lower())
        found = Alerts(a for a in found if SEVERITIES.index(a.severity) >= least)
    if fmt == "json":
        _emit(orjson.dumps([a.to_dict() for a in found], option=orjson.OPT_INDENT_2).decode() + "\n", output)
    elif fmt == "csv":
        _emit(_csv(found.to_frame().select(*ALERT_COLUMNS, "window_end", "event_ids")), output)
    elif fmt == "html":
        summary = _alert_summary(found, rules, severity and severity.lower(), thresholds)
        _emit(alerts_page(found.to_frame(), summary, source=path, top=_top(top, _HTML_TOP), hint=_MORE), output)
    else:
        console = new_console()
        console.print(_pairs("security alerts: summary",
                             _alert_summary(found, rules, severity and severity.lower(), thresholds)))
        if len(found):
            console.print(_rows(_alert_rows(found, console.width), _top(top, _TABLE_TOP), "security alerts",
                                "alerts"))


REPORT_COMMANDS: tuple[click.Command, ...] = (report, alerts)
