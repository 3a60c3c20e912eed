"""Tamper evidence: the per-event hash chain and the export folder's manifest
(checked by `_verify.verify`).

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
logger keeps its own manifest, ``manifests/<writer>-<segment>.json``: the same document,
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
import itertools
import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson
import polars as pl
import pyarrow as pa

from axon_audit.exceptions import AuditTypeError
from axon_audit.io.atomic import TEMP_GLOB, atomic_write, temp_pid
from axon_audit.io.layout import ExportLayout
from axon_audit.io.location import Location

__all__ = ["WriterManifest", "append_entries", "build_manifest", "chain_column", "folder_lock"]

GENESIS = "0" * 64
# The names are the layout's; kept here under their old names for the manifest's readers.
MANIFEST_NAME = ExportLayout.MANIFEST_NAME
MANIFESTS_DIR = ExportLayout.MANIFESTS_DIR  # object storage: one manifest per writer
# Entries per writer manifest before it goes on in a new one: a commit rewrites
# its manifest whole, so this bounds the upload (~0.5 KB an entry).
SEGMENT_ENTRIES = 512
LOCK_NAME = ".manifest.lock"
FORMAT = "axon_audit.manifest/1"


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
    for a, b in itertools.pairwise(offs):
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


def head_hmac(key: bytes, count: int, head: str) -> str:
    return hmac.new(key, f"{FORMAT}:{count}:{head}".encode(), hashlib.sha256).hexdigest()


def load_manifest(root: Path) -> dict[str, Any]:
    path = ExportLayout(Path(root)).manifest_path
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


def _writer(body: bytes) -> Callable[[IO[bytes]], None]:
    """A writer callback for `atomic_write` / `Location.put` (which want no result, not write's count)."""

    def write(fh: IO[bytes]) -> None:
        fh.write(body)

    return write


def append_entries(root: Path, manifest: dict[str, Any], new: list[dict[str, Any]], key: bytes | None,
                   written_at: str) -> dict[str, Any]:
    """Link `new` entries onto `manifest` and write it atomically (the commit point
    of an export). The caller holds `folder_lock`."""
    doc = build_manifest(manifest, new, key, written_at)
    body = manifest_bytes(doc)
    atomic_write(ExportLayout(Path(root)).manifest_path, _writer(body))
    return doc


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
