"""The `axon-audit` command line (click): query, sql, stats, report, alerts, verify,
prove, export, tail, serve (a read-only web dashboard) and demo over an export folder (a
local path or an `s3://` URI); erase, retention (both on folders and lakes) and
subject-access (privacy); verify-proof (a proof bundle, offline) and keygen (a log's signing key).

This module holds the click group and the entry point `main` with the error
contract; the commands are in `axon_audit.app.commands` (the integrity ones in
`axon_audit.app.integrity_commands`, the privacy ones in
`axon_audit.app.privacy_commands`, serve in `axon_audit.app.serve_command`), their shared options
in `axon_audit.app.options` and their output in `axon_audit.app.render`.

Every command reads the folder through `axon_audit.read.sources.open_source`;
`--endpoint-url` and `--storage-option KEY=VALUE` configure object storage. Bad
input (a missing folder, malformed SQL, an unknown operation, a bad time) prints
one line, ``axon-audit: error: …``, to stderr and exits 2; nothing prints a
traceback (set AXON_AUDIT_DEBUG=1 to see one).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence

import click

from axon_audit.app.commands import COMMANDS
from axon_audit.app.options import EXIT_BAD_INPUT, EXIT_FAILED, BadInput, parse_storage_options, parse_time
from axon_audit.app.render import terminal_text
from axon_audit.exceptions import AuditError

# BadInput, parse_time and parse_storage_options moved to app.options; re-exported
# so `axon_audit.app.cli` keeps every name it had.
__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "BadInput", "cli", "main", "parse_storage_options", "parse_time"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="axon_audit", prog_name="axon-audit")
def cli() -> None:
    """axon-audit: query, summarize and check audit exports (PATH is an export folder
    written by AuditLogger(auto_export_path=PATH))."""


for _command in COMMANDS:
    cli.add_command(_command)


# --------------------------------------------------------------------------- entry point


def _one_line(message: str) -> str:
    # Messages quote paths, ids and SQL from the data: one line, no escape sequence of theirs.
    return terminal_text(" ".join(message.split()))


_UNREACHABLE = re.compile(r"Failed to connect to (\S+)|Could not resolve host: (\S+)")


def _failure(exc: Exception) -> str:
    text = str(exc)
    # pyarrow's S3 errors run to hundreds of characters of curl detail; say what happened.
    found = _UNREACHABLE.search(text) if isinstance(exc, OSError) else None
    if found:
        where = (found.group(1) or found.group(2)).rstrip(";:,")
        return f"cannot reach object storage at {where}: connection refused or host unknown (check --endpoint-url)"
    return f"{type(exc).__name__}: {text}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (0 ok, 2 bad input, 1 failure)."""
    args = list(argv) if argv is not None else sys.argv[1:]
    if not args:  # no command: the help, laid out as click lays it out, and exit 0
        with click.Context(cli, info_name="axon-audit") as ctx:
            click.echo(cli.get_help(ctx))
        return 0
    try:
        # Outside standalone mode click returns a command's `Exit` code instead of exiting.
        code = cli.main(args=args, prog_name="axon-audit",
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
    except Exception as exc:  # a CLI prints one line, never a traceback
        if os.environ.get("AXON_AUDIT_DEBUG"):
            raise
        sys.stderr.write(f"axon-audit: failed: {_one_line(_failure(exc))}\n")
        return EXIT_FAILED
    return code if isinstance(code, int) else 0

