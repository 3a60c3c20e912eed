"""The `axon-audit` commands: query, sql, stats and export (events); tail (the folder
itself); demo. The compliance commands (report, alerts) are in
`axon_audit.app.report_commands`, the integrity ones (verify, prove, verify-proof,
keygen) in `axon_audit.app.integrity_commands`, the privacy ones (erase, retention,
subject-access) in `axon_audit.app.privacy_commands`, serve (the web dashboard) in
`axon_audit.app.serve_command`, import (an Axon export into a folder) in
`axon_audit.app.import_command`; `COMMANDS` holds all.

Each is a plain click command; `axon_audit.app.cli` adds them to the group.
Every command reads the folder through `axon_audit.read.sources.open_source`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click
import duckdb
import polars as pl
from rich.table import Table

from axon_audit.app.demo import run_demo
from axon_audit.app.import_command import IMPORT_COMMANDS
from axon_audit.app.integrity_commands import INTEGRITY_COMMANDS, keygen, prove, verify, verify_proof
from axon_audit.app.options import (
    BadInput,
    choice,
    output_file,
    query_filters,
    with_filter_options,
    with_storage_options,
)
from axon_audit.app.privacy_commands import PRIVACY_COMMANDS
from axon_audit.app.render import (
    cell,
    display_frame,
    frame_table,
    markup_text,
    new_console,
    print_json,
    print_lines,
    terminal_text,
    write_events,
    write_text,
)
from axon_audit.app.report_commands import REPORT_COMMANDS, alerts, report
from axon_audit.app.serve_command import SERVE_COMMANDS
from axon_audit.exceptions import AuditValueError
from axon_audit.io.location import resolve
from axon_audit.model.schema import COLUMNS, FRAME_SCHEMA
from axon_audit.query.filters import Filters
from axon_audit.read.live_tail import LiveFollower, follow_frames
from axon_audit.read.log_order import LogFollower
from axon_audit.read.sources import newest, open_source

__all__ = ["COMMANDS", "alerts", "demo", "export", "keygen", "prove", "query", "report", "sql", "stats", "tail",
           "verify", "verify_proof"]


def _open(path: str, storage_options: dict[str, Any] | None = None) -> Any:
    return open_source(path, storage_options=storage_options)


@click.command()
@click.argument("path")
@with_filter_options
@click.option("--limit", "-n", type=click.IntRange(min=0), default=None,
              help="At most this many events, newest first (table default: 50).")
@click.option("--format", "-f", "fmt", type=choice(["table", "json", "csv", "parquet"]), default="table",
              show_default=True, help="Output format.")
@click.option("--output", type=click.Path(dir_okay=False, writable=True), help="Write to this file instead.")
@click.option("--force", is_flag=True, help="Replace the --output file if it exists.")
@with_storage_options
def query(path: str, limit: int | None, fmt: str, output: str | None, force: bool,
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
    if output is not None:
        output_file(output, "--output", source=path, force=force, storage_options=storage_options)
    filters = query_filters(**given)
    if fmt == "table" and limit is None:
        limit = 50
    df = newest(source, limit=limit, **filters)
    if fmt != "table":
        write_events(df, fmt, output)
        return
    total = source.scan(**filters).select(pl.len()).collect().item() if limit is not None else df.height
    caption = f"{df.height:,} of {total:,} matching events" + (" (use --limit)" if total > df.height else "")
    new_console().print(frame_table(display_frame(df), caption=caption))


@click.command()
@click.argument("path")
@click.argument("query_text", metavar="QUERY")
@click.option("--format", "-f", "fmt", type=choice(["table", "json", "csv"]), default="table",
              show_default=True, help="Output format.")
@click.option("--allow-writes", is_flag=True,
              help="Trusted SQL only: any statement (COPY, ATTACH, SET, …) with full file access.")
@with_storage_options
def sql(path: str, query_text: str, fmt: str, allow_writes: bool, storage_options: dict[str, Any] | None) -> None:
    """DuckDB SQL over the view `events` (every event in the folder). Read-only: queries
    only, no file access but the folder's events (--allow-writes lifts that).

    \b
    Example:
      axon-audit sql audit_demo "SELECT operation, count(*) FROM events GROUP BY ALL"
    """
    source = _open(path, storage_options)
    try:
        df = source.sql(query_text, read_only=not allow_writes)
    except (duckdb.Error, AuditValueError) as exc:  # the archive wraps DuckDB's errors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        first = first.replace("pass read_only=False", "pass --allow-writes")
        raise BadInput(f"SQL: {first.removeprefix('query cannot run: ')}") from None
    fmt = fmt.lower()
    if fmt == "json":
        write_text(df.write_json() + "\n")
    elif fmt == "csv":
        try:
            write_text(df.write_csv())
        except pl.exceptions.ComputeError:
            write_text(df.with_columns(pl.col(pl.List(pl.String)).list.join(";")).write_csv())
    else:
        new_console().print(frame_table(df, caption=f"{df.height:,} rows"))


@click.command()
@click.argument("path")
@click.option("--user", "-u", "user_id", help="One user's statistics instead.")
@click.option("--format", "-f", "fmt", type=choice(["table", "json"]), default="table", show_default=True)
@with_storage_options
def stats(path: str, user_id: str | None, fmt: str, storage_options: dict[str, Any] | None) -> None:
    """The statistics of every event in the folder (or of one user).

    \b
    Example:
      axon-audit stats audit_demo
      axon-audit stats audit_demo --user user_00000 -f json
    """
    source = _open(path, storage_options)
    result = source.get_user_statistics(user_id) if user_id else source.get_statistics()
    # Zero events is not "100% success": a typo in PATH or --user must not look like a clean result.
    if not (result["total_operations"] if user_id else result["total_events"]):
        raise click.ClickException(f"no events for user {user_id!r} in {path!r}" if user_id else
                                   f"no audit events in {path!r} (is it a folder an AuditLogger exports to?)")
    if fmt.lower() == "json":
        print_json(result)
        return
    table = Table(title=cell(f"statistics of {user_id}" if user_id else "statistics"), title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in result.items():
        if isinstance(value, dict):  # by_operation, by_status: one row each, largest first
            for name, n in sorted(value.items(), key=lambda kv: -kv[1]):
                table.add_row(cell(f"{key} {name}"), cell(n))
            continue
        if key == "success_rate":
            value = f"{value:.2%}"
        table.add_row(cell(key), "" if value is None else cell(value))
    new_console().print(table)


@click.command()
@click.argument("path")
@with_filter_options
@click.option("--to", "target", required=True, type=click.Path(dir_okay=False),
              help="The file to write: .json (the seed's export format), .parquet or .csv; never inside an "
                   "export folder.")
@click.option("--force", is_flag=True, help="Replace the --to file if it exists.")
@with_storage_options
def export(path: str, target: str, force: bool, storage_options: dict[str, Any] | None, **given: Any) -> None:
    """Write the matching events (oldest first) to one file (not inside an export folder:
    its files are sealed evidence; an existing file only with --force).

    \b
    Example:
      axon-audit export audit_demo --user user_00000 --to user_00000_audit.json
    """
    suffix = Path(target).suffix.lower()
    fmt = {".json": "json", ".parquet": "parquet", ".csv": "csv"}.get(suffix)
    if fmt is None:
        raise BadInput(f"--to: expected a file ending in .json, .parquet or .csv, got {target!r}")
    source = _open(path, storage_options)
    output_file(target, "--to", source=path, force=force, storage_options=storage_options)
    err = new_console(err=True)
    started = time.perf_counter()
    with err.status(f"exporting to {markup_text(target)} …"):
        df = newest(source, **query_filters(**given)).reverse()
        write_events(df, fmt, target)
    err.print(f"wrote {df.height:,} events to {markup_text(target)} in {time.perf_counter() - started:.2f} s")


@click.command()
@click.argument("path")
@with_filter_options
@click.option("--lines", "-n", type=click.IntRange(min=0), default=10, show_default=True,
              help="Newest events to show first.")
@click.option("--interval", type=click.FloatRange(min=0.05), default=1.0, show_default=True,
              help="Seconds between looks for new files.")
@click.option("--no-follow", is_flag=True, help="Print the newest events and stop.")
@click.option("--wal", "wal", type=click.Path(file_okay=False), default=None,
              help="The logger's write-ahead log folder (its wal_path): also show, as they are "
                   "written, the events not yet exported.")
@with_storage_options
def tail(path: str, lines: int, interval: float, no_follow: bool, wal: str | None,
         storage_options: dict[str, Any] | None, **given: Any) -> None:
    """Print the newest events, then follow new export files as they land (Ctrl-C stops);
    a local folder or an s3:// lake alike. With --wal, a live logger's events show as they
    are written to its write-ahead log, each once across their export.

    \b
    Example:
      axon-audit tail audit_demo -s failure
      axon-audit tail s3://audit-lake/prod --endpoint-url http://127.0.0.1:9000
      axon-audit tail /var/audit --wal /var/audit-wal
    """
    source = _open(path, storage_options)
    filters = query_filters(**given)
    expr = Filters.build(**filters).expr()
    # New events are found on the export log (the folder's manifests), part by part in
    # log order: not by listing or file times, so the order across files is the log's.
    loc = resolve(path, storage_options=storage_options)
    if wal is not None and loc.is_file():
        raise BadInput(f"--wal: follows an export folder, not the file {path!r}")
    follower: LogFollower | LiveFollower | None = (
        None if loc.is_file() else LogFollower(loc) if wal is None else LiveFollower(loc, Path(wal)))
    if lines:
        shown = newest(source, limit=lines, **filters).reverse()
        if isinstance(follower, LiveFollower):  # then the WAL's events not yet exported, newest last
            live = follower.backlog if expr is None else follower.backlog.filter(expr)
            shown = shown.filter(~pl.col("event_id").is_in(follower.backlog["event_id"].implode()))
            shown = pl.concat([shown.select(COLUMNS).cast(FRAME_SCHEMA), live]).tail(lines)
        print_lines(shown)
    if no_follow or follower is None:
        return
    what = "new files" if wal is None else "new files and its write-ahead log"
    sys.stderr.write(f"axon-audit: following {terminal_text(path)} for {what} (Ctrl-C stops)\n")
    sys.stderr.flush()
    for df in follow_frames(follower, interval, expr):
        print_lines(df)


@click.command()
@click.option("--events", "-n", type=click.IntRange(min=1), default=1_000_000, show_default=True,
              help="Workload events to log.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Export folder (a previous demo's folder is replaced; any other must be empty). "
                   "Default: axon_audit_demo in the system temp dir ($TMPDIR or /tmp).")
@click.option("--seed", type=int, default=0, show_default=True, help="Workload seed.")
@click.option("--tasks", type=click.IntRange(1, 256), default=8, show_default=True, help="Concurrent agents.")
def demo(events: int, out: str | None, seed: int, tasks: int) -> None:
    """A memory system with audit logging under a realistic load, end to end.

    \b
    Example:
      axon-audit demo --events 200000 --out /tmp/audit_demo
    """
    run_demo(events=events, out=out, seed=seed, tasks=tasks, console=new_console())


# Every command of the group (click lists them by name in --help, whatever the order here).
COMMANDS: tuple[click.Command, ...] = (demo, export, query, sql, stats, tail, *REPORT_COMMANDS, *INTEGRITY_COMMANDS,
                                       *PRIVACY_COMMANDS, *SERVE_COMMANDS, *IMPORT_COMMANDS)
