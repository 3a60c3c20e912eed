"""`verify`: checks an export folder or an object-store lake against its integrity
manifests (see `integrity.manifest` for what they hold) and names every break it finds.

Each manifest's entries must link (and, given the key, its head carry a valid
HMAC); each listed file must exist with the listed SHA-256 and row count, and
its events must re-hash to their stored chain; every export file must be listed
by exactly one manifest. On object storage the files are fetched a few ahead
while the previous ones are hashed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from axon_audit.exceptions import AuditTypeError
from axon_audit.integrity.manifest import (
    GENESIS,
    _key_bytes,
    chain_digests,
    entry_hash,
    head_hmac,
)
from axon_audit.io.json_export import event_objects
from axon_audit.io.layout import ExportLayout
from axon_audit.io.location import UPLOAD_WORKERS, Location, StorageOptions, resolve
from axon_audit.model.schema import from_arrow

__all__ = ["VerifyResult", "verify"]

_CHAIN_SUFFIX_LEN = len(',"chain":"') + 64 + len('"}')


@dataclass
class VerifyResult:
    """The outcome of `verify`: `ok`, what was checked, and the problems found
    (the first break first; each names the file and, where known, the event id)."""

    ok: bool
    files_checked: int = 0
    events_checked: int = 0
    problems: list[str] = field(default_factory=list)
    hmac_checked: bool = False
    erasures: list[str] = field(default_factory=list)  # GDPR erasures recorded in the manifest (erase_subject)
    retentions: list[str] = field(default_factory=list)  # retention runs recorded in the manifest (apply_retention)

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        first = f", first problem={self.problems[0]!r}" if self.problems else ""
        return (f"VerifyResult(ok={self.ok}, files_checked={self.files_checked}, "
                f"events_checked={self.events_checked}, problems={len(self.problems)}{first})")


def _first_mismatch(stored: list[str | None], computed: list[bytes]) -> int | None:
    for i, (s, c) in enumerate(zip(stored, computed, strict=False)):
        if s != c.hex():
            return i
    return None


def _check_json(data: bytes, entry: dict[str, Any], problems: list[str]) -> int:
    """Chain-check a JSON export line by line (one event object per line)."""
    name = entry["file"]
    lines = data.split(b"\n")
    body = [ln[:-1] if ln.endswith(b",") else ln for ln in lines[1:-2]] if len(lines) >= 3 else []
    if len(lines) < 3 or not lines[0].startswith(b'{"events": [') or not lines[-2].startswith(b"]"):
        problems.append(f"{name}: not an axon_audit JSON export (layout altered)")
        return 0
    h = bytes.fromhex(entry["chain_start"])
    sha = hashlib.sha256
    for i, ln in enumerate(body):
        tail = ln[-_CHAIN_SUFFIX_LEN:]
        ok = tail.startswith(b',"chain":"') and tail.endswith(b'"}')
        if ok:
            h = sha(h + ln[:-_CHAIN_SUFFIX_LEN] + b"}").digest()
            ok = tail[10:74] == h.hex().encode()
        if not ok:
            problems.append(f"{name}: event {_event_id_of(ln, i)}: hash chain broken "
                            "(event altered, deleted, inserted or reordered at or before it)")
            return i
    if len(body) != entry["rows"]:
        problems.append(f"{name}: {len(body)} events, the manifest says {entry['rows']} (events removed or added)")
    elif body and h.hex() != entry["chain_end"]:
        problems.append(f"{name}: last event's chain does not match the manifest (tail altered)")
    return len(body)


def _event_id_of(line: bytes, i: int) -> str:
    try:
        return str(orjson.loads(line).get("event_id")) + f" (event #{i})"
    except Exception:  # noqa: BLE001 - the line itself is damaged
        return f"#{i} (unparseable)"


def _check_parquet(data: bytes, entry: dict[str, Any], problems: list[str]) -> int:
    name = entry["file"]
    try:
        table = pq.read_table(pa.BufferReader(data))
        df = from_arrow(table.drop_columns(["chain"]) if "chain" in table.column_names else table)
    except Exception as exc:  # noqa: BLE001 - any read failure is a finding
        problems.append(f"{name}: cannot be read as Parquet ({exc})")
        return 0
    if "chain" not in table.column_names:
        problems.append(f"{name}: has no chain column")
        return 0
    stored = table.column("chain").to_pylist()
    computed = chain_digests(event_objects(df), entry["chain_start"])
    bad = _first_mismatch(stored, computed)
    if bad is not None:
        problems.append(f"{name}: event {df['event_id'][bad]} (row {bad}): hash chain broken "
                        "(event altered, deleted, inserted or reordered at or before it)")
        return bad
    if df.height != entry["rows"]:
        problems.append(f"{name}: {df.height} events, the manifest says {entry['rows']} (events removed or added)")
    elif computed and computed[-1].hex() != entry["chain_end"]:
        problems.append(f"{name}: last event's chain does not match the manifest (tail altered)")
    return df.height


def _export_files(layout: ExportLayout[Location]) -> set[str]:
    """The names of the export files now in the folder: those a manifest must list."""
    return ({d.name for d in layout.json_documents() if layout.is_rotation_document(d.name)}
            | {p.name for p in layout.parts(strict=True)})


def _fetch(root: Location, names: list[str]) -> Iterator[tuple[str, bytes | None]]:
    """Each named file's bytes (None: missing), in order. On object storage a few
    are fetched ahead side by side (latency-bound); memory holds at most that many."""
    def get(name: str) -> bytes | None:
        return (root / name).read_if_exists()

    if root.is_local or len(names) <= 1:
        for name in names:
            yield name, get(name)
        return
    later = iter(names[UPLOAD_WORKERS:])
    with ThreadPoolExecutor(max_workers=UPLOAD_WORKERS, thread_name_prefix="axon-audit-verify") as pool:
        ahead = deque(pool.submit(get, n) for n in names[:UPLOAD_WORKERS])
        for name in names:
            data = ahead.popleft().result()
            following = next(later, None)
            if following is not None:
                ahead.append(pool.submit(get, following))
            yield name, data


def _verify_manifest(root: Location, mname: str, manifest: dict[str, Any], docs: dict[str, Any],
                     keyb: bytes | None, result: VerifyResult) -> set[str]:
    """Check one manifest and the files it lists; return the names it lists."""
    problems = result.problems
    try:
        entries = manifest["entries"]
        assert isinstance(entries, list) and all(isinstance(e, dict) for e in entries)
    except Exception as exc:  # noqa: BLE001
        problems.append(f"{mname}: unreadable ({type(exc).__name__}: {exc})")
        return set()
    prev, base, stream_end = GENESIS, 0, {}
    follows = manifest.get("follows")
    if follows is not None:  # a writer's later segment: it links on from the one it names
        try:
            prev, base, stream_end = follows["hash"], int(follows["entries"]), dict(follows["chain_end"])
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

    # Files deleted by a recorded retention run: their entries still carry the chain, their files are gone.
    retired = {f for e in entries if e.get("kind") == "retention" for f in e.get("removed", [])}
    checks: list[tuple[str, dict[str, Any]]] = []
    for i, e in enumerate(entries, start=base):
        name = e.get("file", f"entry #{i}")
        if e.get("prev") != prev:
            problems.append(f"{mname}: entry #{i} ({name}) does not link to the entry before it "
                            "(an entry was deleted, inserted or reordered)")
        if e.get("hash") != entry_hash(e) or e.get("index") != i:
            problems.append(f"{mname}: entry #{i} ({name}) was altered (its hash does not match)")
        prev = e.get("hash", "")
        kind = e.get("kind")
        if kind == "erasure":  # erase_subject re-chained and re-listed the files it rewrote
            result.erasures.append(f"entry #{i} at {e.get('written_at')}: {e.get('events')} events of a subject "
                                   f"({e.get('mode')}), {len(e.get('replaced', {}))} files rewritten")
            continue
        if kind == "retention":
            result.retentions.append(f"entry #{i} at {e.get('written_at')}: {len(e.get('removed', []))} files "
                                     f"({e.get('events')} events) older than {e.get('cutoff')} deleted")
            continue
        if e.get("chain_start") != stream_end.get(kind, GENESIS):
            problems.append(f"{name}: its first event does not chain to the previous {kind} file "
                            "(a file was deleted, inserted or reordered)")
        stream_end[kind] = e.get("chain_end", "")
        if name not in retired:
            checks.append((name, e))

    for (name, data), (_, e) in zip(_fetch(root, [n for n, _ in checks]), checks, strict=True):
        if data is None:
            problems.append(f"{name}: missing (deleted or renamed)")
            continue
        result.files_checked += 1
        if hashlib.sha256(data).hexdigest() != e.get("sha256"):
            problems.append(f"{name}: content differs from the manifest's SHA-256 (modified or replaced)")
        result.events_checked += (_check_json if e.get("kind") == "json" else _check_parquet)(data, e, problems)

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
    return {e.get("file") for e in entries if e.get("kind") in ("json", "parquet")} | retired


def verify(path: str | Path, *, key: str | bytes | None = None,
           storage_options: StorageOptions | None = None) -> VerifyResult:
    """Check an export folder (local, ``file://`` or ``s3://``) against its
    manifests: each manifest's hash chain (and its HMAC, given the `key`), each
    file's SHA-256 and row count, each event's chained hash, and that every
    export file is listed by exactly one manifest. On object storage every
    writer's manifest (``manifests/*.json``) is checked; `storage_options` as for
    `open_archive`.

    Example:
        >>> import tempfile
        >>> import axon_audit
        >>> folder = tempfile.mkdtemp()
        >>> with axon_audit.AuditLogger(auto_export_path=folder, hmac_key="secret") as audit:
        ...     _ = audit.log("store", user_id="u1")
        >>> result = axon_audit.verify(folder, key="secret")
        >>> result.ok, result.files_checked, result.events_checked
        (True, 2, 2)
        >>> (__import__("pathlib").Path(folder) / "manifest.json").unlink()
        >>> axon_audit.verify(folder).problems[0]
        'manifest.json: missing'
    """
    if not isinstance(path, (str, Path, Location)):
        raise AuditTypeError(f"path must be a str, Path or URI, got {type(path).__name__}")
    root = resolve(path, storage_options=storage_options)
    keyb = _key_bytes(key)
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

    owner: dict[str, str] = {}
    for name, doc in docs.items():
        for f in _verify_manifest(root, name, doc, docs, keyb, result):
            if f in owner:
                problems.append(f"{f}: listed by both {owner[f]} and {name} (a file was listed twice)")
            owner.setdefault(f, name)
    for extra in sorted(exports - owner.keys()):
        problems.append(f"{extra}: not listed in the manifest (inserted file)")
    result.ok = not problems
    return result
