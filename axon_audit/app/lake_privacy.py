"""`axon-audit erase` and `axon-audit retention` on an ``s3://`` lake: the same
commands as on a folder (`axon_audit.app.privacy_commands`), through the lake's
maintenance (`axon_audit.compliance.lake_maintenance`), which records each run in
one entry of the lake's global log; the dry runs list objects, not local files."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import click

from axon_audit.app.options import BadInput
from axon_audit.app.render import terminal_text
from axon_audit.compliance.erasure import erase_subject
from axon_audit.compliance.erasure_rewrite import SubjectRewrite
from axon_audit.compliance.lake_maintenance import LakeErasure, lake_subject_events
from axon_audit.compliance.retention import RetentionResult, apply_retention
from axon_audit.exceptions import ArchiveError, AuditValueError
from axon_audit.integrity.checkpoint import SigningKey
from axon_audit.io.location import Location

__all__ = ["erase_lake", "retention_lake"]

_OPTION = {"hmac_key": "--key", "signing_key": "--signing-key"}


@contextmanager
def _refusal(what: str) -> Iterator[None]:
    """A missing key is bad input (exit 2, the option named); any other refusal exits 1, nothing changed."""
    try:
        yield
    except (AuditValueError, ArchiveError) as exc:
        text = str(exc)
        arg = text.partition(":")[0]
        if arg in _OPTION:
            raise BadInput(f"{_OPTION[arg]}:{text.partition(':')[2]}") from None
        raise click.ClickException(f"{what} refused: {text}") from None


def erase_lake(root: Location, user_id: str, mode: str, requested_by: str | None, key: str | None,
               signer: SigningKey | None, dry_run: bool, confirm: Callable[[str], None],
               storage_options: dict[str, Any] | None) -> None:
    """`axon-audit erase s3://…`: plan (every object checked), confirm, erase."""
    out = sys.stdout.write
    who = terminal_text(user_id)
    own = lake_subject_events(root, user_id)
    if not own.height:
        raise click.ClickException(f"no events for user {user_id!r} in {root.uri!r}")
    sessions = sorted(own["session_id"].drop_nulls().unique().to_list())
    with _refusal("erasure"):
        fn = SubjectRewrite(user_id, sessions, mode, "erased_plan" if mode == "pseudonymize" else None)
        names = LakeErasure(root, fn, None, None).check(keys=False)  # the keys: checked by the real run
    if dry_run:
        out(f"dry run: erasing {who} ({mode}) would change {own.height:,} of their events "
            f"({len(sessions):,} sessions) in {len(names):,} objects:\n")
        for name in names:
            out(f"  {terminal_text(name)}\n")
        out("nothing was changed\n")
        return
    confirm(f"Erase user {who} ({mode}) from {terminal_text(root.uri)}: {own.height:,} events "
            f"in {len(names):,} objects?")
    with _refusal("erasure"):
        result = erase_subject(root.uri, user_id, mode=mode, requested_by=requested_by, hmac_key=key,
                               signing_key=signer, storage_options=storage_options)
    out(f"erased {who} ({mode}): {result.events:,} events changed, {len(result.files_rewritten):,} objects "
        "rewritten\n")
    for obj in result.files_rewritten:
        out(f"  {terminal_text(root.relative(obj.path) if isinstance(obj, Location) else str(obj))}\n")
    out(f"pseudonym: {result.pseudonym or 'none (identifiers removed)'}\n")
    out(f"recorded as event {result.audit_event_id} (FORGET), and in the lake's global log "
        "(a maintenance entry; verify lists it)\n")


def _listing(root: Location, r: RetentionResult) -> list[str]:
    rows = [f"  delete {root.relative(p.path)}/" for p in r.partitions if isinstance(p, Location)]
    rows += [f"  delete {root.relative(p.path)} ({r.removed.get(str(p), 0):,} events)"
             for p in r.json_files if isinstance(p, Location)]
    rows += [f"  rewrite {root.relative(p.path)} (without {r.removed.get(str(p), 0):,} events)"
             for p in r.json_rewritten if isinstance(p, Location)]
    return [terminal_text(x) for x in rows]


def _summary(r: RetentionResult) -> str:
    return (f"{len(r.partitions):,} partitions ({r.events:,} events), {len(r.json_files):,} JSON exports, "
            f"{r.json_events:,} JSON events rewritten out of {len(r.json_rewritten):,} exports, {r.bytes:,} bytes")


def retention_lake(root: Location, days: float, now: datetime, key: str | None, signer: SigningKey | None,
                   dry_run: bool, confirm: Callable[[str], None], storage_options: dict[str, Any] | None) -> None:
    """`axon-audit retention s3://…`: plan (every object checked), list, confirm, delete."""
    with _refusal("retention"):
        planned = apply_retention(root.uri, days, now=now, dry_run=True, storage_options=storage_options)
    rows = _listing(root, planned)
    verb = "would delete" if dry_run else "to delete"
    if not rows:
        sys.stdout.write(f"nothing older than {days:g} days (cutoff {planned.cutoff.isoformat()}): "
                         f"nothing to delete; {planned.manifest}\n")
        return
    sys.stdout.write(f"retention: {verb} (cutoff {planned.cutoff.isoformat()}):\n" + "\n".join(rows) + "\n")
    if dry_run:
        sys.stdout.write(f"dry run: would delete {_summary(planned)}; nothing was changed\n")
        return
    confirm(f"Delete {_summary(planned)} from {terminal_text(root.uri)}?")
    with _refusal("retention"):
        done = apply_retention(root.uri, days, now=now, hmac_key=key, signing_key=signer,
                               storage_options=storage_options)
    sys.stdout.write(f"deleted {_summary(done)}; {done.manifest}\n")
