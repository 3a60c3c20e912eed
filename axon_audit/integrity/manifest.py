"""The integrity manifest of an export folder: every export file, linked,
with the export log's tree heads (see `integrity.log`).

The folder's ``manifest.json`` lists every export file in write order: its
SHA-256, size, row count, first/last event id and time, and ``leaves``, the log
positions of its events; each commit ends with a ``tree`` entry (the tree head
and, with a signing key, a signed checkpoint). Every entry holds the hash of
the previous one, and its own hash covers all of that. With an HMAC key, an
HMAC signs the head (entry count + last entry hash), so removing the newest
files and their entries is detected too. Writers hold an exclusive lock on
``.manifest.lock`` while they export, so several loggers (or processes) may
share one folder and its one log.

Object storage has no such lock, and writers there never coordinate. So each
logger keeps its own manifest (and its own log), ``manifests/<writer>-<segment>.json``:
the same document, rewritten whole by its one writer at each export commit
(one PUT, so a reader sees the old or the new document). After
`SEGMENT_ENTRIES` entries a writer goes on in a new manifest whose ``follows``
names the previous one, its head and its tree, so each rewrite stays small and
deleting an earlier segment is detected. `verify` checks every manifest it
finds (``manifest.json`` and ``manifests/*.json``), and that each export file
is listed by exactly one of them.

Folders written before the log (format ``axon_audit.manifest/1``) carried a
per-event hash chain instead; `integrity.chain_v1` still checks them, and a
new export into such a folder goes on with the log from leaf 0.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import orjson
import polars as pl

from axon_audit.exceptions import AuditTypeError
from axon_audit.integrity.checkpoint import SigningKey
from axon_audit.integrity.log import tree_entry, tree_of
from axon_audit.integrity.merkle import CompactRange
from axon_audit.io.atomic import TEMP_GLOB, atomic_write, temp_pid
from axon_audit.io.layout import ExportLayout
from axon_audit.io.location import Location
from axon_audit.model.timestamps import format_us, now_us

__all__ = ["WriterManifest", "append_entries", "append_record", "build_manifest", "file_entry", "folder_lock",
           "head_of", "signs_its_heads"]

GENESIS = "0" * 64
# The names are the layout's; kept here under their old names for the manifest's readers.
MANIFEST_NAME = ExportLayout.MANIFEST_NAME
MANIFESTS_DIR = ExportLayout.MANIFESTS_DIR  # object storage: one manifest per writer
# Entries per writer manifest before it goes on in a new one: a commit rewrites
# its manifest whole, so this bounds the upload (~0.5 KB an entry).
SEGMENT_ENTRIES = 512
LOCK_NAME = ".manifest.lock"
FORMAT = "axon_audit.manifest/2"
FORMAT_V1 = "axon_audit.manifest/1"


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
    for tmp in Path(root).rglob(TEMP_GLOB):
        pid = temp_pid(tmp.name)
        if pid is None or pid == os.getpid():
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


def head_hmac(key: bytes, count: int, head: str, fmt: str = FORMAT) -> str:
    """The HMAC of a manifest's head; `fmt` is the document's own format (an old
    folder's head was signed under its format's name)."""
    return hmac.new(key, f"{fmt}:{count}:{head}".encode(), hashlib.sha256).hexdigest()


def load_manifest(root: Path) -> dict[str, Any]:
    path = ExportLayout(Path(root)).manifest_path
    if not path.exists():
        return {"format": FORMAT, "entries": []}
    return orjson.loads(path.read_bytes())


def sha256_file(path: Path) -> tuple[str, int]:
    """(SHA-256 hex, size) of a local file, read in 1 MiB blocks (hashlib releases the GIL on them)."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


def file_entry(name: str, kind: str, df: pl.DataFrame, first_leaf: int, digest: tuple[str, int]) -> dict[str, Any]:
    """The manifest fields of one written file named `name` (relative to the export
    root): its events `df` hold log positions ``[first_leaf, first_leaf + rows)``
    and its content has the (SHA-256 hex, size) `digest`.

    Example:
        >>> from axon_audit.integrity.manifest import file_entry
        >>> from axon_audit.model.schema import normalize_batch
        >>> df = normalize_batch([{"event_id": "evt_1", "timestamp": "2025-01-15T12:00:00Z", "operation": "store"}])
        >>> e = file_entry("audit_2025_01_15_120000.json", "json", df, 7, ("ab" * 32, 310))
        >>> e["leaves"], e["rows"], e["first_time"]
        ([7, 8], 1, '2025-01-15T12:00:00.000000Z')
    """
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
        "leaves": [first_leaf, first_leaf + df.height],
    }


def head_of(manifest: dict[str, Any]) -> tuple[int, str]:
    """(entry count, last entry hash) of a manifest: where the next entry links on."""
    entries = manifest.get("entries", [])
    follows = manifest.get("follows")
    base = follows["entries"] if follows else 0
    prev = entries[-1]["hash"] if entries else (follows["hash"] if follows else GENESIS)
    return base + len(entries), prev


def build_manifest(manifest: dict[str, Any], new: list[dict[str, Any]], key: bytes | None, written_at: str,
                   tree: CompactRange | None = None, signing_key: SigningKey | None = None,
                   origin: str | None = None) -> dict[str, Any]:
    """`manifest` with `new` entries linked on, then (given the log's new `tree`)
    the commit's ``tree`` entry, signed with `signing_key` as `origin`'s checkpoint;
    its head and HMAC renewed. A manifest that ``follows`` another numbers and
    links on from that one's head."""
    entries = list(manifest.get("entries", []))
    follows = manifest.get("follows")
    count, prev = head_of(manifest)
    for e in new:
        e = dict(e, index=count, written_at=written_at, prev=prev)
        e["hash"] = prev = entry_hash(e)
        entries.append(e)
        count += 1
    if tree is not None:
        e = dict(tree_entry(tree, count, prev, signing_key, origin), index=count, written_at=written_at, prev=prev)
        e["hash"] = prev = entry_hash(e)
        entries.append(e)
        count += 1
    doc: dict[str, Any] = {"format": FORMAT}
    if follows:
        doc["follows"] = follows
    doc.update(entries=entries, head={"entries": count, "hash": prev})
    if key is not None:
        doc["hmac"] = head_hmac(key, count, prev)
    return doc


def manifest_bytes(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2)


def _writer(body: bytes) -> Callable[[IO[bytes]], None]:
    """A writer callback for `atomic_write` / `Location.put` (which want no result, not write's count)."""

    def write(fh: IO[bytes]) -> None:
        fh.write(body)

    return write


def append_entries(root: Path, manifest: dict[str, Any], new: list[dict[str, Any]], key: bytes | None,
                   written_at: str, tree: CompactRange | None = None,
                   signing_key: SigningKey | None = None) -> dict[str, Any]:
    """Link `new` entries (and, given the log's new `tree`, the commit's tree
    entry) onto `manifest` and write it atomically: the commit point of an
    export. The caller holds `folder_lock`."""
    doc = build_manifest(manifest, new, key, written_at, tree, signing_key)
    body = manifest_bytes(doc)
    atomic_write(ExportLayout(Path(root)).manifest_path, _writer(body))
    return doc


def signs_its_heads(manifest: dict[str, Any]) -> bool:
    """Whether a manifest's tree heads carry signed checkpoints."""
    return any(e.get("kind") == "tree" and e.get("checkpoint") for e in manifest.get("entries", []))


def append_record(root: Path, manifest: dict[str, Any], entry: dict[str, Any], key: bytes | None,
                  signing_key: SigningKey | None) -> dict[str, Any]:
    """Append a record that changes no event (an erasure or retention entry) and,
    in a folder with a log, re-state its unchanged tree head after it (signed with
    `signing_key`), so the newest checkpoint covers the record too. The caller
    holds `folder_lock`."""
    entries = manifest.get("entries", [])
    tree = tree_of(entries, manifest.get("follows")) if any(e.get("kind") == "tree" for e in entries) else None
    return append_entries(root, manifest, [entry], key, format_us(now_us()), tree, signing_key)


def _writer_id() -> str:
    """A writer's id: sorts by the writer's start, unique across writers."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return f"{stamp}-{os.getpid()}-{secrets.token_hex(6)}"


segment_name = ExportLayout.segment_name


class WriterManifest:
    """One logger's integrity manifest on object storage (see the module docstring),
    ``manifests/<writer>-<segment>.json``.

    Only its own logger writes it (from its one export thread), so it needs no
    lock: the document lives in memory and `commit` uploads it whole.

    Example:
        >>> import tempfile
        >>> from axon_audit.io.location import resolve
        >>> from axon_audit.integrity.manifest import WriterManifest
        >>> m = WriterManifest(resolve(tempfile.mkdtemp()), key=None)
        >>> m.name.startswith("manifests/") and m.name.endswith("-000001.json"), m.tree.size
        (True, 0)
    """

    def __init__(self, root: Location, key: bytes | None, signing_key: SigningKey | None = None) -> None:
        self.root = root
        self.key = key
        self.signing_key = signing_key
        self.writer = _writer_id()
        self.segment = 1
        self.doc: dict[str, Any] = {"format": FORMAT, "entries": []}
        self._pending: tuple[int, dict[str, Any]] = (1, self.doc)
        self.digest: tuple[str, int] = ("", 0)

    @property
    def name(self) -> str:
        return segment_name(self.writer, self.segment)

    @property
    def tree(self) -> CompactRange:
        """This writer's log after its last commit."""
        return tree_of(self.doc["entries"], self.doc.get("follows"))

    @property
    def origin(self) -> str | None:
        """The name of this writer's log in its checkpoints: ``<key name>/<writer>``."""
        return f"{self.signing_key.name}/{self.writer}" if self.signing_key is not None else None

    @property
    def commit_name(self) -> str:
        """The manifest the next `commit` uploads (a new segment when this one is full)."""
        return segment_name(self.writer, self.segment + (len(self.doc["entries"]) >= SEGMENT_ENTRIES))

    def commit(self, new: list[dict[str, Any]], written_at: str, tree: CompactRange) -> None:
        """Upload the manifest with `new` and the log's new `tree` head linked on:
        the commit point of an export. When this upload raises, `landed` tells
        whether it took effect anyway."""
        segment, base = self.segment, self.doc
        if len(base["entries"]) >= SEGMENT_ENTRIES:  # go on in a new manifest that follows this one
            head, now = base["head"], self.tree
            follows = {"manifest": self.name, "entries": head["entries"], "hash": head["hash"],
                       "tree": {"size": now.size, "range": [h.hex() for h in now.hashes]}}
            segment, base = segment + 1, {"format": FORMAT, "follows": follows, "entries": []}
        doc = build_manifest(base, new, self.key, written_at, tree, self.signing_key, self.origin)
        doc["global_log"] = "global/"  # written with the lake's global log (integrity.global_log)
        body = manifest_bytes(doc)
        self.digest = (hashlib.sha256(body).hexdigest(), len(body))  # what the global entry records
        self._pending = (segment, doc)
        # A failed upload of a new segment is retried under the same name: it overwrites what may have landed.
        (self.root / segment_name(self.writer, segment)).put(_writer(body))
        self.segment, self.doc = segment, doc

    def landed(self) -> bool:
        """Whether the last `commit` took effect although its upload raised (a lost
        reply): the stored manifest is the one it uploaded. Adopts it if so.
        Raises `OSError` when the store cannot be read to tell."""
        segment, doc = self._pending
        data = (self.root / segment_name(self.writer, segment)).read_if_exists()  # raises when it cannot tell
        try:
            stored = orjson.loads(data) if data is not None else {}
        except orjson.JSONDecodeError:
            return False
        if stored.get("head") != doc["head"]:
            return False
        self.segment, self.doc = segment, doc
        return True


def listed_files(root: Location, manifest_name: str) -> set[str]:
    """The files a stored manifest lists (empty if it does not exist; raises if it
    cannot be read, so recovery never deletes committed files on a network error)."""
    data = (root / manifest_name).read_if_exists()
    return {e.get("file") for e in orjson.loads(data).get("entries", [])} if data is not None else set()
