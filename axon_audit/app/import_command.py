"""The `axon-audit import` command: Axon export files (the reference AuditLogger's
bare JSON list, or the seed's export document) into an export folder
(`axon_audit.write.migrate.import_axon_export`), then the folder verified.

Exit codes as the rest of the command line: 0 imported and verified; 2 bad input
(a missing or unreadable file, a folder that is not an export folder, an event
the folder already holds: nothing is written then); 1 when the folder does not
hold every imported event once, or fails `verify`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from axon_audit.app.options import BadInput
from axon_audit.app.render import new_console, terminal_text
from axon_audit.exceptions import AuditError, ExportError
from axon_audit.integrity.verify import verify as check
from axon_audit.write.migrate import check_import_folder, import_axon_export

__all__ = ["IMPORT_COMMANDS", "import_events"]


@click.command("import", short_help="Import Axon audit exports into an export folder, then verify it.")
@click.argument("legacy", metavar="LEGACY.json...", nargs=-1, required=True)
@click.option("--into", "into", required=True, type=click.Path(file_okay=False),
              help="The export folder to write: new, empty, or an existing export folder (never another folder).")
@click.option("--skip-known", is_flag=True,
              help="Skip events the folder (or an earlier file) already holds, when identical (overlapping "
                   "daily exports); a different event with a known id still refuses the import.")
@click.option("--key", envvar="AXON_AUDIT_HMAC_KEY", default=None,
              help="HMAC key signing the folder's manifest (as AuditLogger(hmac_key=...)); env AXON_AUDIT_HMAC_KEY.")
def import_events(legacy: tuple[str, ...], into: str, skip_known: bool, key: str | None) -> None:
    """Import Axon audit exports (JSON lists of events; naive times are UTC, as Axon
    wrote them) into an export folder, ids and times kept, then verify the folder.
    Every file is checked before anything is written.

    \b
    Example:
      axon-audit import audit_trail.json --into audit_logs
      axon-audit import audit_2025_01_*.json --into audit_logs --skip-known
      axon-audit query audit_logs --since 30d
    """
    for name in legacy:
        if not Path(name).is_file():
            raise BadInput(f"LEGACY.json: {name!r} is not a file (expected an Axon export, a JSON list of events)")
    try:
        check_import_folder(into, "--into")
    except AuditError as exc:
        raise BadInput(str(exc)) from None
    err = new_console(err=True)
    started = time.perf_counter()
    try:
        with err.status(f"importing {len(legacy):,} file(s) …"):
            done = import_axon_export(legacy, into, skip_known=skip_known, **({"hmac_key": key} if key else {}))
    except ExportError as exc:
        raise click.ClickException(str(exc)) from None
    except AuditError as exc:
        raise BadInput(str(exc).replace("skip_known imports", "--skip-known imports")) from None
    outcome = check(into, key=key)
    for problem in outcome.problems:
        sys.stdout.write(f"PROBLEM {terminal_text(problem)}\n")
    if not outcome.ok:
        raise click.ClickException(f"{into}: imported {done.imported:,} events but the folder does not verify")
    source = terminal_text(legacy[0]) if len(legacy) == 1 else f"{len(legacy):,} files"
    skipped = f", {done.already_there:,} already there skipped" if skip_known else ""
    sys.stdout.write(f"imported {done.imported:,} events from {source} into {terminal_text(into)}{skipped} "
                     f"(the folder verifies: {outcome.events_checked:,} events)\n")
    err.print(f"import took {time.perf_counter() - started:.2f} s")


IMPORT_COMMANDS: tuple[click.Command, ...] = (import_events,)
