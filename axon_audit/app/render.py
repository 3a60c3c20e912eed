"""How the command line prints: rich tables, one-line events, JSON, and event files.

Output goes to stdout (data) or stderr (progress); pipes get a fixed width so
a table's text does not depend on the terminal that happened to run it.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from typing import Any

import orjson
import polars as pl
import pyarrow.parquet as pq
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from axon_audit.app.options import BadInput
from axon_audit.io.json_export import write_json_stream
from axon_audit.model.schema import to_arrow

__all__ = [
    "cell",
    "cell_text",
    "display_frame",
    "frame_table",
    "markup_text",
    "new_console",
    "print_json",
    "print_lines",
    "terminal_text",
    "write_events",
    "write_text",
]

# C0 and C1 control characters and DEL, written as \xNN escapes.
_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0xA0)]}
# Bidirectional overrides and isolates reorder what a terminal shows ("x\u202eevil" reads
# backwards), and the Unicode line and paragraph separators split a line on some.
_CONTROL.update({c: f"\\u{c:04x}" for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029]})


def terminal_text(text: str) -> str:
    """`text` with its control characters written as ``\\xNN``: audit data (an event
    id read from a tampered file, a bundle's event) that reaches a terminal cannot
    move the cursor, recolour, retitle, split a line or reorder it (bidi controls
    as ``\\uNNNN``). Every value from audit data
    or file names that the command line prints goes through it (rich output as a
    `Text` of it, which rich never reads as markup: `cell`, `markup_text`).

    Example:
        >>> from axon_audit.app.render import terminal_text
        >>> terminal_text("evt_1\\x1b[2J\\nPROBLEM none")
        'evt_1\\\\x1b[2J\\\\x0aPROBLEM none'
        >>> terminal_text("x\\u202eevil")
        'x\\\\u202eevil'
    """
    return text.translate(_CONTROL)


def cell(value: Any) -> Text:
    """A value as rich shows it: its `terminal_text`, never read as markup
    (``[red]admin[/red]`` stays those characters; ``[/x]`` cannot break a table)."""
    return Text(terminal_text(value if isinstance(value, str) else cell_text(value)))


def markup_text(text: str) -> str:
    """`terminal_text` of `text` for a rich string that is read as markup (a status
    line, `Console.print`): its brackets escaped.

    Example:
        >>> from axon_audit.app.render import markup_text
        >>> markup_text("[red]x.json")
        '\\\\[red]x.json'
    """
    return escape(terminal_text(text))


# Row and line breaks are the format's own; every other control character is escaped.
_CONTROL_NOT_NEWLINE = {k: v for k, v in _CONTROL.items() if k != 0x0A}


def write_text(text: str) -> None:
    """Data text (CSV) to stdout: as is into a pipe or file; on a terminal with its
    control characters but newlines escaped (no escape sequence of the data runs)."""
    sys.stdout.write(text.translate(_CONTROL_NOT_NEWLINE) if sys.stdout.isatty() else text)


def new_console(err: bool = False) -> Any:
    # Pipes get the width of a wide terminal, not rich's 80-column default; $COLUMNS,
    # when set, is the width asked for (rich reads it), terminal or not.
    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS", "").isdigit() else 120
    return Console(stderr=err, width=width, highlight=False, soft_wrap=False)


def frame_table(df: pl.DataFrame, title: str | None = None, caption: str | None = None) -> Any:
    table = Table(title=None if title is None else cell(title), caption=None if caption is None else cell(caption),
                  title_justify="left", caption_justify="left")
    for name, dtype in df.schema.items():  # a column name may come from the data (PIVOT)
        table.add_column(cell(name), justify="right" if dtype.is_numeric() else "left", overflow="fold")
    for row in df.iter_rows():
        table.add_row(*("" if v is None else cell(v) for v in row))
    return table


def cell_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%SZ" if value.utcoffset() is not None else "%Y-%m-%d %H:%M:%S")
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def display_frame(df: pl.DataFrame) -> pl.DataFrame:
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


def write_events(df: pl.DataFrame, fmt: str, output: str | None) -> None:
    if fmt == "parquet":
        if output is None:
            raise BadInput("--format parquet needs --output FILE (Parquet is not for a terminal)")
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
            write_text(flat.write_csv())
        else:
            flat.write_csv(output)
        return
    raise BadInput(f"--format must be one of table, json, csv, parquet; got {fmt!r}")


def print_json(value: Any) -> None:
    write_text(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode() + "\n")


def print_lines(df: pl.DataFrame) -> None:
    """One event per line, oldest first, flushed (so a pipe sees it at once)."""
    shown = display_frame(df)
    for row in shown.iter_rows():
        ts, op, user, session, entries, status, ms, error = row
        text = f"{ts}  {op:<10} {status:<7} {user or '-'}  {session or '-'}  entries={entries}"
        if ms is not None:
            text += f"  {ms}ms"
        if error:
            text += f"  error={error!r}"
        sys.stdout.write(terminal_text(text) + "\n")  # one event, one line, whatever its data holds
    sys.stdout.flush()

