"""`verify`: checks an export folder or an object-store lake against its integrity
manifests (see `integrity.manifest` and `integrity.log`) and names every break.

Each manifest's entries must link (and, given the HMAC key, its head carry a
valid HMAC). Then the log is replayed: each Parquet part must have its listed
SHA-256 and rows, and its events' leaf hashes, appended in log order, must give
the root of every ``tree`` entry (with a public key, every checkpoint must carry
a valid signature over that head). Each event is checked once, from its Parquet
part; the JSON document of the same commit is checked byte for byte against its
SHA-256, and only when that fails are its lines re-hashed, to name the first
altered event. Every export file must be listed by exactly one manifest. Given
a checkpoint an auditor kept, the log must extend it (same root at its size),
so a manifest rolled back to an older signed one is caught (a folder with an
HMAC key only hands out `VerifyResult.tree_heads` to keep instead; without a kept
head, a rollback to an earlier intact state cannot be told). Every commit's files
must be followed by its tree head, and a writer's later manifest segment must
go on from the log of the one it follows, the writer's segment numbered just
before it (a kept checkpoint is checked across all of a writer's segments). With
a public key, a manifest without entries (so without a signed head) is refused.

Old folders (``axon_audit.manifest/1``) are checked by their event chain
(`integrity.chain_v1`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson

from axon_audit.exceptions import AuditTypeError
from axon_audit.integrity import chain_v1
from axon_audit.integrity.checkpoint import Checkpoint, VerifierKey, open_checkpoint
from axon_audit.integrity.global_log import check_global, check_kept_head, maintenance_records
from axon_audit.integrity.log import (
    checkpoint_note,
    looks_like_tree_head,
    open_tree_head,
    tree_head_text,
    tree_of,
    verifier_of,
    writer_log,
)
from axon_audit.integrity.manifest import FORMAT, GENESIS, _key_bytes, entry_hash, head_hmac
from axon_audit.integrity.merkle import CompactRange
from axon_audit.integrity.replay import LogReplay, Overrides, Progress, fetch, log_name, overrides_of
from axon_audit.integrity.result import VerifyResult
from axon_audit.io.layout import ExportLayout
from axon_audit.io.location import Location, StorageOptions, resolve

__all__ = ["Progress", "VerifyResult", "verify"]

_SEGMENT = re.compile(r"(.+)-([0-9]{6})\.json")


def _segment_before(mname: str) -> str | None:
    """The writer segment a manifest may follow: the one numbered just before it (None: none may)."""
    m = _SEGMENT.fullmatch(mname)
    return f"{m[1]}-{int(m[2]) - 1:06d}.json" if m and mname.startswith("manifests/") and int(m[2]) > 1 else None


def _export_files(layout: ExportLayout[Location]) -> set[str]:
    """The names of the export files now in the folder: those a manifest must list."""
    return ({d.name for d in layout.json_documents() if layout.is_rotation_document(d.name)}
            | {p.name for p in layout.parts(strict=True)})


def _same_tree(before: dict[str, Any], tree: Any) -> bool:
    """Whether a segment's ``follows`` tree is the log its predecessor ends with."""
    try:
        end = tree_of(before.get("entries", []), before.get("follows"))
        return isinstance(tree, dict) and tree.get("size") == end.size and \
            tree.get("range") == [h.hex() for h in end.hashes]
    except (KeyError, TypeError, ValueError):
        return False


def _check_chain(mname: str, manifest: dict[str, Any], docs: dict[str, Any], keyb: bytes | None,
                 result: VerifyResult) -> tuple[int, str]:
    """Check a manifest's entry links, head and HMAC; return (first index, hash before it)."""
    problems = result.problems
    entries = manifest["entries"]
    prev, base = GENESIS, 0
    follows = manifest.get("follows")
    if follows is not None:  # a writer's later segment: it links on from the one it names
        try:
            prev, base = follows["hash"], int(follows["entries"])
            before = docs.get(follows["manifest"])
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(f"{mname}: its 'follows' is malformed ({exc})")
            before = None
        else:
            if follows["manifest"] != _segment_before(mname):  # a segment following itself would vouch for itself
                problems.append(f"{mname}: follows {follows['manifest']}, which is not the segment just before it "
                                f"({_segment_before(mname) or 'it is no later segment of a writer'}): forged")
            elif before is None:
                problems.append(f"{mname}: follows {follows['manifest']}, which is missing "
                                "(an earlier manifest of this writer was deleted)")
            elif before.get("head") != {"entries": base, "hash": prev}:
                problems.append(f"{mname}: follows {follows['manifest']}, whose head does not match "
                                "(that manifest was altered or truncated)")
            elif not _same_tree(before, follows.get("tree")):
                problems.append(f"{mname}: follows {follows['manifest']}, but does not go on from its log "
                                "(the tree it starts from is not the one that manifest ends with)")
    start_prev = prev
    for i, e in enumerate(entries, start=base):
        if e.get("prev") != prev:
            problems.append(f"{mname}: entry #{i} ({e.get('file', e.get('kind'))}) does not link to the entry "
                            "before it (an entry was deleted, inserted or reordered)")
        if e.get("hash") != entry_hash(e) or e.get("index") != i:
            problems.append(f"{mname}: entry #{i} ({e.get('file', e.get('kind'))}) was altered "
                            "(its hash does not match)")
        prev = e.get("hash", "")
    head = manifest.get("head", {})
    count = base + len(entries)
    if head.get("entries") != count or head.get("hash") != prev:
        problems.append(f"{mname}: head does not match its entries (manifest truncated or edited)")
    if keyb is not None:
        result.hmac_checked = True
        mac = manifest.get("hmac")
        if mac is None:
            problems.append(f"{mname}: no HMAC, but a key was given (manifest rewritten without the key)")
        elif not hmac.compare_digest(mac, head_hmac(keyb, count, prev, str(manifest.get("format", FORMAT)))):
            problems.append(f"{mname}: HMAC of the head does not match (newest files removed, "
                            "manifest rewritten, or wrong key)")
    return base, start_prev


def _check_v1(root: Location, entries: list[dict[str, Any]], base: int, ov: Overrides,
              result: VerifyResult) -> None:
    """The old chain's files of a manifest (entries with ``chain_start``)."""
    stream_end: dict[str, str] = {}
    checks = []
    for i, e in enumerate(entries, start=base):
        kind = e.get("kind")
        if kind not in ("json", "parquet") or not chain_v1.is_v1_entry(e):
            continue
        name = e.get("file", f"entry #{i}")
        if e.get("chain_start") != stream_end.get(kind, GENESIS):
            result.problems.append(f"{name}: its first event does not chain to the previous {kind} file "
                                   "(a file was deleted, inserted or reordered)")
        stream_end[kind] = e.get("chain_end", "")
        if name not in ov.removed:
            checks.append(e)
    for (name, data), e in zip(fetch(root, [e["file"] for e in checks]), checks, strict=True):
        if data is None:
            result.problems.append(f"{name}: missing (deleted or renamed)")
            continue
        result.files_checked += 1
        if hashlib.sha256(data).hexdigest() != e.get("sha256"):
            result.problems.append(f"{name}: content differs from the manifest's SHA-256 (modified or replaced)")
        if e["kind"] == "json":
            chain_v1.check_json(data, e, result.problems)  # the same events as the Parquet parts: counted once
        else:
            result.events_checked += chain_v1.check_parquet(data, e, result.problems)


def _record_history(entries: list[dict[str, Any]], base: int, result: VerifyResult, where: str = "") -> None:
    for i, e in enumerate(entries, start=base):
        at = f"{e['global_entry']} ({where})" if "global_entry" in e else f"entry #{i}"
        if e.get("kind") == "erasure":
            result.erasures.append(f"{at} at {e.get('written_at')}: {e.get('events')} events of a subject "
                                   f"({e.get('mode')}), {len(e.get('replaced', {}))} files rewritten")
        elif e.get("kind") == "retention":
            result.retentions.append(f"{at} at {e.get('written_at')}: {len(e.get('removed', []))} files "
                                     f"({e.get('events')} events) older than {e.get('cutoff')} deleted"
                                     + (f", {len(e['replaced'])} JSON copies rewritten without "
                                        f"{e.get('json_events')} events" if e.get("replaced") else ""))


def _listed_rows(docs: dict[str, Any], extra: dict[str, list[dict[str, Any]]]) -> int:
    """How many events the manifests' Parquet parts list (the progress total)."""
    total = 0
    for name, doc in docs.items():
        entries = doc.get("entries", []) if isinstance(doc, dict) else []
        removed = overrides_of([*entries, *extra.get(name, [])]).removed
        total += sum(int(e.get("rows", 0)) for e in entries
                     if e.get("kind") == "parquet" and e.get("file") not in removed)
    return total


def _verify_manifest(root: Location, mname: str, manifest: dict[str, Any], docs: dict[str, Any],
                     keyb: bytes | None, verifier: VerifierKey | None, kept: Checkpoint | None,
                     progress: Progress | None, total: int, result: VerifyResult,
                     pool: ThreadPoolExecutor, extra: list[dict[str, Any]]) -> tuple[set[str], LogReplay | None]:
    """Check one manifest and the files it lists (`extra`: the lake's maintenance
    records for it, read as its own later entries); return the names it lists, and its replay."""
    try:
        entries = manifest["entries"]
        assert isinstance(entries, list) and all(isinstance(e, dict) for e in entries)
    except Exception as exc:  # noqa: BLE001
        result.problems.append(f"{mname}: unreadable ({type(exc).__name__}: {exc})")
        return set(), None
    base, _ = _check_chain(mname, manifest, docs, keyb, result)
    if verifier is not None and not entries:
        result.problems.append(f"{mname}: no entries, so no signed checkpoint covers it, but a public key was given "
                               "(the log was emptied or its manifest forged)")
    ov = overrides_of([*entries, *extra])
    _record_history(entries, base, result)
    _record_history(extra, 0, result, mname)
    _check_v1(root, entries, base, ov, result)
    follows = manifest.get("follows")
    try:
        tree = tree_of([], follows)
    except (KeyError, TypeError, ValueError) as exc:
        result.problems.append(f"{mname}: its 'follows' carries no usable tree ({exc})")
        tree = CompactRange()
    replay = LogReplay(root, mname, result, verifier, kept, progress, total)
    replay.run(entries, base, tree, ov, pool)
    return {e.get("file") for e in entries if e.get("kind") in ("json", "parquet")} | ov.removed, replay


def verify(path: str | Path, *, key: str | bytes | None = None, public_key: Any = None,
           checkpoint: str | bytes | Path | None = None, storage_options: StorageOptions | None = None,
           progress: Progress | None = None) -> VerifyResult:
    """Check an export folder (local, ``file://`` or ``s3://``) against its
    manifests and replay its log (see the module docstring).

    Parameters:
        path: the export folder or prefix.
        key: the HMAC key the logger was given (`hmac_key`); checks each head's HMAC.
        public_key: the verifier key of the logger's `signing_key` (a
            `VerifierKey`, its text or a file); every tree head must then carry a
            checkpoint it signed.
        checkpoint: a signed checkpoint kept from an earlier run (its note text,
            or a file holding it; needs `public_key`), or a tree head kept from
            `VerifyResult.tree_heads` (needs `key`); the log must extend it.
        storage_options: as for `open_archive`.
        progress: called with (events checked, events listed) after each part.

    Example:
        >>> import tempfile
        >>> import axon_audit
        >>> from axon_audit.integrity.checkpoint import SigningKey
        >>> folder, key = tempfile.mkdtemp(), SigningKey.generate("audit.example/trail")
        >>> with axon_audit.AuditLogger(auto_export_path=folder, signing_key=key) as audit:
        ...     _ = audit.log("store", user_id="u1")
        >>> result = axon_audit.verify(folder, public_key=key.verifier())
        >>> result.ok, result.files_checked, result.events_checked, result.signatures_checked
        (True, 2, 1, 1)
        >>> (__import__("pathlib").Path(folder) / "manifest.json").unlink()
        >>> axon_audit.verify(folder).problems[0]
        'manifest.json: missing'
    """
    if not isinstance(path, (str, Path, Location)):
        raise AuditTypeError(f"path must be a str, Path or URI, got {type(path).__name__}")
    root = resolve(path, storage_options=storage_options)
    keyb = _key_bytes(key)
    verifier = verifier_of(public_key) if public_key is not None else None
    kept_global = _kept_global(checkpoint)
    kept = _kept_checkpoint(checkpoint, verifier, keyb) if kept_global is None else None
    result = VerifyResult(ok=False)
    problems = result.problems
    if not root.is_dir():
        problems.append(f"{root}: not a folder" if root.is_local else f"{root}: no objects under this prefix")
        return result
    layout = ExportLayout(root)
    # Listed before any manifest is read: a file a writer adds meanwhile is in neither, never "inserted".
    # An export records its intent before its first file: read before the listing (and after the manifests).
    intended = {f for files in layout.intents().values() for f in files}
    exports = _export_files(layout)
    names = layout.manifest_names()
    if not names:
        problems.append(f"{layout.MANIFEST_NAME}: missing" if root.is_local
                        else f"{layout.MANIFEST_NAME} or {layout.MANIFESTS_DIR}/*.json: missing")
        return result
    docs: dict[str, Any] = {}
    raw: dict[str, bytes] = {}
    for name, data in fetch(root, names):
        raw[name] = data or b""
        try:
            docs[name] = orjson.loads(data or b"")
            assert isinstance(docs[name], dict)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{name}: unreadable ({exc})")
            docs.pop(name, None)
    lake = not root.is_local or any(n.startswith(layout.MANIFESTS_DIR + "/") for n in docs)
    extra = maintenance_records(root, fresh=True) if lake else {}  # erasure and retention in the global log
    total = _listed_rows(docs, extra)
    owner: dict[str, str] = {}
    replays: list[LogReplay] = []
    # One thread hashes JSON documents while this one replays the Parquet parts.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="axon-audit-verify-json") as pool:
        for name, doc in docs.items():
            listed, replay = _verify_manifest(root, name, doc, docs, keyb, verifier, kept, progress, total, result,
                                              pool, extra.get(name, []))
            replays += [replay] if replay is not None else []
            for f in listed:
                if f in owner:
                    problems.append(f"{f}: listed by both {owner[f]} and {name} (a file was listed twice)")
                owner.setdefault(f, name)
    if lake:
        result.global_head = check_global(root, docs, raw, keyb, problems, result.notes, verifier)  # across writers
    if kept_global is not None:
        check_kept_head(root, kept_global, keyb, verifier, problems)
    _check_kept_met(kept, replays, problems)
    if kept is not None and kept.origin not in {log_name(kept, r.mname, docs[r.mname]["entries"]) for r in replays}:
        problems.append(f"no log here has the origin {kept.origin!r} of the checkpoint kept "
                        "(its manifest was deleted or replaced)")
    if keyb is not None:  # each log's head, newest segment last: what an HMAC-only folder's auditor keeps
        for r in sorted(replays, key=lambda r: r.size):
            result.tree_heads[writer_log(r.mname)] = tree_head_text(writer_log(r.mname), r.tree, keyb)
    if kept is None and result.tree_size == 0:
        result.notes.append("the log holds no events; that it was not emptied or rolled back can only be told "
                            "against a checkpoint or tree head kept earlier (checkpoint=)")
    unlisted = sorted(exports - owner.keys())
    intended |= {f for files in layout.intents().values() for f in files} if unlisted else set()
    for stray in unlisted:
        if stray in intended:
            result.leftovers.append(f"{stray}: uncommitted leftover of an interrupted export (named in its intent, "
                                    "listed by no manifest: not evidence; the next logger on the folder removes it)")
        else:
            problems.append(f"{stray}: not listed in the manifest (inserted file)")
    result.ok = not problems
    return result


def _check_kept_met(kept: Checkpoint | None, replays: list[LogReplay], problems: list[str]) -> None:
    """The kept checkpoint's size must be met in its log, which may span a writer's
    several manifests (each segment goes on from the one it follows)."""
    mine = [r for r in replays if kept is not None and r.kept is not None]  # the replays of its origin
    if kept is None or not mine or any(r.kept_seen for r in mine):
        return
    newest = max(mine, key=lambda r: r.size)
    if newest.size < kept.size:
        problems.append(f"{newest.mname}: the log holds {newest.size} events, fewer than the {kept.size} of the "
                        "checkpoint kept (the log was rolled back or truncated)")
    else:
        problems.append(f"{newest.mname}: the log's first {kept.size} events (the checkpoint kept) cannot be "
                        "replayed to check its root (their Parquet parts were deleted)")


def _kept_global(checkpoint: str | bytes | Path | None) -> str | None:
    """The text of a kept global head (a lake's global log entry, `VerifyResult.global_head`), else None."""
    if checkpoint is None:
        return None
    if isinstance(checkpoint, str) and checkpoint.lstrip().startswith("{"):  # the text itself: one JSON line
        text = checkpoint
    else:
        try:
            text = checkpoint_note(checkpoint).decode("utf-8", "replace")
        except (OSError, AuditTypeError):
            return None  # `_kept_checkpoint` names the problem
    return text if text.lstrip().startswith("{") and '"axon_audit.global/' in text else None


def _kept_checkpoint(checkpoint: str | bytes | Path | None, verifier: VerifierKey | None,
                     keyb: bytes | None) -> Checkpoint | None:
    """The kept head: a signed checkpoint (its signature checked) or an HMAC tree head (its HMAC checked)."""
    if checkpoint is None:
        return None
    note = checkpoint_note(checkpoint)
    if looks_like_tree_head(note):
        return open_tree_head(note, keyb)
    if verifier is None:
        raise AuditTypeError("checkpoint: checking a kept checkpoint needs the public_key that signed it")
    return open_checkpoint(note, [verifier])
