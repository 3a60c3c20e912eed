"""The global log of an object-store lake: one hash-chained sequence across all writers.

Each writer keeps its own manifest (`integrity.manifest.WriterManifest`); after
uploading it, a writer's export commit appends one entry to the lake's global log,
``global/<seq>.json`` (12 digits, from 1), naming the writer, its manifest segment,
that manifest's head and SHA-256, and the hash of the previous global entry. An
entry is created only if its name is free (a conditional PUT, ``If-None-Match: *``;
``O_EXCL`` on a local folder), so two writers never take one number: the loser
reads the newest entry and tries the next number, with bounded, jittered backoff.
With an HMAC key each entry carries an HMAC of its hash. `check_global` (run by
`verify`) checks the chain and that every manifest it names exists and extends
the head named, and that every writer manifest's head is in the log.

Maintenance on the lake (erasure, retention: `compliance.lake_maintenance`)
appends a ``maintenance`` entry instead of touching the writers' manifests (each
is written only by its live writer): ``records`` maps each writer manifest to
one entry of the form a local manifest's erasure or retention entry has
(`integrity.replay`), which `verify` reads as if it were that manifest's own
(`maintenance_records`).

A writer with a `signing_key` signs every entry it appends (Ed25519 over
``axon_audit.global/1:<seq>:<hash>``, in ``signature``); given the public key,
`verify` requires that signature on every entry. The newest entry is the
lake's global head (`VerifyResult.global_head`): an auditor who keeps it and
later passes it back (``verify(checkpoint=...)``) detects the newest entries
deleted together with the output they named (`check_kept_head`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson

from axon_audit.exceptions import ExportError
from axon_audit.integrity.checkpoint import SigningKey, VerifierKey
from axon_audit.io.location import Location

__all__ = ["GLOBAL_DIR", "GlobalLog", "check_global", "check_kept_head", "create_if_absent", "global_name",
           "maintenance_records", "newest_of_writer"]

GLOBAL_DIR = "global"
FORMAT = "axon_audit.global/1"
GENESIS = "0" * 64
TRIES = 12  # conditional creates before a commit gives up (its export is retried later, nothing lost)
BASE_DELAY = 0.005  # seconds; doubled per conflict, jittered, capped at MAX_DELAY
MAX_DELAY = 0.25


def global_name(seq: int) -> str:
    """The object name of global entry `seq`.

    Example:
        >>> from axon_audit.integrity.global_log import global_name
        >>> global_name(3)
        'global/000000000003.json'
    """
    return f"{GLOBAL_DIR}/{seq:012d}.json"


def _entry_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k not in ("hash", "hmac", "signature")}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _mac(key: bytes, seq: int, digest: str) -> str:
    return hmac.new(key, f"{FORMAT}:{seq}:{digest}".encode(), hashlib.sha256).hexdigest()


def _signed_text(seq: int, digest: str) -> bytes:
    return f"{FORMAT}:{seq}:{digest}".encode()


def _s3_client(loc: Location) -> Any:
    # boto3 only here: pyarrow's S3 filesystem has no conditional PUT; loaded on a lake's first global commit.
    import boto3  # type: ignore[import-untyped]  # in-function: see above, kept off `import axon_audit`

    opts = loc.fs.__reduce__()[1][0]  # pyarrow's S3FileSystem pickles with the options it was built from
    endpoint = (f"{opts['scheme']}://{opts['endpoint_override']}" if opts.get("endpoint_override")
                else loc.endpoint_url)
    return boto3.client("s3", endpoint_url=endpoint, region_name=opts.get("region") or None,
                        aws_access_key_id=opts.get("access_key") or None,
                        aws_secret_access_key=opts.get("secret_key") or None,
                        aws_session_token=opts.get("session_token") or None)


def create_if_absent(loc: Location, body: bytes, client: Any = None) -> bool:
    """Create the object `loc` holding `body` only if no object has its name: True
    if created, False if taken. Other failures raise `OSError`.

    Example:
        >>> import tempfile
        >>> from axon_audit.io.location import resolve
        >>> from axon_audit.integrity.global_log import create_if_absent
        >>> loc = resolve(tempfile.mkdtemp()) / "x.json"
        >>> create_if_absent(loc, b"1"), create_if_absent(loc, b"2"), loc.read_bytes()
        (True, False, b'1')
    """
    if loc.is_local:
        path = loc.local_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        return True
    import botocore.exceptions  # type: ignore[import-untyped]  # in-function: with boto3 (_s3_client)

    bucket, _, key = loc.path.partition("/")
    try:
        (client or _s3_client(loc)).put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
            return False
        raise OSError(f"{loc}: conditional PUT failed: {code or exc}") from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise OSError(f"{loc}: conditional PUT failed: {exc}") from exc
    return True


def _listed(root: Location) -> list[tuple[int, tuple[int | None, int | None]]]:
    """The global entries now listed: (seq, (size, mtime in ns) from the listing itself), by seq."""
    out = []
    for info in (root / GLOBAL_DIR).files(recursive=False):
        stem = root.relative(info.path).rpartition("/")[2].removesuffix(".json")
        if stem.isdigit():
            out.append((int(stem), (info.size, info.mtime_ns)))
    return sorted(out)


def _numbers(root: Location) -> list[int]:
    return [seq for seq, _ in _listed(root)]


def newest_of_writer(root: Location, writer: str) -> dict[str, Any] | None:
    """The newest global entry `writer` committed (None: none). Reads entries from
    the newest back to that writer's last one: a recovery looks at a writer that
    committed recently, so this is usually a few reads."""
    for seq in reversed(_numbers(root)):
        entry: dict[str, Any] = orjson.loads((root / global_name(seq)).read_bytes())
        if entry.get("writer") == writer:
            return entry
    return None


# Readers that poll (tail, durable sinks) would fetch every global entry each time: entries are
# created once and never rewritten by a writer, so each is read once per lake. `verify` reads afresh.
# Keyed by the listing's size and mtime too: a lake deleted and written anew at the same place is read again.
_seen_entries: dict[tuple[str, int, Any], dict[str, Any] | None] = {}  # -> maintenance entry, or None
_seen_lock = threading.Lock()


def maintenance_records(root: Location, *, fresh: bool = False) -> dict[str, list[dict[str, Any]]]:
    """The records of the lake's maintenance entries, by the writer manifest each is
    for, oldest first: read by `verify` (and by later maintenance) as that
    manifest's own erasure and retention entries. Unreadable entries are left to
    `check_global` to name. Entries read before are remembered (they are written
    once), unless `fresh` (what `verify` and maintenance itself ask for: a
    rewritten entry must be seen).

    Example:
        >>> import tempfile
        >>> from axon_audit.io.location import resolve
        >>> from axon_audit.integrity.global_log import GlobalLog, maintenance_records
        >>> root = resolve(tempfile.mkdtemp())
        >>> _ = GlobalLog(root, key=None).maintain("retention", {"manifests/w-000001.json": {"kind": "retention"}})
        >>> maintenance_records(root)
        {'manifests/w-000001.json': [{'kind': 'retention', 'global_entry': 'global/000000000001.json'}]}
    """
    out: dict[str, list[dict[str, Any]]] = {}
    for seq, version in _listed(root):
        seen = (str(root), seq, version)
        with _seen_lock:
            known = seen in _seen_entries and not fresh
            entry = _seen_entries.get(seen) if known else None
        if not known:
            try:
                entry = orjson.loads((root / global_name(seq)).read_bytes())
            except Exception:  # noqa: BLE001 - named by check_global
                continue
            if not isinstance(entry, dict) or entry.get("kind") != "maintenance":
                entry = None  # a writer's commit: nothing to keep of it
            with _seen_lock:
                _seen_entries[seen] = entry
        if entry is not None:
            for name, record in (entry.get("records") or {}).items():
                if isinstance(record, dict):
                    out.setdefault(str(name), []).append({**record, "global_entry": global_name(seq)})
    return out


class GlobalLog:
    """A writer's handle on the lake's global log: `commit` appends one entry.

    Counters for `get_stats()`: `commits`, `conflicts` (numbers another writer
    took first), `failures` (commits given up after `TRIES`), `last_error`.

    Example:
        >>> import tempfile
        >>> from axon_audit.io.location import resolve
        >>> from axon_audit.integrity.global_log import GlobalLog
        >>> log = GlobalLog(resolve(tempfile.mkdtemp()), key=None)
        >>> log.commit("w1", "manifests/w1-000001.json", {"entries": 3, "hash": "ab" * 32}, ("cd" * 32, 10))["seq"]
        1
    """

    def __init__(self, root: Location, key: bytes | None, signing_key: SigningKey | None = None) -> None:
        self.root = root
        self.key = key
        self.signing_key = signing_key  # signs every entry this writer appends
        self.commits = self.conflicts = self.failures = 0
        self.last_error: str | None = None
        self._head: tuple[int, str] | None = None  # (seq, hash) of the newest entry this writer knows
        self._client: Any = None

    def _sync(self) -> tuple[int, str]:
        numbers = _numbers(self.root)
        if not numbers:
            return 0, GENESIS
        newest = numbers[-1]
        doc = orjson.loads((self.root / global_name(newest)).read_bytes())
        return newest, str(doc["hash"])

    def commit(self, writer: str, manifest: str, head: dict[str, Any], digest: tuple[str, int]) -> dict[str, Any]:
        """Append the entry naming `manifest` (its `head` and (SHA-256, size) `digest`)
        as `writer`'s commit; returns it. Raises `ExportError` (an `OSError`: the
        export is retried) when another writer keeps taking the next number."""
        return self._append(lambda: {"writer": writer, "manifest": manifest,
                                     "head": {"entries": head["entries"], "hash": head["hash"]},
                                     "sha256": digest[0], "bytes": digest[1]}, self.signing_key)

    def maintain(self, action: str, records: dict[str, dict[str, Any]],
                 signing_key: SigningKey | None = None) -> dict[str, Any]:
        """Append one ``maintenance`` entry (`action`: "erasure" or "retention") with
        its per-manifest `records`, signed with `signing_key` (default this log's) if
        given; returns it.
        Raises `ExportError` when other writers keep taking the next number."""
        return self._append(lambda: {"kind": "maintenance", "action": action, "records": records},
                            signing_key or self.signing_key)

    def _append(self, body_of: Callable[[], dict[str, Any]], signing_key: SigningKey | None) -> dict[str, Any]:
        if not self.root.is_local and self._client is None:
            self._client = _s3_client(self.root)
        delay = BASE_DELAY
        for _ in range(TRIES):
            seq, prev = self._head if self._head is not None else self._sync()
            entry: dict[str, Any] = {"format": FORMAT, "seq": seq + 1, **body_of(), "prev": prev,
                                     "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            entry["hash"] = _entry_hash(entry)
            if self.key is not None:
                entry["hmac"] = _mac(self.key, seq + 1, entry["hash"])
            if signing_key is not None:
                sig = signing_key.sign(_signed_text(seq + 1, entry["hash"]))
                entry["signature"] = {"key": signing_key.name, "key_id": signing_key.key_id.hex(),
                                      "ed25519": base64.b64encode(sig).decode()}
            body = orjson.dumps(entry)
            loc = self.root / global_name(seq + 1)
            try:
                created = create_if_absent(loc, body, self._client)
            except OSError:
                created = False
                if loc.read_if_exists() != body:  # a lost reply: ours may have landed (raises if unreadable)
                    self._head = None
                    raise
                created = True
            if created:
                self._head = (seq + 1, entry["hash"])
                self.commits += 1
                return entry
            self.conflicts += 1
            self._head = None
            time.sleep(random.uniform(0, delay))  # jitter: contenders spread out instead of colliding again
            delay = min(delay * 2, MAX_DELAY)
        self.failures += 1
        self.last_error = f"global log: gave up after {TRIES} conflicting commits"
        raise ExportError(f"{self.root}: {self.last_error} (the export is kept and retried)")


def _extends(doc: dict[str, Any], head: dict[str, Any]) -> bool:
    """Whether manifest `doc` holds the entry `head` names (count, hash)."""
    follows = doc.get("follows") or {}
    base = int(follows.get("entries", 0))
    n = int(head.get("entries", -1))
    entries = doc.get("entries", [])
    if n == base:
        return follows.get("hash", GENESIS) == head.get("hash")
    return base < n <= base + len(entries) and entries[n - 1 - base].get("hash") == head.get("hash")


def _signed_by(e: dict[str, Any], verifier: VerifierKey) -> bool:
    sig = e.get("signature") or {}
    try:
        raw_sig = base64.b64decode(str(sig.get("ed25519", "")), validate=True)
        seq = int(e.get("seq", 0))
    except (ValueError, TypeError):
        return False
    return sig.get("key") == verifier.name and verifier.verify(_signed_text(seq, str(e.get("hash"))), raw_sig)


def check_kept_head(root: Location, note: str, keyb: bytes | None, verifier: VerifierKey | None,
                    problems: list[str]) -> None:
    """Check a global head kept from an earlier `verify` (`VerifyResult.global_head`):
    it must be genuine (its signature, else its HMAC) and still in the log, unchanged;
    else the log was rolled back (its newest entries deleted) or rewritten."""
    try:
        kept = orjson.loads(note)
        seq = int(kept["seq"])
        assert kept.get("format") == FORMAT and kept.get("hash") == _entry_hash(kept)
    except Exception:  # noqa: BLE001 - any malformed head
        problems.append("checkpoint: the kept global head is not an intact global log entry")
        return
    if verifier is not None and not _signed_by(kept, verifier):
        problems.append(f"checkpoint: the kept global head ({global_name(seq)}) is not signed by the public key given")
        return
    if verifier is None and (keyb is None or not hmac.compare_digest(str(kept.get("hmac", "")),
                                                                     _mac(keyb, seq, kept["hash"]))):
        problems.append(f"checkpoint: the kept global head ({global_name(seq)}) carries no valid HMAC of the key "
                        "given (checking it needs the public_key or key of the lake)")
        return
    raw = (root / global_name(seq)).read_if_exists()
    now = orjson.loads(raw) if raw is not None else None
    if now is None:
        problems.append(f"{global_name(seq)}: the kept global head is gone: the global log was rolled back "
                        "(its newest entries deleted, with what they named)")
    elif now.get("hash") != kept["hash"]:
        problems.append(f"{global_name(seq)}: differs from the kept global head (the global log was rewritten)")


def _check_maintenance(name: str, e: dict[str, Any], docs: dict[str, Any], problems: list[str]) -> None:
    """A maintenance entry: each manifest it is for must exist."""
    for m in sorted(e.get("records") or {}):
        if m not in docs:
            problems.append(f"{name}: its {e.get('action')} is for {m}, which is missing")


def check_global(root: Location, docs: dict[str, Any], raw: dict[str, bytes], keyb: bytes | None,
                 problems: list[str], notes: list[str], verifier: VerifierKey | None = None) -> str | None:
    """Check the lake's global log against the writer manifests `docs` (their
    stored bytes `raw`), appending what is wrong to `problems`; with `verifier`,
    every entry must carry its signature. Returns the newest entry's text (the
    lake's global head), None without a global log."""
    numbers = _numbers(root)
    writers = {n for n in docs if n.startswith("manifests/")}
    if not numbers:
        committed = [n for n, d in docs.items() if d.get("global_log")]
        if committed:
            problems.append(f"{GLOBAL_DIR}/: missing, but {', '.join(sorted(committed))} committed to it "
                            "(the global log was deleted)")
        elif writers:
            notes.append("no global log (a lake written before it): each writer manifest is checked on its own, "
                         "so deleting one writer's whole output cannot be detected")
        return None
    hashes: dict[int, str] = {0: GENESIS}
    covered: dict[str, tuple[str, dict[str, Any]]] = {}
    maintained = 0
    newest: dict[str, Any] | None = None
    for want, seq in enumerate(numbers, start=1):
        if seq != want:
            problems.append(f"{global_name(want)}: missing (a global entry was deleted)")
            break
    for seq in numbers:
        name = global_name(seq)
        try:
            e = orjson.loads((root / name).read_bytes())
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{name}: unreadable ({exc})")
            continue
        if e.get("hash") != _entry_hash(e) or e.get("seq") != seq:
            problems.append(f"{name}: altered (its hash does not match)")
        if seq - 1 in hashes and e.get("prev") != hashes[seq - 1]:
            problems.append(f"{name}: does not link to the global entry before it (entries replaced or reordered)")
        if keyb is not None and not hmac.compare_digest(str(e.get("hmac", "")), _mac(keyb, seq, str(e.get("hash")))):
            problems.append(f"{name}: HMAC does not match (forged, or another key's)")
        if verifier is not None and not _signed_by(e, verifier):
            problems.append(f"{name}: not signed by the public key given ({verifier.name}): forged, or written "
                            "without the signing key")
        newest = e
        hashes[seq] = str(e.get("hash"))
        if e.get("kind") == "maintenance":
            maintained += 1
            _check_maintenance(name, e, docs, problems)
            continue
        m = str(e.get("manifest"))
        doc = docs.get(m)
        if doc is None:
            problems.append(f"{m}: named by {name} (writer {e.get('writer')}) but missing: that writer's "
                            "output (or its manifest) was deleted")
            continue
        if not _extends(doc, e.get("head", {})):
            problems.append(f"{m}: does not hold the head {name} names (the manifest was rolled back or rewritten)")
        covered[m] = (name, e)
    for m in sorted(writers):
        doc = docs[m]
        if m not in covered:
            problems.append(f"{m}: in no global entry (inserted, or its writer's global commit was cut off)")
            continue
        name, e = covered[m]
        if doc.get("head") != e.get("head"):
            problems.append(f"{m}: its head ({doc.get('head', {}).get('entries')} entries) is newer than the "
                            f"newest global entry naming it ({name}): the newest global entries were deleted, "
                            "or a commit was cut off")
        elif hashlib.sha256(raw.get(m, b"")).hexdigest() != e.get("sha256"):
            problems.append(f"{m}: differs from the SHA-256 {name} records (altered)")
    notes.append(f"global log: {len(numbers)} entries checked across {len(writers)} writer manifests"
                 + (f", {maintained} of them maintenance (erasure, retention)" if maintained else ""))
    return orjson.dumps(newest).decode() if newest is not None else None
