"""The `axon-audit` command line (click): query, sql, stats, report, alerts, verify,
export, tail and demo over an export folder (a local path or an `s3://` URI).

Every command reads the folder through `_source.open_source`; `--endpoint-url`
and `--storage-option KEY=VALUE` configure object storage. Bad input (a
missing folder, malformed SQL, an unknown operation, a bad time) prints one
line, ``axon-audit: error: …``, to stderr and exits 2; nothing prints a traceback
(set AXON_AUDIT_DEBUG=1 to see one).
"""

from __future__ import annotations

import functools
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import click
import polars as pl

from axon_audit.exceptions import AuditError, AuditValueError
from axon_audit.io.location import _S3_OPTIONS
from axon_audit.model.event import OPERATIONS, STATUSES
from axon_audit.read.sources import newest, open_source, parquet_listing

__all__ = ["cli", "main", "parse_storage_options", "parse_time"]

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1

_RELATIVE = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


class BadInput(click.ClickException):
    """Bad input found after click's own parsing: exit 2, one line."""

    exit_code = EXIT_BAD_INPUT


def parse_time(text: str, option: str = "--since", *, now: datetime | None = None) -> datetime:
    """An aware UTC datetime from ``1h``/``30m``/``2d``/``1w``/``1h30m`` (that long
    ago), ``now``, or an ISO 8601 date or time (naive means UTC, like the export files).

    Example:
        >>> from datetime import datetime, timezone
        >>> from axon_audit.app.cli import parse_time
        >>> now = datetime(2025, 1, 15, 12, 0, tzinfo=timezone.utc)
        >>> parse_time("1h30m", now=now).isoformat()
        '2025-01-15T10:30:00+00:00'
        >>> parse_time("2025-01-01").isoformat()
        '2025-01-01T00:00:00+00:00'
        >>> parse_time("yesterday")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        axon_audit.app.cli.BadInput: --since: expected a relative time like 1h, 30m, ... got 'yesterday'
    """
    value = text.strip().lower()
    now = now or datetime.now(timezone.utc)
    if value == "now":
        return now
    m = _RELATIVE.match(value)
    if value and m and any(m.groups()):
        w, d, h, mi, s = (int(g or 0) for g in m.groups())
        return now - timedelta(weeks=w, days=d, hours=h, minutes=mi, seconds=s)
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadInput(
            f"{option}: expected a relative time like 1h, 30m, 2d, 1w or an ISO 8601 time, got {text!r}"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


class _Time(click.ParamType):
    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        option = param.opts[0] if param is not None and param.opts else "time"
        try:
            return parse_time(value, option)
        except BadInput as exc:
            self.fail(exc.message.split(": ", 1)[1], param, ctx)


TIME = _Time()


def _choice(values: Sequence[str]) -> click.Choice:
    return click.Choice(list(values), case_sensitive=False)


def _filter_options(fn: Callable) -> Callable:
    """The seed's filters as options (each may repeat: any of the values matches)."""
    options = [
        click.option("--user", "-u", "user_id", multiple=True, help="User id (repeat for several)."),
        click.option("--session", "session_id", multiple=True, help="Session id (repeat for several)."),
        click.option("--operation", "-o", "operation", multiple=True, type=_choice(OPERATIONS),
                     help="Operation (repeat for several)."),
        click.option("--status", "-s", "status", multiple=True, type=_choice(STATUSES),
                     help="Status (repeat for several)."),
        click.option("--since", "start_time", type=TIME, help="Start: 1h, 30m, 2d, 1w or an ISO time (UTC)."),
        click.option("--until", "end_time", type=TIME, help="End: as --since."),
        click.option("--entry", "entry_ids", multiple=True, help="Events touching this entry id (repeat)."),
        click.option("--event-id", "event_id", multiple=True, help="This event id (repeat)."),
        click.option("--meta", "metadata", multiple=True, metavar="KEY=VALUE",
                     help="Metadata key equals value (repeat: all must match)."),
        click.option("--error-contains", "error_contains", help="Error message contains this text."),
        click.option("--min-ms", "min_duration_ms", type=click.FloatRange(min=0), help="Duration at least (ms)."),
        click.option("--max-ms", "max_duration_ms", type=click.FloatRange(min=0), help="Duration at most (ms)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _filters(**given: Any) -> dict[str, Any]:
    """Click's values as `query_events` keywords (empty tuples mean: not given)."""
    out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in given.items() if v is not None and v != ()}
    if "metadata" in out:
        pairs = {}
        for item in out["metadata"]:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise BadInput(f"--meta: expected KEY=VALUE, got {item!r}")
            pairs[key.strip()] = value  # compared with the JSON value's text
        out["metadata"] = pairs
    return out


# storage_options that are switches: "true"/"false" on the command line.
_BOOL_OPTIONS = frozenset({"anonymous", "allow_bucket_creation", "allow_http", "aws_allow_http"})
_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def parse_storage_options(pairs: Sequence[str], endpoint_url: str | None = None) -> dict[str, Any] | None:
    """`--storage-option KEY=VALUE` pairs (and `--endpoint-url`) as the
    `storage_options` of `resolve` / `open_archive`; None when none was given.

    Example:
        >>> from axon_audit.app.cli import parse_storage_options
        >>> parse_storage_options(["region=eu-west-1", "anonymous=true"], "http://127.0.0.1:9000")
        {'region': 'eu-west-1', 'anonymous': True, 'endpoint_url': 'http://127.0.0.1:9000'}
        >>> parse_storage_options(["region"])
        Traceback (most recent call last):
        ...
        axon_audit.app.cli.BadInput: --storage-option: expected KEY=VALUE, got 'region'
    """
    out: dict[str, Any] = {}
    given: dict[str, str] = {}  # pyarrow's name -> the option that set it (aliases set the same one)
    items = [("--storage-option", item) for item in pairs]
    if endpoint_url is not None:
        items.append(("--endpoint-url", f"endpoint_url={endpoint_url}"))
    for option, item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            raise BadInput(f"{option}: expected KEY=VALUE, got {item!r}")
        if key not in _S3_OPTIONS:
            raise BadInput(f"{option}: unknown key {key!r}; expected one of {', '.join(sorted(_S3_OPTIONS))}")
        name = _S3_OPTIONS[key] or key
        if name in given:
            raise BadInput(f"{option}: {key} is already set (by {given[name]})")
        given[name] = f"--storage-option {key}" if option == "--storage-option" else option
        if key in _BOOL_OPTIONS:
            if value.strip().lower() not in _BOOLS:
                raise BadInput(f"{option}: {key} takes true or false, got {value!r}")
            out[key] = _BOOLS[value.strip().lower()]
        else:
            out[key] = value
    return out or None


def _storage_options(fn: Callable) -> Callable:
    """`--endpoint-url` and `--storage-option/-O KEY=VALUE`, handed to the command as
    one `storage_options` keyword (None when neither is given)."""

    @functools.wraps(fn)
    def command(*args: Any, endpoint_url: str | None, storage_option: tuple[str, ...], **kwargs: Any) -> Any:
        return fn(*args, storage_options=parse_storage_options(storage_option, endpoint_url), **kwargs)

    command = click.option(
        "--storage-option", "-O", "storage_option", multiple=True, metavar="KEY=VALUE",
        help="Object storage setting (repeat): region, access_key, secret_key, session_token, anonymous, "
             "endpoint_url, or the aws_… spellings. A local PATH ignores it.")(command)
    return click.option(
        "--endpoint-url", "endpoint_url", metavar="URL",
        help="S3-compatible endpoint for an s3:// PATH, e.g. http://127.0.0.1:9000 "
             "(default: $AWS_ENDPOINT_URL).")(command)


def _console(err: bool = False) -> Any:
    from rich.console import Console

    # Pipes get the width of a wide terminal, not rich's 80-column default.
    width = None if sys.stdout.isatty() else 120
    return Console(stderr=err, width=width, highlight=False, soft_wrap=False)


def _table(df: pl.DataFrame, title: str | None = None, caption: str | None = None) -> Any:
    from rich.table import Table

    table = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    for name, dtype in df.schema.items():
        table.add_column(name, justify="right" if dtype.is_numeric() else "left", overflow="fold")
    for row in df.iter_rows():
        table.add_row(*("" if v is None else _cell(v) for v in row))
    return table


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%SZ" if value.utcoffset() is not None else "%Y-%m-%d %H:%M:%S")
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def _display_frame(df: pl.DataFrame) -> pl.DataFrame:
    """Events as a terminal reads them: UTC times, names, short lists."""
    return df.select(
        pl.col("timestamp").dt.strftime("%Y-%m-%d %H:%M:%S%.3fZ").alias("timestamp (UTC)"),
        pl.col("operation").cast(pl.String),
        pl.col("user_id").cast(pl.String).alias("user"),
        pl.col("session_id").cast(pl.String).alias("session"),
        pl.col("entry_ids").list.len().alias("entries"),
        pl.col("status").cast(pl.String),
        pl.col("duration_ms").round(1).alias("ms"),
        pl.col("error_message").alias("error"),
    )


def _flat(df: pl.DataFrame) -> pl.DataFrame:
    """Columns CSV can hold: entry ids as a JSON array, categories as text."""
    entries = (pl.struct(pl.col("entry_ids").fill_null([])).struct.json_encode()
               .str.strip_prefix('{"entry_ids":').str.strip_suffix("}"))
    return df.with_columns(
        pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"),
        entries.alias("entry_ids"),
        pl.col(pl.Categorical, pl.Enum).cast(pl.String),
    )


def _write_events(df: pl.DataFrame, fmt: str, output: str | None) -> None:
    from axon_audit.io.json_export import write_json_stream
    from axon_audit.model.schema import to_arrow

    if fmt == "parquet":
        if output is None:
            raise BadInput("--format parquet needs --output FILE (Parquet is not for a terminal)")
        import pyarrow.parquet as pq

        pq.write_table(to_arrow(df), output, compression="zstd")
        return
    if fmt == "json":
        if output is None:
            write_json_stream(sys.stdout.buffer, df)
            sys.stdout.buffer.flush()
        else:
            with open(output, "wb") as fh:
                write_json_stream(fh, df)
        return
    if fmt == "csv":
        flat = _flat(df)
        if output is None:
            sys.stdout.write(flat.write_csv())
        else:
            flat.write_csv(output)
        return
    raise BadInput(f"--format must be one of table, json, csv, parquet; got {fmt!r}")


def _open(path: str, storage_options: dict[str, Any] | None = None) -> Any:
    return open_source(path, storage_options=storage_options)


# --------------------------------------------------------------------------- commands


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="axon_audit", prog_name="axon-audit")
def cli() -> None:
    """axon-audit: query, summarize and check audit exports (PATH is an export folder
    written by AuditLogger(auto_export_path=PATH))."""


@cli.command()
@click.argument("path")
@_filter_options
@click.option("--limit", "-n", type=click.IntRange(min=0), default=None,
              help="At most this many events, newest first (table default: 50).")
@click.option("--format", "-f", "fmt", type=_choice(["table", "json", "csv", "parquet"]), default="table",
              show_default=True, help="Output format.")
@click.option("--output", type=click.Path(dir_okay=False, writable=True), help="Write to this file instead.")
@_storage_options
def query(path: str, limit: int | None, fmt: str, output: str | None,
          storage_options: dict[str, Any] | None, **given: Any) -> None:
    """Events matching the filters, newest first.

    \b
    Example:
      axon-audit query audit_demo --user user_00000 -o store --since 1h
      axon-audit query audit_demo -s failure -f csv --limit 100
    """
    fmt = fmt.lower()
    if fmt == "table" and output is not None:
        raise BadInput("--output needs --format json, csv or parquet (a table is for the terminal)")
    source = _open(path, storage_options)
    filters = _filters(**given)
    if fmt == "table" and limit is None:
        limit = 50
    df = newest(source, limit=limit, **filters)
    if fmt != "table":
        _write_events(df, fmt, output)
        return
    total = source.scan(**filters).select(pl.len()).collect().item() if limit is not None else df.height
    caption = f"{df.height:,} of {total:,} matching events" + (" (use --limit)" if total > df.height else "")
    _console().print(_table(_display_frame(df), caption=caption))


@cli.command()
@click.argument("path")
@click.argument("query_text", metavar="QUERY")
@click.option("--format", "-f", "fmt", type=_choice(["table", "json", "csv"]), default="table",
              show_default=True, help="Output format.")
@_storage_options
def sql(path: str, query_text: str, fmt: str, storage_options: dict[str, Any] | None) -> None:
    """DuckDB SQL over the view `events` (every event in the folder).

    \b
    Example:
      axon-audit sql audit_demo "SELECT operation, count(*) FROM events GROUP BY ALL"
    """
    import duckdb

    source = _open(path, storage_options)
    try:
        df = source.sql(query_text)
    except (duckdb.Error, AuditValueError) as exc:  # the archive wraps DuckDB's errors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"SQL: {first.removeprefix('query cannot run: ')}") from None
    fmt = fmt.lower()
    if fmt == "json":
        sys.stdout.write(df.write_json() + "\n")
    elif fmt == "csv":
        try:
            sys.stdout.write(df.write_csv())
        except pl.exceptions.ComputeError:
            sys.stdout.write(df.with_columns(pl.col(pl.List(pl.String)).list.join(";")).write_csv())
    else:
        _console().print(_table(df, caption=f"{df.height:,} rows"))


@cli.command()
@click.argument("path")
@click.option("--user", "-u", "user_id", help="One user's statistics instead.")
@click.option("--format", "-f", "fmt", type=_choice(["table", "json"]), default="table", show_default=True)
@_storage_options
def stats(path: str, user_id: str | None, fmt: str, storage_options: dict[str, Any] | None) -> None:
    """The statistics of every event in the folder (or of one user).

    \b
    Example:
      axon-audit stats audit_demo
      axon-audit stats audit_demo --user user_00000 -f json
    """
    source = _open(path, storage_options)
    result = source.get_user_statistics(user_id) if user_id else source.get_statistics()
    if fmt.lower() == "json":
        _print_json(result)
        return
    from rich.table import Table

    table = Table(title=f"statistics of {user_id}" if user_id else "statistics", title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in result.items():
        if isinstance(value, dict):  # by_operation, by_status: one row each, largest first
            for name, n in sorted(value.items(), key=lambda kv: -kv[1]):
                table.add_row(f"{key} {name}", _cell(n))
            continue
        if key == "success_rate":
            value = f"{value:.2%}"
        table.add_row(key, "" if value is None else _cell(value))
    _console().print(table)


def _print_json(value: Any) -> None:
    import orjson

    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode() + "\n")


@cli.command()
@click.argument("path")
@click.option("--month", required=True, help="The month to report, as YYYY-MM (UTC).")
@click.option("--format", "-f", "fmt", type=_choice(["table", "json"]), default="table", show_default=True)
@_storage_options
def report(path: str, month: str, fmt: str, storage_options: dict[str, Any] | None) -> None:
    """The monthly compliance report of the folder's events.

    \b
    Example:
      axon-audit report audit_demo --month 2025-01
    """
    m = _MONTH.match(month.strip())
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise BadInput(f"--month: expected YYYY-MM, got {month!r}")
    from axon_audit.compliance.report import compliance_report

    result = compliance_report(_open(path, storage_options), month.strip())
    if fmt.lower() == "json":
        _print_json(result.to_dict())
        return
    console = _console()
    for name, df in result.frames.items():
        if df.height:
            console.print(_table(df, title=f"{result.period}: {name}"))


@cli.command()
@click.argument("path")
@click.option("--since", "start_time", type=TIME, help="Start: 1h, 30m, 2d, 1w or an ISO time (UTC).")
@click.option("--until", "end_time", type=TIME, help="End: as --since.")
@click.option("--format", "-f", "fmt", type=_choice(["table", "json"]), default="table", show_default=True)
@_storage_options
def alerts(path: str, start_time: datetime | None, end_time: datetime | None, fmt: str,
           storage_options: dict[str, Any] | None) -> None:
    """Security alerts (excessive deletions, failure bursts, unusual exports, …), most severe first.

    \b
    Example:
      axon-audit alerts audit_demo --since 1d
    """
    from axon_audit.compliance.monitor import SecurityMonitor

    monitor = SecurityMonitor()
    found = monitor.evaluate(_open(path, storage_options), start_time, end_time)
    if fmt.lower() == "json":
        _print_json([a.to_dict() for a in found])
        return
    frame = found.to_frame().with_columns(pl.col("event_ids").list.len().alias("events")).drop(
        "event_ids", "message")
    _console().print(_table(frame, title="security alerts", caption=f"{len(found):,} alerts"))


@cli.command()
@click.argument("path")
@click.option("--key", envvar="AXON_AUDIT_HMAC_KEY", help="HMAC key of the manifest (or $AXON_AUDIT_HMAC_KEY).")
@_storage_options
def verify(path: str, key: str | None, storage_options: dict[str, Any] | None) -> None:
    """Check the folder's (or s3:// lake's) integrity: every manifest, file hashes,
    per-event hash chain. Exits 0 when intact, 1 when a problem is found (each
    printed on its own line).

    \b
    Example:
      axon-audit verify audit_demo
      axon-audit verify s3://audit-lake/prod --key "$KEY"
    """
    from axon_audit.integrity.verify import verify as check

    _open(path, storage_options)  # the same clear error as the other commands for a missing folder
    outcome = check(path, key=key, storage_options=storage_options)
    for problem in outcome.problems:
        sys.stdout.write(f"PROBLEM {problem}\n")
    sys.stdout.write(f"{'intact' if outcome.ok else 'NOT INTACT'}: {outcome.files_checked:,} files, "
                     f"{outcome.events_checked:,} events checked\n")
    if not outcome.ok:
        raise click.exceptions.Exit(EXIT_FAILED)


@cli.command()
@click.argument("path")
@_filter_options
@click.option("--to", "target", required=True, type=click.Path(dir_okay=False),
              help="The file to write: .json (the seed's export format), .parquet or .csv.")
@_storage_options
def export(path: str, target: str, storage_options: dict[str, Any] | None, **given: Any) -> None:
    """Write the matching events (oldest first) to one file.

    \b
    Example:
      axon-audit export audit_demo --user user_00000 --to user_00000_audit.json
    """
    suffix = Path(target).suffix.lower()
    fmt = {".json": "json", ".parquet": "parquet", ".csv": "csv"}.get(suffix)
    if fmt is None:
        raise BadInput(f"--to: expected a file ending in .json, .parquet or .csv, got {target!r}")
    source = _open(path, storage_options)
    err = _console(err=True)
    started = time.perf_counter()
    with err.status(f"exporting to {target} …"):
        df = newest(source, **_filters(**given)).reverse()
        _write_events(df, fmt, target)
    err.print(f"wrote {df.height:,} events to {target} in {time.perf_counter() - started:.2f} s")


@cli.command()
@click.argument("path")
@_filter_options
@click.option("--lines", "-n", type=click.IntRange(min=0), default=10, show_default=True,
              help="Newest events to show first.")
@click.option("--interval", type=click.FloatRange(min=0.05), default=1.0, show_default=True,
              help="Seconds between looks for new files.")
@click.option("--no-follow", is_flag=True, help="Print the newest events and stop.")
@_storage_options
def tail(path: str, lines: int, interval: float, no_follow: bool, storage_options: dict[str, Any] | None,
         **given: Any) -> None:
    """Print the newest events, then follow new export files as they land (Ctrl-C stops);
    a local folder or an s3:// lake alike.

    \b
    Example:
      axon-audit tail audit_demo -s failure
      axon-audit tail s3://audit-lake/prod --endpoint-url http://127.0.0.1:9000
    """
    from axon_audit.query.filters import Filters

    source = _open(path, storage_options)
    filters = _filters(**given)
    expr = Filters.build(**filters).expr()
    # New files are found by listing the folder (the reader may cache what it saw):
    # each rotation writes new, unique names, so a name not seen yet holds new events.
    fs, listing = parquet_listing(path, storage_options=storage_options)
    seen = set(listing())
    if lines:
        _print_lines(newest(source, limit=lines, **filters).reverse())
    if no_follow:
        return
    sys.stderr.write(f"axon-audit: following {path} for new files (Ctrl-C stops)\n")
    sys.stderr.flush()
    import pyarrow.parquet as pq

    from axon_audit.model.schema import COLUMNS, FRAME_SCHEMA

    while True:
        time.sleep(interval)
        fresh = [p for p in listing() if p not in seen]
        if not fresh:
            continue
        frames = []
        for p in fresh:
            seen.add(p)
            table = pq.read_table(p, filesystem=fs)
            df = pl.from_arrow(table).select(COLUMNS).cast(dict(FRAME_SCHEMA))  # type: ignore[arg-type,union-attr]
            frames.append(df if expr is None else df.filter(expr))
        _print_lines(pl.concat(frames).sort("timestamp", "event_id"))


def _print_lines(df: pl.DataFrame) -> None:
    """One event per line, oldest first, flushed (so a pipe sees it at once)."""
    shown = _display_frame(df)
    for row in shown.iter_rows():
        ts, op, user, session, entries, status, ms, error = row
        text = f"{ts}  {op:<10} {status:<7} {user or '-'}  {session or '-'}  entries={entries}"
        if ms is not None:
            text += f"  {ms}ms"
        if error:
            text += f"  error={error!r}"
        sys.stdout.write(text + "\n")
    sys.stdout.flush()


@cli.command()
@click.option("--events", "-n", type=click.IntRange(min=1), default=1_000_000, show_default=True,
              help="Workload events to log.")
@click.option("--out", type=click.Path(file_okay=False), default="audit_demo", show_default=True,
              help="Export folder (a previous demo's folder is replaced; any other must be empty).")
@click.option("--seed", type=int, default=0, show_default=True, help="Workload seed.")
@click.option("--tasks", type=click.IntRange(1, 256), default=8, show_default=True, help="Concurrent agents.")
def demo(events: int, out: str, seed: int, tasks: int) -> None:
    """A memory system with audit logging under a realistic load, end to end.

    \b
    Example:
      axon-audit demo --events 200000 --out /tmp/audit_demo
    """
    from axon_audit.app.demo import run_demo

    run_demo(events=events, out=out, seed=seed, tasks=tasks, console=_console())


# --------------------------------------------------------------------------- entry point


def _one_line(message: str) -> str:
    return " ".join(message.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (0 ok, 2 bad input, 1 failure)."""
    try:
        # Outside standalone mode click returns a command's `Exit` code instead of exiting.
        code = cli.main(args=list(argv) if argv is not None else None, prog_name="axon-audit",
                        standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        sys.stderr.write("axon-audit: interrupted\n")
        return 130
    except KeyboardInterrupt:
        return 130
    except click.UsageError as exc:
        # click's own usage errors (unknown option or command, bad choice) are bad input too.
        sys.stderr.write(f"axon-audit: error: {_one_line(exc.format_message())}\n")
        return EXIT_BAD_INPUT
    except click.ClickException as exc:
        sys.stderr.write(f"axon-audit: error: {_one_line(exc.format_message())}\n")
        return exc.exit_code
    except AuditError as exc:
        sys.stderr.write(f"axon-audit: error: {_one_line(str(exc))}\n")
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        # `axon-audit query … | head`: the reader left; not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:
        if os.environ.get("AXON_AUDIT_DEBUG"):
            raise
        sys.stderr.write(f"axon-audit: failed: {type(exc).__name__}: {_one_line(str(exc))}\n")
        return EXIT_FAILED
    return code if isinstance(code, int) else 0

