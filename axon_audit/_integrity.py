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
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import os
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
from ._schema import from_arrow
from ._sinks import atomic_write, event_objects

__all__ = ["VerifyResult", "verify"]

GENESIS = "0" * 64
MANIFEST_NAME = "manifest.json"
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
    """The manifest fields of one written file (`df`: its events, with ``chain``)."""
    digest, size = sha256_file(path)
    ts = df["timestamp"]
    return {
        "file": path.relative_to(root).as_posix(),
        "kind": kind,
        "sha256": digest,
        "bytes": size,
        "rows": df.height,
        "first_event_id": df["event_id"][0] if df.height else None,
        "last_event_id": df["event_id"][-1] if df.height else None,
        "first_time": ts.min().strftime("%Y-%m-%dT%H:%M:%S.%fZ") if df.height else None,  # type: ignore[union-attr]
        "last_time": ts.max().strftime("%Y-%m-%dT%H:%M:%S.%fZ") if df.height else None,  # type: ignore[union-attr]
        "chain_start": chain_start,
        "chain_end": df["chain"][-1] if df.height else chain_start,
    }


def append_entries(root: Path, manifest: dict[str, Any], new: list[dict[str, Any]], key: bytes | None,
                   written_at: str) -> dict[str, Any]:
    """Link `new` entries onto `manifest` and write it atomically (the commit point
    of an export). The caller holds `folder_lock`."""
    entries = list(manifest.get("entries", []))
    prev = entries[-1]["hash"] if entries else GENESIS
    for e in new:
        e = dict(e, index=len(entries), written_at=written_at, prev=prev)
        e["hash"] = prev = entry_hash(e)
        entries.append(e)
    doc: dict[str, Any] = {"format": FORMAT, "entries": entries, "head": {"entries": len(entries), "hash": prev}}
    if key is not None:
        doc["hmac"] = head_hmac(key, len(entries), prev)
    body = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
    atomic_write(root / MANIFEST_NAME, lambda fh: fh.write(body))
    return doc


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


def _check_json(path: Path, entry: dict[str, Any], problems: list[str]) -> int:
    """Chain-check a JSON export line by line (one event object per line)."""
    name = entry["file"]
    lines = path.read_bytes().split(b"\n")
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


def _check_parquet(path: Path, entry: dict[str, Any], problems: list[str]) -> int:
    name = entry["file"]
    try:
        table = pq.read_table(path)
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


def _export_files(root: Path) -> set[str]:
    found = {p.name for p in root.glob("audit_*.json")}
    found |= {p.relative_to(root).as_posix() for p in (root / "parquet").rglob("*.parquet")}
    return found


def verify(path: str | Path, *, key: str | bytes | None = None) -> VerifyResult:
    """Check an export folder against its manifest: the manifest's hash chain (and
    its HMAC, given the `key`), each file's SHA-256 and row count, each event's
    chained hash, and that no export file is missing or unlisted.

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
    if not isinstance(path, (str, Path)):
        raise AuditTypeError(f"path must be a str or Path, got {type(path).__name__}")
    root = Path(path)
    keyb = _key_bytes(key)
    result = VerifyResult(ok=False)
    problems = result.problems
    if not root.is_dir():
        problems.append(f"{root}: not a folder")
        return result
    mpath = root / MANIFEST_NAME
    if not mpath.exists():
        problems.append(f"{MANIFEST_NAME}: missing")
        return result
    try:
        manifest = orjson.loads(mpath.read_bytes())
        entries = manifest["entries"]
        assert isinstance(entries, list)
    except Exception as exc:  # noqa: BLE001
        problems.append(f"{MANIFEST_NAME}: unreadable ({exc})")
        return result

    # Files deleted by a recorded retention run: their entries still carry the chain, their files are gone.
    retired = {f for e in entries if isinstance(e, dict) and e.get("kind") == "retention"
               for f in e.get("removed", [])}
    prev = GENESIS
    stream_end: dict[str, str] = {}
    for i, e in enumerate(entries):
        name = e.get("file", f"entry #{i}")
        if e.get("prev") != prev:
            problems.append(f"{MANIFEST_NAME}: entry #{i} ({name}) does not link to the entry before it "
                            "(an entry was deleted, inserted or reordered)")
        if e.get("hash") != entry_hash(e) or e.get("index") != i:
            problems.append(f"{MANIFEST_NAME}: entry #{i} ({name}) was altered (its hash does not match)")
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
        if name in retired:
            continue
        fpath = root / name
        if not fpath.is_file():
            problems.append(f"{name}: missing (deleted or renamed)")
            continue
        result.files_checked += 1
        digest, size = sha256_file(fpath)
        if digest != e.get("sha256"):
            problems.append(f"{name}: content differs from the manifest's SHA-256 (modified or replaced)")
        result.events_checked += (_check_json if kind == "json" else _check_parquet)(fpath, e, problems)

    head = manifest.get("head", {})
    if head.get("entries") != len(entries) or head.get("hash") != prev:
        problems.append(f"{MANIFEST_NAME}: head does not match its entries (manifest truncated or edited)")
    if keyb is not None:
        result.hmac_checked = True
        mac = manifest.get("hmac")
        if mac is None:
            problems.append(f"{MANIFEST_NAME}: no HMAC, but a key was given (manifest rewritten without the key)")
        elif not hmac.compare_digest(mac, head_hmac(keyb, len(entries), prev)):
            problems.append(f"{MANIFEST_NAME}: HMAC of the head does not match (newest files removed, "
                            "manifest rewritten, or wrong key)")

    listed = {e.get("file") for e in entries}
    for extra in sorted(_export_files(root) - listed):
        problems.append(f"{extra}: not listed in the manifest (inserted file)")
    result.ok = not problems
    return result
