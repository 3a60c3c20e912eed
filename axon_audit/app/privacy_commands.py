"""The `axon-audit` privacy commands: erase (GDPR art. 17: a subject's identifiers
pseudonymized or removed), retention (old partitions and exports deleted) and
subject-access (GDPR art. 15: a subject's events written to one file).

Erasure and retention are irreversible, so they ask first: without ``--yes``
they confirm on a terminal and refuse (exit 2) when stdin is not one; with
``--dry-run`` they only say what would change. In a sealed folder the change is
recorded in its integrity manifest, re-signed with ``--key`` (HMAC) and
``--signing-key`` (the keygen file) where the folder is signed: both are checked
against the folder before anything is changed, so `verify` passes afterwards.
On an ``s3://`` lake both go through `axon_audit.app.lake_privacy` (the run is
recorded in the lake's global log).
"""

from __future__ import annotations

import hmac
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
import orjson
import polars as pl
from rich.table import Table

from axon_audit.app.lake_privacy import erase_lake, retention_lake
from axon_audit.app.options import NAIVE_TIME_OPTION, TIME, BadInput, choice, output_file, with_storage_options
from axon_audit.app.render import cell, frame_table, new_console, print_json, terminal_text
from axon_audit.compliance.erasure import erase_subject
from axon_audit.compliance.erasure_plan import plan_erasure
from axon_audit.compliance.lake_maintenance import lake_of
from axon_audit.compliance.retention import RetentionResult, apply_retention
from axon_audit.compliance.subject_access import subject_access_report
from axon_audit.exceptions import ArchiveError, AuditValueError, IntegrityError
from axon_audit.integrity import manifest as _integrity
from axon_audit.integrity.checkpoint import SigningKey, open_checkpoint
from axon_audit.io.layout import ExportLayout
from axon_audit.io.location import Location, local_folder, resolve
from axon_audit.model.timestamps import format_us, parse_timestamp, to_us
from axon_audit.read.sources import open_source

__all__ = ["PRIVACY_COMMANDS", "erase", "retention", "subject_access"]

_KEY_HELP = "HMAC key of the folder's manifest, to re-sign it (or $AXON_AUDIT_HMAC_KEY)."
_MAX_DAYS = 100_000
_SIGNING_HELP = "The folder's signing key (the file keygen wrote), where its tree heads are signed."


def _local(path: str, command: str) -> Path:
    """PATH as a local folder (bad input for object storage), after the usual reading checks."""
    try:
        root = local_folder(path, argument="PATH", task=command)
    except AuditValueError as exc:
        raise BadInput(str(exc)) from None
    open_source(path)  # the same clear error as the other commands for a missing or unreadable folder
    return root


def _lake(path: str, storage_options: dict[str, Any] | None) -> Location | None:
    """PATH as an object-store lake (None: a local folder), after the usual reading checks."""
    try:
        lake = lake_of(path, storage_options)
    except AuditValueError as exc:
        raise BadInput(str(exc).replace("source:", "PATH:", 1)) from None
    if lake is not None:
        open_source(path, storage_options=storage_options)  # the same clear error as the other commands
    return lake


def _signer(path: str | None) -> SigningKey | None:
    if path is None:
        return None
    try:
        return SigningKey.from_file(path)
    except OSError as exc:
        raise BadInput(f"--signing-key {path}: cannot be read ({exc.strerror or exc})") from None
    except (IntegrityError, UnicodeDecodeError, ValueError) as exc:
        raise BadInput(f"--signing-key {path}: not a signing key as keygen writes (PRIVATE+KEY+…): {exc}") from None


def _keys(root: Path, path: str, key: str | None, signing_key: str | None,
          what: str) -> tuple[str | None, SigningKey | None]:
    """The HMAC key and signing key to re-seal `root` with, checked against the folder's
    manifest first: a missing or wrong key would leave a folder that no longer verifies."""
    signer = _signer(signing_key)
    if not ExportLayout(root).manifest_path.exists():
        return key, signer  # nothing sealed: nothing to re-sign
    manifest = _integrity.load_manifest(root)
    if "hmac" in manifest:
        if key is None:
            raise BadInput(f"--key: {path} has an HMAC-signed manifest and {what} must re-sign it; "
                           "pass --key or set $AXON_AUDIT_HMAC_KEY")
        count, head = _integrity.head_of(manifest)
        fmt = str(manifest.get("format", _integrity.FORMAT))  # an old folder's head is signed under its format
        if not hmac.compare_digest(_integrity.head_hmac(key.encode(), count, head, fmt), str(manifest["hmac"])):
            raise BadInput(f"--key: not the HMAC key of {path}'s manifest (its HMAC does not match); "
                           "nothing was changed (run verify with the right key)")
    elif key is not None:
        key = None  # an unkeyed manifest stays unkeyed ($AXON_AUDIT_HMAC_KEY may be set for other folders)
    if _integrity.signs_its_heads(manifest):
        if signer is None:
            raise BadInput(f"--signing-key: {path} signs its tree heads and {what} must be signed too; "
                           "pass the key file keygen wrote")
        note = next(e["checkpoint"] for e in reversed(manifest["entries"])
                    if e.get("kind") == "tree" and e.get("checkpoint"))
        try:
            open_checkpoint(note.encode("utf-8"), [signer.verifier()])
        except IntegrityError:
            raise BadInput(f"--signing-key {signing_key}: not the key that signs {path}'s tree heads "
                           f"(it is {signer.verifier()})") from None
    return key, signer


def _confirm(yes: bool, question: str) -> None:
    """Go on only with --yes or a yes typed on a terminal."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise BadInput("this cannot be undone and stdin is not a terminal to confirm it: pass --yes "
                       "(or --dry-run to see what would change)")
    if not click.confirm(f"{question} This cannot be undone.", default=False, err=True):
        raise click.ClickException("not confirmed; nothing was changed")


@contextmanager
def _refusal(what: str) -> Iterator[None]:
    """The API's refusal of a folder it cannot change safely (a file that differs from its
    manifest, an unknown column, an old chained export): exit 1 like verify's problems,
    not bad input; the API changed nothing."""
    try:
        yield
    except (AuditValueError, ArchiveError) as exc:
        raise click.ClickException(f"{what} refused: {exc}") from None


def _name(root: Path, p: Path | Location) -> str:
    return terminal_text(ExportLayout(root).name_of(p) if isinstance(p, Path) else p.name)


# --------------------------------------------------------------------------- erase


@click.command(short_help="Erase a user's ids from the folder (GDPR art. 17).")
@click.argument("path")
@click.argument("user_id")
@click.option("--mode", type=choice(["pseudonymize", "remove"]), default="pseudonymize", show_default=True,
              help="Replace the ids with one random pseudonym, or remove them (null, text '[erased]').")
@click.option("--requested-by", "requested_by", metavar="WHO",
              help="Who asked for the erasure (the user id of the FORGET record).")
@click.option("--key", envvar="AXON_AUDIT_HMAC_KEY", help=_KEY_HELP)
@click.option("--signing-key", "signing_key", metavar="FILE", help=_SIGNING_HELP)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Only say what would change.")
@with_storage_options
def erase(path: str, user_id: str, mode: str, requested_by: str | None, key: str | None,
          signing_key: str | None, yes: bool, dry_run: bool, storage_options: dict[str, Any] | None) -> None:
    """Erase USER_ID from the export folder (GDPR art. 17): their id, their session
    ids and their ids in their events' text are pseudonymized (or removed) in every
    file, atomically; the erasure is recorded as a FORGET event and, in a sealed
    folder, as an erasure entry of its manifest (on an s3:// lake, of its global
    log; verify still passes). Irreversible.

    \b
    Example:
      axon-audit erase audit_demo user_00042 --dry-run
      axon-audit erase audit_demo user_00042 --requested-by dpo --key "$KEY" --signing-key log.key --yes
      axon-audit erase s3://audit-lake/prod user_00042 --key "$KEY" --signing-key log.key --yes
    """
    if not user_id.strip():
        raise BadInput("USER_ID: expected a user id, got an empty one")
    if requested_by is not None and not requested_by.strip():
        raise BadInput("--requested-by: expected who asked for the erasure, got an empty name")
    lake = _lake(path, storage_options)
    if lake is not None:
        return erase_lake(lake, user_id, mode, requested_by, key, _signer(signing_key), dry_run,
                          lambda q: _confirm(yes, q), storage_options)
    root = _local(path, "erase")
    with _refusal("erasure"):
        plan = plan_erasure(root, user_id)
    if not plan.events:
        raise click.ClickException(f"no events for user {user_id!r} in {path!r}")
    signer = None
    if not dry_run:
        key, signer = _keys(root, path, key, signing_key, "the erasure")
    out = sys.stdout.write
    who = terminal_text(user_id)
    if dry_run:
        out(f"dry run: erasing {who} ({mode}) would change {plan.events:,} of their events "
            f"({plan.sessions:,} sessions) in {len(plan.files):,} files:\n")
        for p in plan.files:
            out(f"  {_name(root, p)}\n")
        out("nothing was changed\n")
        return
    _confirm(yes, f"Erase user {who} ({mode}) from {terminal_text(path)}: {plan.events:,} events "
                  f"in {len(plan.files):,} files?")
    known = _integrity.head_of(_integrity.load_manifest(root))[0]  # the erasure's own entry comes after
    with _refusal("erasure"):
        result = erase_subject(str(root), user_id, mode=mode, requested_by=requested_by, hmac_key=key,
                               signing_key=signer)
    out(f"erased {who} ({mode}): {result.events:,} events changed, {len(result.files_rewritten):,} files rewritten\n")
    for f in result.files_rewritten:
        out(f"  {_name(root, f)}\n")
    out(f"pseudonym: {result.pseudonym or 'none (identifiers removed)'}\n")
    out(f"recorded as event {result.audit_event_id} (FORGET)\n")
    out(f"manifest: {_erasure_entry(root, known)}\n")


def _erasure_entry(root: Path, known: int) -> str:
    if not ExportLayout(root).manifest_path.exists():
        return "none (the folder is not sealed)"
    entries = _integrity.load_manifest(root).get("entries", [])
    e = next((e for e in entries if e.get("kind") == "erasure" and e.get("index", -1) >= known), None)
    if e is None:
        return "no erasure entry (no sealed file held the subject)"
    return (f"erasure entry #{e.get('index')} ({len(e.get('replaced', {})):,} files re-hashed, "
            f"{len(e.get('leaves', {})):,} events' original leaves kept), hash {str(e.get('hash'))[:16]}…")


# --------------------------------------------------------------------------- retention


def _unit(root: Path, p: Path, result: RetentionResult) -> tuple[str, str, str, int, str | None, str | None]:
    """(name, kind, action, events, first, last) of a partition folder or a JSON export
    that loses events: the events that leave the disk and their span."""
    if p.is_dir():
        parts = sorted(f for f in p.rglob("*.parquet") if f.is_file())
        n = sum(result.removed.get(f, 0) for f in parts)
        span = (pl.scan_parquet(parts, glob=False).select(pl.col("timestamp").min().alias("a"),
                                                         pl.col("timestamp").max().alias("b")).collect().row(0)
                if n else (None, None))
        first, last = (None if t is None else t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in span)
        return _name(root, p) + "/", "partition", "delete", n, first, last
    assert result.expired_before is not None
    before = to_us(result.expired_before)
    events = orjson.loads(p.read_bytes())["events"]  # retention itself parsed it already
    stamps = [t for t in (parse_timestamp(e["timestamp"]) for e in events) if t < before]
    first, last = (format_us(min(stamps))[:19] + "Z", format_us(max(stamps))[:19] + "Z") if stamps else (None, None)
    action = "rewrite" if p in result.json_rewritten else "delete"
    return _name(root, p), "json", action, result.removed.get(p, len(stamps)), first, last


def _listing(root: Path, result: RetentionResult) -> pl.DataFrame:
    rows = [_unit(root, p, result) for p in [*result.partitions, *result.json_files, *result.json_rewritten]
            if isinstance(p, Path)]  # the command works on local folders
    return pl.DataFrame(rows, schema={"file": pl.String, "kind": pl.String, "action": pl.String,
                                      "events": pl.Int64, "first": pl.String, "last": pl.String}, orient="row")


def _summary(r: RetentionResult) -> str:
    return (f"{len(r.partitions):,} partitions ({r.events:,} events) and {len(r.json_files):,} JSON exports, "
            f"{len(r.json_rewritten):,} JSON exports rewritten ({r.json_events:,} JSON events), {r.bytes:,} bytes")


def _days(value: float) -> int | float:
    if not math.isfinite(value) or value <= 0:
        raise BadInput(f"--keep-days: expected a number of days > 0, got {value:g}")
    if value > _MAX_DAYS:  # a cutoff before year 1 is no date
        raise BadInput(f"--keep-days: expected at most {_MAX_DAYS:,} days, got {value:g}")
    return int(value) if value.is_integer() else value


@click.command(short_help="Remove the events older than N days (partitions and JSON exports).")
@click.argument("path")
@click.option("--keep-days", "keep_days", type=float, required=True, metavar="N",
              help="Keep this many days of events (> 0); older whole UTC days go from both copies.")
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted.")
@click.option("--now", type=TIME, help="Count the days back from this time (ISO 8601; default: now).")
@NAIVE_TIME_OPTION
@click.option("--key", envvar="AXON_AUDIT_HMAC_KEY", help=_KEY_HELP)
@click.option("--signing-key", "signing_key", metavar="FILE", help=_SIGNING_HELP)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@with_storage_options
def retention(path: str, keep_days: float, dry_run: bool, now: datetime | None, key: str | None,
              signing_key: str | None, yes: bool, storage_options: dict[str, Any] | None) -> None:
    """Remove the events whose UTC day ended more than --keep-days ago: their date
    partitions go whole, a JSON export of only such events is deleted and one that
    also holds newer events is rewritten without them; recorded in the folder's
    integrity manifest where there is one (on an s3:// lake, in its global log;
    verify still passes). Lists what goes first; --dry-run also checks the
    manifest. Irreversible.

    \b
    Example:
      axon-audit retention audit_demo --keep-days 365 --dry-run
      axon-audit retention audit_demo --keep-days 365 --key "$KEY" --signing-key log.key --yes
      axon-audit retention s3://audit-lake/prod --keep-days 365 --key "$KEY" --signing-key log.key --yes
    """
    days = _days(keep_days)
    now = now or datetime.now(timezone.utc)  # one time for the listing and the deletion
    lake = _lake(path, storage_options)
    if lake is not None:
        return retention_lake(lake, days, now, key, _signer(signing_key), dry_run, lambda q: _confirm(yes, q),
                              storage_options)
    root = _local(path, "retention")
    signer = None
    if not dry_run:
        key, signer = _keys(root, path, key, signing_key, "retention")
    with _refusal("retention"):
        planned = apply_retention(root, days, now=now, dry_run=True, hmac_key=key)  # the key checks the manifest
    listing = _listing(root, planned)
    verb = "would delete" if dry_run else "to delete"
    console = new_console()
    if listing.height:
        console.print(frame_table(listing, title=f"retention: {verb} (cutoff {planned.cutoff.isoformat()})"))
    total = _summary(planned)
    if not listing.height:
        sys.stdout.write(f"nothing older than {days:g} days (cutoff {planned.cutoff.isoformat()}): "
                         f"nothing to delete; manifest: {planned.manifest}\n")
        return
    if dry_run:
        sys.stdout.write(f"dry run: would delete {total}; nothing was changed; manifest: {planned.manifest}\n")
        return
    _confirm(yes, f"Delete {total} from {terminal_text(path)}?")
    with _refusal("retention"):
        done = apply_retention(root, days, now=now, hmac_key=key, signing_key=signer)
    sys.stdout.write(f"deleted {_summary(done)}; manifest: {done.manifest}\n")


# --------------------------------------------------------------------------- subject access


@click.command("subject-access", short_help="Write every event about a user to a file (GDPR art. 15).")
@click.argument("path")
@click.argument("user_id")
@click.option("--output", required=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="The JSON file to write (the export format); never inside an export folder.")
@click.option("--force", is_flag=True, help="Replace the --output file if it exists.")
@click.option("--format", "-f", "fmt", type=choice(["table", "json"]), default="table", show_default=True,
              help="Format of the summary printed.")
def subject_access(path: str, user_id: str, output: str, force: bool, fmt: str) -> None:
    """Write every event about USER_ID (GDPR art. 15: their own, and others' accesses to
    entries they stored) to --output in the export format, oldest first, and print a
    summary. Exits 1 when the folder holds no event of the user.

    \b
    Example:
      axon-audit subject-access audit_demo user_00042 --output user_00042.json
    """
    if not user_id.strip():
        raise BadInput("USER_ID: expected a user id, got an empty one")
    source = open_source(path)
    if not resolve(output, argument="--output").is_local:
        raise BadInput(f"--output: expected a local file, got {output!r}")
    output_file(output, "--output", source=path, force=force)
    report = subject_access_report(source, user_id)
    own = report.frames["events"]
    if not own.height:
        raise click.ClickException(f"no events for user {user_id!r} in {path!r}")
    written = report.export(output)
    figures = report.frames["summary"].with_columns(pl.col(pl.Datetime).dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"))
    summary = {"user_id": user_id, **figures.row(0, named=True), "output": output, "events_written": written}
    summary["operations"] = dict(own["operation"].cast(pl.String).value_counts(sort=True).iter_rows())
    if fmt.lower() == "json":
        print_json(summary)
        return
    _summary_table(summary, user_id, output)


def _summary_table(summary: dict[str, Any], user_id: str, output: str) -> None:
    table = Table(title=cell(f"subject access: {user_id}"), title_justify="left",
                  caption=cell(f"{summary['events_written']:,} events written to {output}"), caption_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in summary.items():
        if name in ("user_id", "output", "events_written"):
            continue
        if isinstance(value, dict):  # operations: one row each, most frequent first
            for op, n in value.items():
                table.add_row(cell(f"{name} {op}"), cell(n))
        else:
            table.add_row(cell(name), "" if value is None else cell(value))
    new_console().print(table)


PRIVACY_COMMANDS: tuple[click.Command, ...] = (erase, retention, subject_access)
