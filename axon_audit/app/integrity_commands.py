"""The `axon-audit` integrity commands: verify (the folder against its manifests and
signed checkpoints), prove (inclusion and consistency bundles), verify-proof (a
bundle, offline) and keygen (an Ed25519 signing key for a logger's `signing_key`).

Exit codes follow the rest of the command line: 0 when the check passes, 1 when
it finds a problem (each printed on its own line), 2 for bad input (one
``axon-audit: error: …`` line naming the argument). Public keys and kept
checkpoints are files: a key is its verifier string (``<name>+<id>+<base64>``,
what `keygen` writes to ``FILE.pub``), a checkpoint its signed note, or for a
folder kept with an HMAC key only, its tree head (`integrity.log.tree_head_text`).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console

from axon_audit.app.options import EXIT_FAILED, BadInput, output_file, with_storage_options
from axon_audit.app.render import terminal_text
from axon_audit.exceptions import AuditError, IntegrityError
from axon_audit.integrity.checkpoint import Checkpoint, SigningKey, VerifierKey, open_checkpoint
from axon_audit.integrity.log import looks_like_tree_head, open_tree_head
from axon_audit.integrity.proofs import (
    CONSISTENCY_FORMAT,
    INCLUSION_FORMAT,
    ProofError,
    prove_consistency,
    verify_consistency,
    verify_inclusion,
)
from axon_audit.integrity.proofs import prove as make_inclusion
from axon_audit.integrity.verify import Progress
from axon_audit.integrity.verify import verify as check
from axon_audit.read.sources import open_source

__all__ = ["INTEGRITY_COMMANDS", "keygen", "prove", "verify", "verify_proof"]

_IN_FILE = click.Path(exists=True, dir_okay=False)


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _read(path: str, option: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise BadInput(f"{option} {path}: cannot be read ({exc.strerror or _reason(exc)})") from None


def _verifier(path: str, option: str = "--public-key") -> VerifierKey:
    """The verifier key in a file, or bad input naming the option (a secret is never echoed)."""
    text = _read(path, option).decode("utf-8", errors="replace").strip()
    if text.startswith("PRIVATE+KEY+"):
        raise BadInput(f"{option} {path}: this is a signing (private) key; give its public key "
                       "(the .pub file keygen wrote beside it)")
    try:
        return VerifierKey.parse(text)
    except IntegrityError as exc:
        raise BadInput(f"{option} {path}: not a verifier key ({_reason(exc)})") from None


def _checkpoint_body(note: bytes, path: str, option: str) -> Checkpoint:
    """The checkpoint a note holds, its signature not checked (bad input when it is none)."""
    try:
        text = note.decode("utf-8")
        return Checkpoint.parse(text.split("\n\n")[0].rstrip("\n").encode("utf-8") + b"\n")  # a tree head too
    except (UnicodeDecodeError, IntegrityError) as exc:
        raise BadInput(f"{option} {path}: not a signed checkpoint ({_reason(exc)})") from None


def _out_folder(path: str, option: str) -> None:
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise BadInput(f"{option}: the folder {str(parent)!r} does not exist")
    if Path(path).is_dir():
        raise BadInput(f"{option}: {path!r} is a folder; give a file name")


def _write_atomically(path: str, data: bytes) -> None:
    """Write a whole file or none (a kept checkpoint replaced by its successor)."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.resolve().parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def _progress_bar(show: bool) -> Iterator[Progress | None]:
    """A rich progress bar on stderr, fed by `verify`'s progress callback; None when hidden."""
    if not show:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("verifying"), BarColumn(), MofNCompleteColumn(), TextColumn("events"),
                   TimeElapsedColumn(), console=Console(stderr=True, highlight=False), transient=True)
    with bar:
        task = bar.add_task("verify", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None)

        yield update


def _kept(path: str, verifier: VerifierKey | None, key: str | None) -> tuple[bytes, Checkpoint | None]:
    note = _read(path, "--checkpoint")
    if note.lstrip().startswith(b"{"):  # a lake's global head (saved by --save-checkpoint): verify checks it
        if verifier is None and key is None:
            raise BadInput(f"--checkpoint {path}: a lake's global head is checked with --public-key or --key")
        return note, None
    if looks_like_tree_head(note):  # an HMAC folder's tree head
        if key is None:
            raise BadInput(f"--checkpoint {path}: a tree head (no signature lines) is checked with --key")
        try:
            return note, open_tree_head(note, key.encode())
        except IntegrityError as exc:
            raise BadInput(f"--checkpoint {path}: not a tree head of this --key ({_reason(exc)})") from None
    if verifier is None:
        raise BadInput("--checkpoint needs --public-key (the key that signed it)")
    _checkpoint_body(note, path, "--checkpoint")
    try:
        return note, open_checkpoint(note, [verifier])
    except IntegrityError as exc:
        raise BadInput(f"--checkpoint {path}: not signed by the --public-key ({_reason(exc)})") from None


@click.command()
@click.argument("path")
@click.option("--key", envvar="AXON_AUDIT_HMAC_KEY", help="HMAC key of the manifest (or $AXON_AUDIT_HMAC_KEY).")
@click.option("--public-key", "public_key", type=_IN_FILE, metavar="FILE",
              help="The log's verifier key (keygen's FILE.pub): every tree head must carry a checkpoint it signed.")
@click.option("--checkpoint", "kept_file", type=_IN_FILE, metavar="FILE",
              help="A checkpoint kept from an earlier run: the log must extend it (a signed one needs "
                   "--public-key, an HMAC folder's tree head --key).")
@click.option("--save-checkpoint", "save_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Write the log's newest signed checkpoint here when intact (with --key only: its tree head), "
                   "to pass as --checkpoint later (may be the --checkpoint file itself).")
@click.option("--no-progress", is_flag=True, help="No progress bar (shown only when stderr is a terminal).")
@with_storage_options
def verify(path: str, key: str | None, public_key: str | None, kept_file: str | None, save_file: str | None,
           no_progress: bool, storage_options: dict[str, Any] | None) -> None:
    """Check the folder's (or s3:// lake's) integrity: every manifest, file hashes,
    and the Merkle log replayed from the Parquet parts (each event checked once),
    with --public-key every signed checkpoint too. Exits 0 when intact, 1 when a
    problem is found (each printed on its own line).

    \b
    Example:
      axon-audit verify audit_demo
      axon-audit verify audit_demo --public-key log.key.pub --save-checkpoint kept.note
      axon-audit verify audit_demo --public-key log.key.pub --checkpoint kept.note --save-checkpoint kept.note
      axon-audit verify s3://audit-lake/prod --key "$KEY"
      axon-audit verify audit_demo --key "$KEY" --checkpoint kept.head --save-checkpoint kept.head
    """
    verifier = _verifier(public_key) if public_key is not None else None
    kept = _kept(kept_file, verifier, key) if kept_file is not None else None
    if save_file is not None:
        if verifier is None and key is None:
            raise BadInput("--save-checkpoint needs --public-key or --key (only a head whose signature or HMAC "
                           "was checked is worth keeping)")
        _out_folder(save_file, "--save-checkpoint")
        output_file(save_file, "--save-checkpoint", source=path, storage_options=storage_options)
    open_source(path, storage_options=storage_options)  # the same clear error as the other commands
    with _progress_bar(not no_progress and sys.stderr.isatty()) as progress:
        outcome = check(path, key=key, public_key=verifier, checkpoint=kept[0] if kept else None,
                        storage_options=storage_options, progress=progress)
    for problem in outcome.problems:
        sys.stdout.write(f"PROBLEM {terminal_text(problem)}\n")  # problems quote ids read from the files
    if kept is not None and kept[1] is None and outcome.ok:
        sys.stdout.write("checkpoint: the lake's global log still holds the global head kept\n")
    elif kept is not None and kept[1] is not None and outcome.ok:
        sys.stdout.write(f"checkpoint: the log extends the one kept ({terminal_text(kept[1].origin)} at "
                         f"{kept[1].size:,} events)\n")
    saving_error = None
    if save_file is not None:
        if not outcome.ok:
            sys.stdout.write("checkpoint: not saved (the log is not intact)\n")
        elif outcome.global_head is not None:  # a lake: its global head covers every writer's log
            _write_atomically(save_file, outcome.global_head.encode("utf-8") + b"\n")
            seq = orjson.loads(outcome.global_head)["seq"]
            sys.stdout.write(f"checkpoint: saved the lake's global head (entry {seq:,}, covering every writer) "
                             f"to {terminal_text(save_file)}\n")
        elif len(heads := outcome.checkpoints if verifier is not None else outcome.tree_heads) != 1:
            saving_error = (f"--save-checkpoint: {path} holds no signed checkpoint "
                            "(written without a signing_key, or before the log was signed)"
                            if not heads else
                            f"--save-checkpoint: {path} holds {len(heads)} logs "
                            f"({terminal_text(', '.join(sorted(heads)))}), one per writer, and it keeps one; "
                            f"keep each with the API: verify(...).{'checkpoints' if verifier else 'tree_heads'}")
        else:
            (origin, note), = heads.items()
            _write_atomically(save_file, note.encode("utf-8"))
            size = _checkpoint_body(note.encode("utf-8"), save_file, "--save-checkpoint").size
            sys.stdout.write(f"checkpoint: saved {terminal_text(origin)} at {size:,} events to "
                             f"{terminal_text(save_file)}\n")
    for note_text in outcome.notes:
        sys.stdout.write(f"note: {note_text}\n")
    for leftover in outcome.leftovers:  # a file name read from the folder: escaped like PROBLEM lines
        sys.stdout.write(f"leftover: {terminal_text(leftover)}\n")
    signed = f", {outcome.signatures_checked:,} signatures checked" if verifier is not None else ""
    sys.stdout.write(f"{'intact' if outcome.ok else 'NOT INTACT'}: {outcome.files_checked:,} files, "
                     f"{outcome.events_checked:,} events checked{signed}\n")
    if not outcome.ok:
        raise click.exceptions.Exit(EXIT_FAILED)
    if saving_error is not None:
        sys.stdout.flush()
        raise BadInput(saving_error)


def _json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2) + b"\n"


@click.command(short_help="An event's inclusion proof, or the log's consistency proof.")
@click.argument("path")
@click.argument("event_id", required=False)
@click.option("--consistency", "old_file", type=_IN_FILE, metavar="CHECKPOINT_FILE",
              help="Instead of an event's inclusion: prove the log extends this kept checkpoint.")
@click.option("--out", type=click.Path(dir_okay=False), metavar="FILE", help="Write the bundle here (default: stdout).")
@with_storage_options
def prove(path: str, event_id: str | None, old_file: str | None, out: str | None,
          storage_options: dict[str, Any] | None) -> None:
    """Write a proof bundle (JSON) that anyone with the log's public key can check
    offline (verify-proof): that event EVENT_ID is in the signed log, or with
    --consistency that the log extends a checkpoint kept earlier. Exits 1 when the
    proof cannot be made (event not exported, log damaged).

    \b
    Example:
      axon-audit prove audit_demo evt_0123… --out event.proof.json
      axon-audit prove audit_demo --consistency kept.note --out log.proof.json
    """
    if (event_id is None) == (old_file is None):
        raise BadInput("prove needs EVENT_ID or --consistency CHECKPOINT_FILE (one of them)")
    if out is not None:
        _out_folder(out, "--out")
        output_file(out, "--out", source=path, storage_options=storage_options)
    open_source(path, storage_options=storage_options)
    try:
        if old_file is not None:
            note = _read(old_file, "--consistency")
            old = _checkpoint_body(note, old_file, "--consistency")
            bundle = prove_consistency(path, note, storage_options=storage_options)
            size = _checkpoint_body(bundle["new"].encode("utf-8"), path, "PATH").size if bundle["new"] else None
            what = (f"the consistency proof of {old.origin} from {old.size:,} to "
                    f"{'?' if size is None else f'{size:,}'} events")
        else:
            assert event_id is not None
            bundle = make_inclusion(path, event_id, storage_options=storage_options)
            what = (f"the inclusion proof of event {event_id} (position {bundle['leaf_index']:,} "
                    f"of {bundle['tree_size']:,})")
    except ProofError as exc:
        raise click.ClickException(f"cannot prove: {_reason(exc)}") from None  # exit 1
    if not bundle.get("checkpoint" if event_id is not None else "new"):
        sys.stderr.write("axon-audit: warning: this log has no signed checkpoint (written without a signing_key): "
                         "verify-proof cannot check this bundle against a public key\n")
    if out is None:
        sys.stdout.buffer.write(_json(bundle))
        sys.stdout.buffer.flush()
    else:
        Path(out).write_bytes(_json(bundle))
        sys.stderr.write(f"wrote {terminal_text(what)} to {terminal_text(out)}\n")


@click.command("verify-proof", short_help="Check a proof bundle offline, with the log's public key.")
@click.argument("bundle_file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--public-key", "public_key", required=True, type=_IN_FILE, metavar="FILE",
              help="The log's verifier key (keygen's FILE.pub).")
def verify_proof(bundle_file: str, public_key: str) -> None:
    """Check a bundle written by prove (inclusion or consistency), offline, with the
    log's public key alone. Exits 0 when it verifies, 1 when it does not (saying why).
    BUNDLE_FILE may be - (stdin).

    \b
    Example:
      axon-audit verify-proof event.proof.json --public-key log.key.pub
      axon-audit prove audit_demo --consistency kept.note | axon-audit verify-proof - --public-key log.key.pub
    """
    verifier = _verifier(public_key)
    try:
        bundle = orjson.loads(_read(bundle_file, "BUNDLE_FILE"))
    except orjson.JSONDecodeError as exc:
        raise BadInput(f"BUNDLE_FILE {bundle_file}: not JSON ({exc})") from None
    kind = bundle.get("format") if isinstance(bundle, dict) else None
    if kind not in (INCLUSION_FORMAT, CONSISTENCY_FORMAT):
        raise BadInput(f"BUNDLE_FILE {bundle_file}: not a proof bundle (its format is {kind!r}; expected "
                       f"{INCLUSION_FORMAT!r} or {CONSISTENCY_FORMAT!r}, as prove writes)")
    signer = f"signed by {verifier.name}+{verifier.key_id.hex()}"
    try:
        if kind == INCLUSION_FORMAT:
            cp = verify_inclusion(bundle, verifier)
            text = (f"event {bundle['event'].get('event_id')} is at position {bundle['leaf_index']:,} of "
                    f"{cp.origin} at {cp.size:,} events ({signer})")
        else:
            cp = verify_consistency(bundle, verifier)
            old = _checkpoint_body(bundle["old"].encode("utf-8"), bundle_file, "BUNDLE_FILE")
            text = f"{cp.origin} at {cp.size:,} events extends its checkpoint at {old.size:,} events ({signer})"
    except (AuditError, KeyError, TypeError, ValueError, AttributeError) as exc:
        reason = _reason(exc) if isinstance(exc, AuditError) else f"malformed bundle ({type(exc).__name__}: {exc})"
        sys.stdout.write(f"NOT VERIFIED: {terminal_text(' '.join(reason.split()))}\n")
        raise click.exceptions.Exit(EXIT_FAILED) from None
    sys.stdout.write(f"verified: {terminal_text(text)}\n")  # the bundle's event id is the sender's text


@click.command(short_help="A new Ed25519 signing key and its public key.")
@click.argument("name")
@click.option("--out", required=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="The signing key file to create (mode 0600); the public key goes to FILE.pub.")
def keygen(name: str, out: str) -> None:
    """Create an Ed25519 signing key for AuditLogger(signing_key=FILE). NAME names the
    log (its checkpoints' origin), e.g. audit.example.com/prod. Prints the public
    key, also written to FILE.pub, for whoever verifies; never overwrites a file.

    \b
    Example:
      axon-audit keygen audit.example.com/prod --out log.key
    """
    _out_folder(out, "--out")
    pub = f"{out}.pub"
    for target in (out, pub):
        if os.path.lexists(target):
            raise BadInput(f"--out: {target} already exists (a log's key is never overwritten: "
                           "losing it loses the log's identity)")
    try:
        key = SigningKey.generate(name)
    except IntegrityError as exc:
        raise BadInput(f"NAME: {_reason(exc)}") from None
    try:
        key.to_file(out)
    except FileExistsError:
        raise BadInput(f"--out: {out} already exists") from None
    try:
        fd = os.open(pub, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(f"{key.verifier()}\n")
    except BaseException:
        Path(out).unlink(missing_ok=True)  # no key without its public half
        raise
    sys.stdout.write(f"{key.verifier()}\n")
    sys.stderr.write(f"wrote the signing key to {out} (mode 0600: keep it secret) and its public key to {pub}\n")


INTEGRITY_COMMANDS: tuple[click.Command, ...] = (keygen, prove, verify, verify_proof)
