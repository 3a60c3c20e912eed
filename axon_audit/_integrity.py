"""Tamper evidence: the per-event hash chain, the export folder's manifest, `verify`.

Per event, ``chain = sha256(previous chain || event text)`` where the event text
is the export format's JSON object of the event (fixed keys only) and the first
previous value of a folder is 64 zeros. It is computed in bulk when a rotated
snapshot is written (never on the logging path) and stored with the event: an
extra ``"chain"`` key after the fixed keys in JSON exports, a ``chain`` column
in Parquet files. Both formats carry the same chain, in event-time order.

The folder's ``manifest.json`` lists every export file in write order: its
SHA-256, size, row count, first/last event id and time, the chain value before
its first and after its last event, and the hash of the previous entry; each
entry's own hash covers all of that. With a key, an HMAC signs the head (entry
count + last entry hash), so removing the newest files and their entries is
detected too. Writers hold an exclusive lock on ``.manifest.lock`` while they
export, so several loggers (or processes) may share one folder.

Object storage has no such lock, and writers there never coordinate. So each
logger keeps its own manifest, ``manifests/<writer>.json``: the same document,
with its own event chain from genesis, rewritten whole by its one writer at
each export commit (one PUT, so a reader sees the old or the new document).
After `SEGMENT_ENTRIES` entries a writer goes on in a new manifest whose
``follows`` names the previous one and its head, so each rewrite stays small
and deleting an earlier segment is detected. `verify` checks every manifest it
finds (``manifest.json`` and ``manifests/*.json``), and that each export file
is listed by exactly one of them.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ._errors import AuditTypeError
from ._fs import UPLOAD_WORKERS, Location, StorageOptions, resolve
from ._schema import from_arrow
from ._sinks import atomic_write, event_objects

__all__ = ["VerifyResult", "verify"]

GENESIS = "0" * 64
MANIFEST_NAME = "manifest.json"
MANIFESTS_DIR = "manifests"  # object storage: one manifest per writer
# Entries per writer manifest before it goes on in a new one: a commit rewrites
# its manifest whole, so this bounds the upload (~0.5 KB an entry).
SEGMENT_ENTRIES = 512
LOCK_NAME = ".manifest.lock"
FORMAT = "axon_audit.manifest/1"
_CHAIN_SUFFIX_LEN = len(',"chain":"') + 64 + len('"}')


# --------------------------------------------------------------------------- the event chain


def _string_buffers(texts: pl.Series) -> tuple[bytes, list[int]]:
    arr = texts.to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.large_string())
    n = len(arr)
    _, offs, data = arr.buffers()
    offsets = np.frombuffer(offs, dtype=np.int64)[arr.offset : arr.offset + n + 1]
    return (data.to_pybytes() if data is not None else b""), offsets.tolist()


def chain_digests(texts: pl.Series, start_hex: str) -> list[bytes]:
    """The chained SHA-256 of each text: ``h_i = sha256(h_{i-1} + text_i)``.

    Sequential by nature (each link needs the previous one), so one hashlib call
    per event; it runs in the export thread, never on the logging path.
    """
    data, offs = _string_buffers(texts)
    sha = hashlib.sha256
    h = bytes.fromhex(start_hex)
    out: list[bytes] = []
    push = out.append
    for a, b in zip(offs, offs[1:]):
        h = sha(h + data[a:b]).digest()
        push(h)
    return out


def chain_column(texts: pl.Series, start_hex: str) -> pl.Series:
    """`chain_digests` as a hex string column named ``chain``."""
    digests = chain_digests(texts, start_hex)
    return pl.Series("chain", digests, dtype=pl.Binary).bin.encode("hex")


# --------------------------------------------------------------------------- the manifest


@contextmanager
def folder_lock(root: Path) -> Iterator[None]:
    """Exclusive lock on the export folder's manifest (across threads and processes)."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def remove_stale_temps(root: Path) -> int:
    """Delete temporary files (``.name.PID-xxxx.tmp``) left by writers that died
    mid-write (their process is gone); return how many. The caller holds `folder_lock`."""
    removed = 0
    for tmp in Path(root).rglob(".*.tmp"):
        try:
            pid = int(tmp.name.rsplit(".", 2)[-2].split("-")[0])
        except (ValueError, IndexError):
            continue
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
            continue  # its writer is alive
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # alive, owned by someone else
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed


def entry_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _key_bytes(key: str | bytes | None) -> bytes | None:
    if key is None:
        return None
    if isinstance(key, str):
        return key.encode()
    if isinstance(key, (bytes, bytearray)):
        return bytes(key)
    raise AuditTypeError(f"hmac_key must be str, bytes or None, got {type(key).__name__}")


def head_hmac(key: bytes, count: int, head: str) -> str:
    return hmac.new(key, f"{FORMAT}:{count}:{head}".encode(), hashlib.sha256).hexdigest()


def load_manifest(root: Path) -> dict[str, Any]:
    path = Path(root) / MANIFEST_NAME
    if not path.exists():
        return {"format": FORMAT, "entries": []}
    return orjson.loads(path.read_bytes())


def chain_end(manifest: dict[str, Any], kind: str = "json") -> str:
    for entry in reversed(manifest.get("entries", [])):
        if entry.get("kind") == kind:
            return entry["chain_end"]
    return GENESIS


def sha256_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


def file_entry(root: Path, path: Path, kind: str, df: pl.DataFrame, chain_start: str) -> dict[str, Any]:
    """The manifest fields of one written local file (`df`: its events, with ``chain``)."""
    return object_entry(path.relative_to(root).as_posix(), kind, df, chain_start, sha256_file(path))


def object_entry(name: str, kind: str, df: pl.DataFrame, chain_start: str, digest: tuple[str, int]) -> dict[str, Any]:
    """The manifest fields of one written file named `name` (relative to the export
    root) whose content has the (SHA-256 hex, size) `digest`."""
    digest_hex, size = digest
    ts = df["timestamp"]
    return {
        "file": name,
        "kind": kind,
        "sha256": digest_hex,
        "bytes": size,
        "rows": df.height,
        "first_event_id": df["event_id"][0] if df.height else None,
        "last_event_id": df["event_id"][-1] if df.height else None,
        "first_time": ts.min().strftime("%Y-%m-%dT%H:%M:%S.%fZ") if df.height else None,  # type: ignore[union-attr]
        "last_time": ts.max().strftime("%Y-%m-%dT%H:%M:%S.%fZ") if df.height else None,  # type: ignore[union-attr]
        "chain_start": chain_start,
        "chain_end": df["chain"][-1] if df.height else chain_start,
    }


def build_manifest(manifest: dict[str, Any], new: list[dict[str, Any]], key: bytes | None,
                   written_at: str) -> dict[str, Any]:
    """`manifest` with `new` entries linked on, its head and HMAC renewed. A
    manifest that ``follows`` another numbers and links on from that one's head."""
    entries = list(manifest.get("entries", []))
    follows = manifest.get("follows")
    base = follows["entries"] if follows else 0
    prev = entries[-1]["hash"] if entries else (follows["hash"] if follows else GENESIS)
    for e in new:
        e = dict(e, index=base + len(entries), written_at=written_at, prev=prev)
        e["hash"] = prev = entry_hash(e)
        entries.append(e)
    count = base + len(entries)
    doc: dict[str, Any] = {"format": FORMAT}
    if follows:
        doc["follows"] = follows
    doc.update(entries=entries, head={"entries": count, "hash": prev})
    if key is not None:
        doc["hmac"] = head_hmac(key, count, prev)
    return doc


def manifest_bytes(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2)


def append_entries(root: Path, manifest: dict[str, Any], new: list[dict[str, Any]], key: bytes | None,
                   written_at: str) -> dict[str, Any]:
    """Link `new` entries onto `manifest` and write it atomically (the commit point
    of an export). The caller holds `folder_lock`."""
    doc = build_manifest(manifest, new, key, written_at)
    body = manifest_bytes(doc)
    atomic_write(root / MANIFEST_NAME, lambda fh: fh.write(body))
    return doc


def _writer_id() -> str:
    """A writer's id: sorts by the writer's start, unique across writers."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return f"{stamp}-{os.getpid()}-{secrets.token_hex(6)}"


def segment_name(writer: str, segment: int) -> str:
    return f"{MANIFESTS_DIR}/{writer}-{segment:06d}.json"


class WriterManifest:
    """One logger's integrity manifest on object storage (see the module docstring),
    ``manifests/<writer>-<segment>.json``.

    Only its own logger writes it (from its one export thread), so it needs no
    lock: the document lives in memory and `commit` uploads it whole.

    Example:
        >>> import tempfile
        >>> from axon_audit._fs import resolve
        >>> from axon_audit._integrity import WriterManifest
        >>> m = WriterManifest(resolve(tempfile.mkdtemp()), key=None)
        >>> m.name.startswith("manifests/") and m.name.endswith("-000001.json"), m.chain_end("json") == "0" * 64
        (True, True)
    """

    def __init__(self, root: Location, key: bytes | None) -> None:
        self.root = root
        self.key = key
        self.writer = _writer_id()
        self.segment = 1
        self.doc: dict[str, Any] = {"format": FORMAT, "entries": []}
        self._pending: tuple[int, dict[str, Any]] = (1, self.doc)

    @property
    def name(self) -> str:
        return segment_name(self.writer, self.segment)

    def chain_end(self, kind: str = "json") -> str:
        follows = self.doc.get("follows")
        start = follows["chain_end"].get(kind, GENESIS) if follows else GENESIS
        for entry in reversed(self.doc["entries"]):
            if entry.get("kind") == kind:
                return entry["chain_end"]
        return start

    @property
    def commit_name(self) -> str:
        """The manifest the next `commit` uploads (a new segment when this one is full)."""
        return segment_name(self.writer, self.segment + (len(self.doc["entries"]) >= SEGMENT_ENTRIES))

    def commit(self, new: list[dict[str, Any]], written_at: str) -> None:
        """Upload the manifest with `new` linked on: the commit point of an export.
        When this upload raises, `landed` tells whether it took effect anyway."""
        segment, base = self.segment, self.doc
        if len(base["entries"]) >= SEGMENT_ENTRIES:  # go on in a new manifest that follows this one
            head = base["head"]
            follows = {"manifest": self.name, "entries": head["entries"], "hash": head["hash"],
                       "chain_end": {k: self.chain_end(k) for k in ("json", "parquet")}}
            segment, base = segment + 1, {"format": FORMAT, "follows": follows, "entries": []}
        doc = build_manifest(base, new, self.key, written_at)
        body = manifest_bytes(doc)
        self._pending = (segment, doc)
        # A failed upload of a new segment is retried under the same name: it overwrites what may have landed.
        (self.root / segment_name(self.writer, segment)).put(lambda fh: fh.write(body))
        self.segment, self.doc = segment, doc

    def landed(self) -> bool:
        """Whether the last `commit` took effect although its upload raised (a lost
        reply): the stored manifest is the one it uploaded. Adopts it if so.
        Raises `OSError` when the store cannot be read to tell."""
        segment, doc = self._pending
        data = read_if_exists(self.root / segment_name(self.writer, segment))  # raises when it cannot tell
        try:
            stored = orjson.loads(data) if data is not None else {}
        except orjson.JSONDecodeError:
            return False
        if stored.get("head") != doc["head"]:
            return False
        self.segment, self.doc = segment, doc
        return True


def read_if_exists(loc: Location) -> bytes | None:
    """The object's bytes, or None if it does not exist. Any other failure (the
    store unreachable, access denied) raises: absence must never be guessed."""
    try:
        return loc.read_bytes()
    except FileNotFoundError:
        return None
    except OSError:
        if not loc.exists():  # some stores report a missing key as a plain I/O error
            return None
        raise


def listed_files(root: Location, manifest_name: str) -> set[str]:
    """The files a stored manifest lists (empty if it does not exist; raises if it
    cannot be read, so recovery never deletes committed files on a network error)."""
    data = read_if_exists(root / manifest_name)
    return {e.get("file") for e in orjson.loads(data).get("entries", [])} if data is not None else set()


# --------------------------------------------------------------------------- verify


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
    for i, (s, c) in enumerate(zip(stored, computed)):
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


def _relative(root: Location, info_path: str) -> str:
    base = root.path.rstrip("/") + "/"
    return info_path[len(base):] if info_path.startswith(base) else info_path


def _export_files(root: Location, listing: list[str]) -> set[str]:
    """The export files among `listing` (names relative to the root)."""
    return {n for n in listing if ("/" not in n and n.startswith("audit_") and n.endswith(".json"))
            or (n.startswith("parquet/") and n.endswith(".parquet"))}


def _fetch(root: Location, names: list[str]) -> Iterator[tuple[str, bytes | None]]:
    """Each named file's bytes (None: missing), in order. On object storage a few
    are fetched ahead side by side (latency-bound); memory holds at most that many."""
    def get(name: str) -> bytes | None:
        return read_if_exists(root / name)

    if root.is_local or len(names) <= 1:
        for name in names:
            yield name, get(name)
        return
    with ThreadPoolExecutor(max_workers=UPLOAD_WORKERS, thread_name_prefix="axon-audit-verify") as pool:
        ahead = [pool.submit(get, n) for n in names[:UPLOAD_WORKERS]]
        for i, name in enumerate(names):
            data = ahead[i].result()
            ahead[i] = None  # type: ignore[call-overload]  # let the bytes go
            if i + UPLOAD_WORKERS < len(names):
                ahead.append(pool.submit(get, names[i + UPLOAD_WORKERS]))
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

    for (name, data), (_, e) in zip(_fetch(root, [n for n, _ in checks]), checks):
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
    listing = [_relative(root, i.path) for i in root.files()]
    names = ([MANIFEST_NAME] if MANIFEST_NAME in listing else []) + sorted(
        n for n in listing if n.startswith(MANIFESTS_DIR + "/") and n.endswith(".json") and n.count("/") == 1)
    if not names:
        problems.append(f"{MANIFEST_NAME}: missing" if root.is_local or not listing
                        else f"{MANIFEST_NAME} or {MANIFESTS_DIR}/*.json: missing")
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
    for extra in sorted(_export_files(root, listing) - owner.keys()):
        problems.append(f"{extra}: not listed in the manifest (inserted file)")
    result.ok = not problems
    return result
