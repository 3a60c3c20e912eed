"""The export log: a Merkle tree over every exported event, recorded in the
integrity manifest as tree heads, optionally as Ed25519-signed checkpoints.

Each export commit appends to the manifest (``axon_audit.manifest/2``, see
`integrity.manifest`) one entry per file it wrote, then one ``tree`` entry:

* a file entry holds ``leaves: [first, end)``, the log positions of its events
  (the JSON document covers the whole commit; each Parquet part its UTC-day
  slice, in order), with its SHA-256, size and row count;
* the ``tree`` entry holds the tree head after the commit, ``size`` and
  ``root`` (hex), the ``range`` (the compact range: roots of the perfect
  subtrees over ``[0, size)``, largest first, so the next writer extends the
  tree without reading any leaf), and with a signing key the ``checkpoint``:
  a C2SP signed note (`integrity.checkpoint`) of the body

      <origin>
      <size>
      <root, base64>
      axon_audit.manifest <entries> <hash>

  whose extension line is the manifest's head just before this tree entry
  (entry count and last entry hash), so the signature also covers every file's
  SHA-256 listed so far.

Leaf i is the RFC 6962 leaf hash of the i-th exported event's canonical
encoding (`integrity.leaf`); events enter the log in each commit's order, which
is the JSON document's order and the Parquet parts' row order. Nothing per event
is stored for integrity: `verify` recomputes the leaves from the Parquet parts.
The origin is the signing key's name for a folder, ``<key name>/<writer>`` for
one writer's manifest on object storage (each writer keeps its own log there).

A folder kept with an HMAC key only has no signed checkpoints to keep; `verify`
hands out its tree head instead (`tree_head_text`): the checkpoint's three
lines naming the log by its manifest (``manifest.json``, or
``manifests/<writer>`` on object storage), then ``axon_audit.hmac <hex>``, an
HMAC with the folder's key over those lines. Whoever holds the key can forge
one, so it proves freshness to the key's holders only (the auditor who kept it
and checks it with the key); a signed checkpoint proves it to anyone.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from axon_audit.exceptions import AuditTypeError, AuditValueError, IntegrityError
from axon_audit.integrity.checkpoint import Checkpoint, CheckpointError, SigningKey, VerifierKey, sign_checkpoint
from axon_audit.integrity.merkle import CompactRange

__all__ = ["TREE_KIND", "checkpoint_note", "checkpoint_of", "is_tree_head", "looks_like_tree_head",
           "manifest_extension", "open_tree_head", "signing_key_of", "tree_entry", "tree_head_text", "tree_of",
           "verifier_of", "writer_log"]

TREE_KIND = "tree"
_EXTENSION = "axon_audit.manifest"
_HMAC_EXTENSION = "axon_audit.hmac"
_TREE_HEAD_DOMAIN = b"axon_audit.tree_head/1\n"  # apart from the manifest head's HMAC (`manifest.head_hmac`)


def signing_key_of(value: Any, what: str = "signing_key") -> SigningKey | None:
    """A `SigningKey` from a key, its note text (``PRIVATE+KEY+…``) or a key file's path.

    Example:
        >>> from axon_audit.integrity.checkpoint import SigningKey
        >>> from axon_audit.integrity.log import signing_key_of
        >>> key = SigningKey("audit.example/log", bytes(32))
        >>> signing_key_of(key.to_string()).verifier() == key.verifier(), signing_key_of(None)
        (True, None)
    """
    if value is None or isinstance(value, SigningKey):
        return value
    if isinstance(value, str) and value.startswith("PRIVATE+KEY+"):
        return SigningKey.parse(value)
    if isinstance(value, (str, os.PathLike)):
        if not Path(value).is_file():
            raise AuditValueError(f"{what}: expected a SigningKey, its text or a key file, "
                                  f"and {os.fspath(value)!r} is not a file")
        return SigningKey.from_file(value)
    raise AuditTypeError(f"{what} must be a SigningKey, its text or a key file path, got {type(value).__name__}")


def verifier_of(value: Any, what: str = "public_key") -> VerifierKey:
    """A `VerifierKey` from a key, its text (``<name>+<id>+<base64>``), a key file's
    path, or a `SigningKey` (its public half)."""
    if isinstance(value, VerifierKey):
        return value
    if isinstance(value, SigningKey):
        return value.verifier()
    if isinstance(value, str) and "+" in value and not Path(value).is_file():
        return VerifierKey.parse(value.strip())
    if isinstance(value, (str, os.PathLike)):
        if not Path(value).is_file():
            raise AuditValueError(f"{what}: expected a verifier key, its text or a key file, "
                                  f"and {os.fspath(value)!r} is not a file")
        return VerifierKey.from_file(value)
    raise AuditTypeError(f"{what} must be a VerifierKey, its text or a key file path, got {type(value).__name__}")


def tree_of(entries: list[dict[str, Any]], follows: Mapping[str, Any] | None = None) -> CompactRange:
    """The log's state after the newest ``tree`` entry (or the one a later
    segment's ``follows`` carries); the empty tree when there is none.

    Example:
        >>> from axon_audit.integrity.log import tree_of
        >>> tree_of([]).size
        0
    """
    for entry in reversed(entries):
        if entry.get("kind") == TREE_KIND:
            return CompactRange(int(entry["size"]), [bytes.fromhex(h) for h in entry["range"]])
    if follows and follows.get("tree"):
        tree = follows["tree"]
        return CompactRange(int(tree["size"]), [bytes.fromhex(h) for h in tree["range"]])
    return CompactRange()


def manifest_extension(count: int, head: str) -> str:
    """The checkpoint's extension line naming the manifest head it covers."""
    return f"{_EXTENSION} {count} {head}"


def checkpoint_of(origin: str, tree: CompactRange, count: int, head: str) -> Checkpoint:
    """The checkpoint of the tree head `tree`, covering the manifest up to entry
    `count` (whose hash is `head`)."""
    return Checkpoint(origin, tree.size, tree.root(), (manifest_extension(count, head),))


def tree_entry(tree: CompactRange, count: int, head: str, key: SigningKey | None,
               origin: str | None) -> dict[str, Any]:
    """The ``tree`` entry of a commit that left the log at `tree`, the manifest's
    head before it being entry `count` with hash `head`.

    Example:
        >>> from axon_audit.integrity.checkpoint import SigningKey
        >>> from axon_audit.integrity.log import tree_entry
        >>> from axon_audit.integrity.merkle import CompactRange, leaf_hash
        >>> tree = CompactRange(); tree.extend([leaf_hash(b"a"), leaf_hash(b"b")])
        >>> e = tree_entry(tree, 3, "ab" * 32, SigningKey("audit.example/log", bytes(32)), None)
        >>> e["size"], len(e["range"]), e["checkpoint"].splitlines()[3]
        (2, 1, 'axon_audit.manifest 3 abababababababababababababababababababababababababababababababab')
    """
    entry: dict[str, Any] = {"kind": TREE_KIND, "size": tree.size, "root": tree.root().hex(),
                             "range": [h.hex() for h in tree.hashes]}
    if key is not None:
        note = sign_checkpoint(checkpoint_of(origin or key.name, tree, count, head), key)
        entry["checkpoint"] = note.decode("utf-8")
    return entry


def checkpoint_note(value: str | bytes | Path) -> bytes:
    """A signed note's bytes from its text, bytes or a file holding it."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, Path) or (isinstance(value, str) and "\n" not in value):
        return Path(value).read_bytes()
    if isinstance(value, str):
        return value.encode("utf-8")
    raise AuditTypeError(f"checkpoint must be the note's text, bytes or a file path, got {type(value).__name__}")


def writer_log(manifest_name: str) -> str:
    """The name of the log a manifest holds, for its tree heads: the manifest's, without a segment number.

    Example:
        >>> from axon_audit.integrity.log import writer_log
        >>> writer_log("manifest.json"), writer_log("manifests/20260101T000000-7-ab12-000003.json")
        ('manifest.json', 'manifests/20260101T000000-7-ab12')
    """
    return re.sub(r"-[0-9]{6}\.json$", "", manifest_name)


def _tree_head_mac(key: bytes, head: Checkpoint) -> str:
    return hmac.new(key, _TREE_HEAD_DOMAIN + head.body(), hashlib.sha256).hexdigest()


def tree_head_text(log: str, tree: CompactRange, key: bytes) -> str:
    """A log's tree head as an auditor keeps it, authenticated with the folder's HMAC key
    (see the module docstring); `open_tree_head` reads it back.

    Example:
        >>> from axon_audit.integrity.log import open_tree_head, tree_head_text
        >>> from axon_audit.integrity.merkle import CompactRange, leaf_hash
        >>> tree = CompactRange(); tree.extend([leaf_hash(b"a")])
        >>> text = tree_head_text("manifest.json", tree, b"k")
        >>> text.splitlines()[:2], open_tree_head(text.encode(), b"k").size
        (['manifest.json', '1'], 1)
    """
    head = Checkpoint(log, tree.size, tree.root())
    return Checkpoint(log, tree.size, tree.root(), (f"{_HMAC_EXTENSION} {_tree_head_mac(key, head)}",)).body().decode()


def is_tree_head(checkpoint: Checkpoint) -> bool:
    """Whether a kept head is an HMAC tree head (not a signed checkpoint)."""
    return len(checkpoint.extensions) == 1 and checkpoint.extensions[0].startswith(_HMAC_EXTENSION + " ")


def looks_like_tree_head(text: bytes) -> bool:
    """Whether `text` is shaped as a tree head (a checkpoint body ending in the HMAC line), not a signed note."""
    try:
        return b"\n\n" not in text and is_tree_head(Checkpoint.parse(text))
    except IntegrityError:
        return False


def open_tree_head(text: bytes, key: bytes | None) -> Checkpoint:
    """The tree head in `text` (`tree_head_text`'s), once its HMAC with `key` checks.
    Raises `IntegrityError` naming what is wrong."""
    head = Checkpoint.parse(text)
    if not is_tree_head(head):
        raise CheckpointError("checkpoint: neither a signed checkpoint (no signature lines) nor a tree head "
                              f"(its last line must be '{_HMAC_EXTENSION} <hex>')")
    if key is None:
        raise AuditTypeError("checkpoint: a tree head is checked with the folder's HMAC key; give key")
    mac = head.extensions[0].split(" ", 1)[1]
    if not hmac.compare_digest(mac, _tree_head_mac(key, Checkpoint(head.origin, head.size, head.root))):
        raise IntegrityError("checkpoint: the tree head's HMAC does not match (altered, or another key's)")
    return head
