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
so a manifest rolled back to an older signed one is caught.

Old folders (``axon_audit.manifest/1``) are checked by their event chain
(`integrity.chain_v1`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from axon_audit.exceptions import AuditTypeError, IntegrityError
from axon_audit.integrity import chain_v1
from axon_audit.integrity.checkpoint import Checkpoint, VerifierKey, open_checkpoint
from axon_audit.integrity.leaf import canonical_event, event_leaf_hash
from axon_audit.integrity.log import TREE_KIND, manifest_extension, tree_of, verifier_of
from axon_audit.integrity.manifest import GENESIS, _key_bytes, entry_hash, head_hmac
from axon_audit.integrity.merkle import CompactRange
from axon_audit.integrity.replay import Overrides, file_leaves, overrides_of, read_part
from axon_audit.io.layout import ExportLayout
from axon_audit.io.location import UPLOAD_WORKERS, Location, StorageOptions, resolve

__all__ = ["Progress", "VerifyResult", "verify"]

#: Called as events are checked: (events checked so far, events the manifests list).
Progress = Callable[[int, int], None]


@dataclass
class VerifyResult:
    """The outcome of `verify`: `ok`, what was checked, and the problems found
    (the first break first; each names the file and, where known, the event id).
    `checkpoints` holds each log's newest signed checkpoint (by origin), for an
    auditor to keep and pass back later as `verify(..., checkpoint=)`."""

    ok: bool
    files_checked: int = 0
    events_checked: int = 0
    problems: list[str] = field(default_factory=list)
    hmac_checked: bool = False
    signatures_checked: int = 0
    tree_size: int = 0
    checkpoints: dict[str, str] = field(default_factory=dict)
    erasures: list[str] = field(default_factory=list)  # GDPR erasures recorded in the manifest (erase_subject)
    retentions: list[str] = field(default_factory=list)  # retention runs recorded in the manifest (apply_retention)

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        first = f", first problem={self.problems[0]!r}" if self.problems else ""
        return (f"VerifyResult(ok={self.ok}, files_checked={self.files_checked}, "
                f"events_checked={self.events_checked}, problems={len(self.problems)}{first})")


def _export_files(layout: ExportLayout[Location]) -> set[str]:
    """The names of the export files now in the folder: those a manifest must list."""
    return ({d.name for d in layout.json_documents() if layout.is_rotation_document(d.name)}
            | {p.name for p in layout.parts(strict=True)})


def _get(root: Location, name: str) -> bytes | None:
    return (root / name).read_if_exists()


def _fetch(root: Location, names: list[str]) -> Iterator[tuple[str, bytes | None]]:
    """Each named file's bytes (None: missing), in order, one read ahead locally
    (the disk works while this thread hashes) and a few ahead on object storage
    (latency-bound); memory holds at most that many."""
    ahead_n = 1 if root.is_local else UPLOAD_WORKERS
    if len(names) <= 1:
        for name in names:
            yield name, _get(root, name)
        return
    later = iter(names[ahead_n:])
    with ThreadPoolExecutor(max_workers=ahead_n, thread_name_prefix="axon-audit-verify") as pool:
        ahead = deque(pool.submit(_get, root, n) for n in names[:ahead_n])
        for name in names:
            data = ahead.popleft().result()
            following = next(later, None)
            if following is not None:
                ahead.append(pool.submit(_get, root, following))
            yield name, data


def _sha256_of(root: Location, name: str) -> tuple[str, int] | None:
    """(SHA-256 hex, size) of a file, streamed; None when it is missing."""
    data = _get(root, name)
    return None if data is None else (hashlib.sha256(data).hexdigest(), len(data))


def _json_leaves(data: bytes) -> tuple[list[str], list[bytes | None]]:
    """Each event line's id and leaf hash (None: the line does not parse) of a
    JSON document: the slow path, run only for a document whose SHA-256 failed."""
    lines = data.split(b"\n")[1:-2]
    ids, leaves = [], []
    for i, line in enumerate(lines):
        try:
            obj = orjson.loads(line[:-1] if line.endswith(b",") else line)
            obj = {k: obj[k] for k in obj if k != "chain"}
            obj["metadata"] = orjson.loads(obj["metadata"]) if isinstance(obj["metadata"], str) else obj["metadata"]
            ids.append(f"{obj.get('event_id')} (event #{i})")
            canonical_event(obj)
            leaves.append(event_leaf_hash(obj))
        except Exception:  # noqa: BLE001 - a damaged line is the finding
            ids.append(f"#{i} (unparseable)")
            leaves.append(None)
    return ids, leaves


class _Replay:
    """The replay of one manifest's log (see the module docstring)."""

    def __init__(self, root: Location, mname: str, result: VerifyResult, verifier: VerifierKey | None,
                 kept: Checkpoint | None, progress: Progress | None, total: int) -> None:
        self.root, self.mname, self.result = root, mname, result
        self.verifier, self.progress, self.total = verifier, progress, total
        self.kept = kept  # set to None by `run` when it is another log's checkpoint
        self.problems = result.problems
        self.kept_seen = False

    def run(self, entries: list[dict[str, Any]], base: int, tree: CompactRange, ov: Overrides,
            pool: ThreadPoolExecutor) -> None:
        if self.kept is not None and _origin_of(entries) != self.kept.origin:
            self.kept = None
        commit_json: list[tuple[dict[str, Any], Future[tuple[str, int] | None]]] = []
        commit_leaves: list[np.ndarray] = []
        parts = [e for e in entries if e.get("kind") == "parquet" and "leaves" in e and e["file"] not in ov.removed]
        data_of = _fetch(self.root, [e["file"] for e in parts])
        for i, e in enumerate(entries, start=base):
            kind, name = e.get("kind"), e.get("file", f"entry #{i}")
            if kind == "json" and "leaves" in e:
                if name not in ov.removed:
                    commit_json.append((e, pool.submit(_sha256_of, self.root, name)))
            elif kind == "parquet" and "leaves" in e:
                if int(e["leaves"][0]) != tree.size:
                    self.problems.append(f"{name}: its events start at log position {e['leaves'][0]}, "
                                         f"the log before it holds {tree.size} (a commit is missing or reordered)")
                if name in ov.removed:
                    self._retired(e, tree, ov)
                    continue
                _, data = next(data_of)
                leaves = self._part(e, data, ov)
                if leaves is None:  # unreadable: go on with the size the manifest states, the roots will not match
                    leaves = np.zeros((int(e["leaves"][1]) - int(e["leaves"][0]), 32), np.uint8)
                commit_leaves.append(leaves)
                self._extend(tree, leaves)
            elif kind == TREE_KIND:
                self._tree(i, e, tree)
                self._check_json(commit_json, np.concatenate(commit_leaves) if commit_leaves else None, ov)
                commit_json, commit_leaves = [], []
        if self.kept is not None and not self.kept_seen:
            if self.kept.size == 0 or self.kept.size == tree.size and not commit_leaves:
                self._check_kept(tree)
            else:
                self.problems.append(f"{self.mname}: the log holds {tree.size} events, fewer than the "
                                     f"{self.kept.size} of the checkpoint kept (the log was rolled back or truncated)")
        self.result.tree_size += tree.size

    def _part(self, e: dict[str, Any], data: bytes | None, ov: Overrides) -> np.ndarray | None:
        name = e["file"]
        if data is None:
            self.problems.append(f"{name}: missing (deleted or renamed)")
            return None
        self.result.files_checked += 1
        want = ov.replaced.get(name, e)
        if hashlib.sha256(data).hexdigest() != want.get("sha256"):
            self.problems.append(f"{name}: content differs from the manifest's SHA-256 (modified or replaced)")
        try:
            df = read_part(data)
            leaves = file_leaves(df, e, ov)
        except Exception as exc:  # noqa: BLE001 - any read failure is a finding
            self.problems.append(f"{name}: cannot be read as this log's Parquet part ({exc})")
            return None
        self.result.events_checked += df.height
        if self.progress is not None:
            self.progress(self.result.events_checked, self.total)
        return leaves

    def _retired(self, e: dict[str, Any], tree: CompactRange, ov: Overrides) -> None:
        cover = ov.covers.get(e["file"])
        first, end = (int(x) for x in e["leaves"])
        if cover is None:
            self.problems.append(f"{e['file']}: deleted by retention without its log cover; the log cannot be replayed")
            return
        try:
            for height, node in cover:
                tree.push_subtree(node, height)
        except ValueError as exc:
            self.problems.append(f"{e['file']}: its retention cover does not fit the log ({exc})")
        if tree.size != end:
            self.problems.append(f"{e['file']}: its retention cover spans {tree.size - first} events, "
                                 f"its log range {end - first}")

    def _extend(self, tree: CompactRange, leaves: np.ndarray) -> None:
        kept = self.kept
        if kept is not None and tree.size < kept.size <= tree.size + len(leaves):
            cut = kept.size - tree.size
            tree.extend(leaves[:cut])
            self._check_kept(tree)
            leaves = leaves[cut:]
        tree.extend(leaves)

    def _check_kept(self, tree: CompactRange) -> None:
        assert self.kept is not None
        self.kept_seen = True
        if tree.root() != self.kept.root:
            self.problems.append(f"{self.mname}: the log's first {self.kept.size} events do not give the root of "
                                 "the checkpoint kept (events were altered, removed or reordered since)")

    def _tree(self, i: int, e: dict[str, Any], tree: CompactRange) -> None:
        root_hex = tree.root().hex()
        if e.get("size") != tree.size or e.get("root") != root_hex:
            self.problems.append(f"{self.mname}: tree head #{i} (size {e.get('size')}) does not match the events "
                                 f"of its files (replayed: size {tree.size}, root {root_hex[:16]}…): "
                                 "an event was altered, removed, added or reordered")
        if [h.hex() for h in tree.hashes] != e.get("range") and e.get("size") == tree.size:
            self.problems.append(f"{self.mname}: tree head #{i} stores a compact range that is not the log's")
        note = e.get("checkpoint")
        if self.verifier is None:
            if note:
                self.result.checkpoints[Checkpoint.parse(note.split("\n\n")[0].encode() + b"\n").origin] = note
            return
        if not note:
            self.problems.append(f"{self.mname}: tree head #{i} has no signed checkpoint, but a public key was given")
            return
        try:
            cp = open_checkpoint(note.encode(), [self.verifier])
        except IntegrityError as exc:
            self.problems.append(f"{self.mname}: tree head #{i}: checkpoint rejected ({exc})")
            return
        self.result.signatures_checked += 1
        self.result.checkpoints[cp.origin] = note
        if (cp.size, cp.root.hex()) != (e.get("size"), e.get("root")) \
                or cp.extensions != (manifest_extension(i, e.get("prev", "")),):
            self.problems.append(f"{self.mname}: tree head #{i}: its checkpoint signs another head "
                                 "(entry or checkpoint replaced)")

    def _check_json(self, docs: list[tuple[dict[str, Any], Future[tuple[str, int] | None]]],
                    leaves: np.ndarray | None, ov: Overrides) -> None:
        for e, done in docs:
            name, digest = e["file"], done.result()
            if digest is None:
                self.problems.append(f"{name}: missing (deleted or renamed)")
                continue
            self.result.files_checked += 1
            want = ov.replaced.get(name, e)
            if digest == (want.get("sha256"), want.get("bytes")):
                continue
            self.problems.append(f"{name}: content differs from the manifest's SHA-256 (modified or replaced)"
                                 + self._first_altered(name, e, leaves))

    def _first_altered(self, name: str, e: dict[str, Any], leaves: np.ndarray | None) -> str:
        data = _get(self.root, name) or b""
        if not data.startswith(b'{"events": [') or leaves is None:
            return "; not an axon_audit JSON export (layout altered)" if leaves is not None else ""
        ids, found = _json_leaves(data)
        first, end = (int(x) for x in e["leaves"])
        for k, (eid, leaf) in enumerate(zip(ids, found, strict=True)):
            if k >= end - first or leaf != leaves[k].tobytes():
                return f"; first altered event: {eid}"
        if len(ids) != end - first:
            return f"; {len(ids)} events, the log range holds {end - first} (events removed)"
        return "; its events are intact (the document's other text was altered)"


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
            if before is None:
                problems.append(f"{mname}: follows {follows['manifest']}, which is missing "
                                "(an earlier manifest of this writer was deleted)")
            elif before.get("head") != {"entries": base, "hash": prev}:
                problems.append(f"{mname}: follows {follows['manifest']}, whose head does not match "
                                "(that manifest was altered or truncated)")
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
        elif not hmac.compare_digest(mac, head_hmac(keyb, count, prev)):
            problems.append(f"{mname}: HMAC of the head does not match (newest files removed, "
                            "manifest rewritten, or wrong key)")
    return base, start_prev


def _origin_of(entries: list[dict[str, Any]]) -> str | None:
    """The origin a manifest's checkpoints name (None: it has no signed checkpoint)."""
    for e in entries:
        if e.get("kind") == TREE_KIND and e.get("checkpoint"):
            try:
                return Checkpoint.parse(e["checkpoint"].split("\n\n")[0].encode() + b"\n").origin
            except IntegrityError:
                return None
    return None


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
    for (name, data), e in zip(_fetch(root, [e["file"] for e in checks]), checks, strict=True):
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


def _record_history(entries: list[dict[str, Any]], base: int, result: VerifyResult) -> None:
    for i, e in enumerate(entries, start=base):
        if e.get("kind") == "erasure":
            result.erasures.append(f"entry #{i} at {e.get('written_at')}: {e.get('events')} events of a subject "
                                   f"({e.get('mode')}), {len(e.get('replaced', {}))} files rewritten")
        elif e.get("kind") == "retention":
            result.retentions.append(f"entry #{i} at {e.get('written_at')}: {len(e.get('removed', []))} files "
                                     f"({e.get('events')} events) older than {e.get('cutoff')} deleted")


def _listed_rows(docs: dict[str, Any]) -> int:
    """How many events the manifests' Parquet parts list (the progress total)."""
    total = 0
    for doc in docs.values():
        entries = doc.get("entries", []) if isinstance(doc, dict) else []
        removed = overrides_of(entries).removed
        total += sum(int(e.get("rows", 0)) for e in entries
                     if e.get("kind") == "parquet" and e.get("file") not in removed)
    return total


def _verify_manifest(root: Location, mname: str, manifest: dict[str, Any], docs: dict[str, Any],
                     keyb: bytes | None, verifier: VerifierKey | None, kept: Checkpoint | None,
                     progress: Progress | None, total: int, result: VerifyResult,
                     pool: ThreadPoolExecutor) -> set[str]:
    """Check one manifest and the files it lists; return the names it lists."""
    try:
        entries = manifest["entries"]
        assert isinstance(entries, list) and all(isinstance(e, dict) for e in entries)
    except Exception as exc:  # noqa: BLE001
        result.problems.append(f"{mname}: unreadable ({type(exc).__name__}: {exc})")
        return set()
    base, _ = _check_chain(mname, manifest, docs, keyb, result)
    ov = overrides_of(entries)
    _record_history(entries, base, result)
    _check_v1(root, entries, base, ov, result)
    follows = manifest.get("follows")
    try:
        tree = tree_of([], follows)
    except (KeyError, TypeError, ValueError) as exc:
        result.problems.append(f"{mname}: its 'follows' carries no usable tree ({exc})")
        tree = CompactRange()
    _Replay(root, mname, result, verifier, kept, progress, total).run(entries, base, tree, ov, pool)
    return {e.get("file") for e in entries if e.get("kind") in ("json", "parquet")} | ov.removed


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
            or a file holding it); the log must extend it. Needs `public_key`.
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
    kept = _kept_checkpoint(checkpoint, verifier)
    result = VerifyResult(ok=False)
    problems = result.problems
    if not root.is_dir():
        problems.append(f"{root}: not a folder" if root.is_local else f"{root}: no objects under this prefix")
        return result
    layout = ExportLayout(root)
    # Listed before any manifest is read: a file a writer adds meanwhile is in neither, never "inserted".
    exports = _export_files(layout)
    names = layout.manifest_names()
    if not names:
        problems.append(f"{layout.MANIFEST_NAME}: missing" if root.is_local
                        else f"{layout.MANIFEST_NAME} or {layout.MANIFESTS_DIR}/*.json: missing")
        return result
    docs: dict[str, Any] = {}
    for name, data in _fetch(root, names):
        try:
            docs[name] = orjson.loads(data or b"")
            assert isinstance(docs[name], dict)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{name}: unreadable ({exc})")
            docs.pop(name, None)
    total = _listed_rows(docs)
    owner: dict[str, str] = {}
    # One thread hashes JSON documents while this one replays the Parquet parts.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="axon-audit-verify-json") as pool:
        for name, doc in docs.items():
            for f in _verify_manifest(root, name, doc, docs, keyb, verifier, kept, progress, total, result, pool):
                if f in owner:
                    problems.append(f"{f}: listed by both {owner[f]} and {name} (a file was listed twice)")
                owner.setdefault(f, name)
    if kept is not None and kept.origin not in {_origin_of(d.get("entries", [])) for d in docs.values()}:
        problems.append(f"no log here has the origin {kept.origin!r} of the checkpoint kept "
                        "(its manifest was deleted or replaced)")
    for extra in sorted(exports - owner.keys()):
        problems.append(f"{extra}: not listed in the manifest (inserted file)")
    result.ok = not problems
    return result


def _kept_checkpoint(checkpoint: str | bytes | Path | None, verifier: VerifierKey | None) -> Checkpoint | None:
    if checkpoint is None:
        return None
    if verifier is None:
        raise AuditTypeError("checkpoint: checking a kept checkpoint needs the public_key that signed it")
    note = checkpoint_note(checkpoint)
    return open_checkpoint(note, [verifier])


def checkpoint_note(value: str | bytes | Path) -> bytes:
    """A signed note's bytes from its text, bytes or a file holding it."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, Path) or (isinstance(value, str) and "\n" not in value):
        return Path(value).read_bytes()
    if isinstance(value, str):
        return value.encode("utf-8")
    raise AuditTypeError(f"checkpoint must be the note's text, bytes or a file path, got {type(value).__name__}")
