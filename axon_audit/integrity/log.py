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
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from axon_audit.exceptions import AuditTypeError, AuditValueError
from axon_audit.integrity.checkpoint import Checkpoint, SigningKey, VerifierKey, sign_checkpoint
from axon_audit.integrity.merkle import CompactRange

__all__ = ["TREE_KIND", "checkpoint_note", "checkpoint_of", "manifest_extension", "signing_key_of", "tree_entry",
           "tree_of", "verifier_of"]

TREE_KIND = "tree"
_EXTENSION = "axon_audit.manifest"


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
