"""Proofs an auditor can check offline, with the log's public key alone.

* `prove(path, event_id)`: an inclusion bundle: the event (its export-format
  object), its log position, the RFC 9162 audit path and the newest signed
  checkpoint; `verify_inclusion(bundle, public_key)` recomputes the event's leaf
  hash (`integrity.leaf`), checks the path against the checkpoint's root and the
  checkpoint's signature.
* `prove_consistency(path, old_checkpoint)`: proof that the log now extends a
  checkpoint kept earlier; `verify_consistency(bundle, public_key)` checks it.

Bundles are plain JSON-ready dicts (hashes in hex), so they can be mailed,
archived and checked by other tools: the leaf encoding, tree and note formats
are RFC 8785, RFC 9162 and C2SP's. The proofs are built from the Parquet parts
(and the subtrees a retention run kept for deleted ones), like `verify`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import polars as pl

from axon_audit.exceptions import AuditTypeError, IntegrityError
from axon_audit.integrity.checkpoint import Checkpoint, open_checkpoint
from axon_audit.integrity.global_log import maintenance_records
from axon_audit.integrity.leaf import event_leaf_hash
from axon_audit.integrity.log import TREE_KIND, checkpoint_note, verifier_of
from axon_audit.integrity.merkle import EMPTY_ROOT, node_hash, root
from axon_audit.integrity.merkle import verify_consistency as _verify_consistency
from axon_audit.integrity.merkle import verify_inclusion as _verify_inclusion
from axon_audit.integrity.replay import fetch, file_leaves, origin_of, overrides_of, read_part
from axon_audit.io.json_export import event_objects
from axon_audit.io.layout import ExportLayout
from axon_audit.io.location import Location, StorageOptions, resolve

__all__ = ["ProofError", "prove", "prove_consistency", "verify_consistency", "verify_inclusion"]

INCLUSION_FORMAT = "axon_audit.inclusion/1"
CONSISTENCY_FORMAT = "axon_audit.consistency/1"


class ProofError(IntegrityError):
    """A proof could not be made, or does not verify (the message says why)."""


def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


class _Nodes:
    """MTH of any aligned range of a log whose leaves are partly gone: from the
    leaves where they are, from retention's stored subtrees where not."""

    def __init__(self) -> None:
        self.segments: list[tuple[int, np.ndarray]] = []  # (first position, leaves), in order
        self.subtrees: dict[tuple[int, int], bytes] = {}  # (first position, width) -> root

    def mth(self, lo: int, hi: int) -> bytes:
        if hi == lo:
            return EMPTY_ROOT
        node = self.subtrees.get((lo, hi - lo))
        if node is not None:
            return node
        for first, leaves in self.segments:
            if first <= lo and hi <= first + len(leaves):
                return root(leaves[lo - first:hi - first])
        if hi - lo == 1:
            raise ProofError(f"log position {lo} is in no file and no stored subtree: the log cannot be rebuilt")
        k = _split(hi - lo)
        return node_hash(self.mth(lo, lo + k), self.mth(lo + k, hi))

    def path(self, m: int, lo: int, hi: int) -> list[bytes]:
        """RFC 9162 PATH(m, D[lo:hi]), m relative to lo."""
        n = hi - lo
        if n <= 1:
            return []
        k = _split(n)
        if m < k:
            return [*self.path(m, lo, lo + k), self.mth(lo + k, hi)]
        return [*self.path(m - k, lo + k, hi), self.mth(lo, lo + k)]

    def subproof(self, m: int, lo: int, hi: int, whole: bool) -> list[bytes]:
        """RFC 9162 SUBPROOF(m, D[lo:hi], b)."""
        n = hi - lo
        if m == n:
            return [] if whole else [self.mth(lo, hi)]
        k = _split(n)
        if m <= k:
            return [*self.subproof(m, lo, lo + k, whole), self.mth(lo + k, hi)]
        return [*self.subproof(m - k, lo + k, hi, False), self.mth(lo, lo + k)]


def _manifests(root: Location) -> dict[str, dict[str, Any]]:
    names = ExportLayout(root).manifest_names()
    if not names:
        raise ProofError(f"{root}: no integrity manifest")
    return {n: orjson.loads(d) for n, d in fetch(root, names) if d is not None}


def _follows(doc: dict[str, Any]) -> str | None:
    follows = doc.get("follows")
    return follows.get("manifest") if isinstance(follows, dict) else None


def _logs(root: Location) -> list[tuple[str, list[dict[str, Any]]]]:
    """Each log under `root`, named by its newest manifest, with all its entries in
    order: a writer on object storage goes on in manifests that each ``follows`` the
    one before, so its log is their entries joined up."""
    docs = _manifests(root)
    extra = maintenance_records(root)  # a lake's erasures and retentions, per manifest
    followed = {_follows(d) for d in docs.values()}
    logs = []
    for name, doc in docs.items():
        if name in followed:
            continue  # a later segment holds the rest of its log
        chain, seen = [doc], {name}
        while (before := _follows(chain[-1])) is not None and before in docs and before not in seen:
            seen.add(before)
            chain.append(docs[before])
        names = [name, *(str(_follows(d)) for d in chain[:-1])]
        logs.append((name, [e for d in reversed(chain) for e in d.get("entries", [])]
                     + [r for n in reversed(names) for r in extra.get(n, [])]))
    return logs


def _newest_tree(entries: list[dict[str, Any]]) -> dict[str, Any]:
    for e in reversed(entries):
        if e.get("kind") == TREE_KIND:
            return e
    raise ProofError("the manifest holds no tree head (written before the export log, or empty)")


def _load(root: Location, entries: list[dict[str, Any]], want: str | None = None) -> tuple[_Nodes, Any]:
    """The log's nodes; with `want`, also (position, event object) of that event id."""
    ov = overrides_of(entries)
    nodes, hit = _Nodes(), None
    for name, cover in ov.covers.items():
        first = next(int(x["leaves"][0]) for x in entries if x.get("file") == name and "leaves" in x)
        for height, node in cover:
            nodes.subtrees[(first, 1 << height)] = node
            first += 1 << height
    parts = [e for e in entries if e.get("kind") == "parquet" and "leaves" in e and e["file"] not in ov.removed]
    for (name, data), e in zip(fetch(root, [e["file"] for e in parts]), parts, strict=True):
        if data is None:
            raise ProofError(f"{name}: missing; the log cannot be rebuilt")
        df = read_part(data)
        first = int(e["leaves"][0])
        nodes.segments.append((first, file_leaves(df, e, ov)))
        if want is not None and hit is None:
            rows = df.with_row_index("_row").filter(pl.col("event_id") == want)
            if rows.height:
                row = int(rows["_row"][0])
                present = [p for p in range(first, int(e["leaves"][1])) if p not in ov.deleted] \
                    if ov.deleted else None
                hit = (present[row] if present else first + row, orjson.loads(event_objects(df.slice(row, 1))[0]))
    return nodes, hit


def prove(path: str | Path, event_id: str, *, storage_options: StorageOptions | None = None) -> dict[str, Any]:
    """The inclusion proof bundle of one exported event (see the module docstring).

    Example:
        >>> import tempfile
        >>> import axon_audit
        >>> from axon_audit.integrity.checkpoint import SigningKey
        >>> folder, key = tempfile.mkdtemp(), SigningKey.generate("audit.example/trail")
        >>> with axon_audit.AuditLogger(auto_export_path=folder, signing_key=key) as audit:
        ...     first = audit.log("store", user_id="u1")
        ...     _ = audit.log("recall", user_id="u2")
        >>> bundle = axon_audit.prove(folder, first.event_id)
        >>> bundle["leaf_index"], bundle["tree_size"], len(bundle["proof"])
        (0, 2, 1)
        >>> axon_audit.verify_inclusion(bundle, key.verifier()).size
        2
    """
    if not isinstance(event_id, str) or not event_id:
        raise AuditTypeError(f"event_id must be a non-empty str, got {event_id!r}")
    root_loc = resolve(path, storage_options=storage_options)
    for mname, entries in _logs(root_loc):
        if not any(e.get("kind") == TREE_KIND for e in entries):
            continue
        nodes, hit = _load(root_loc, entries, event_id)
        if hit is None:
            continue
        index, event = hit
        head = _newest_tree(entries)
        if index in overrides_of(entries).redacted:
            raise ProofError(f"event {event_id} was erased (erase_subject): its content can no longer be proven")
        proof = nodes.path(index, 0, int(head["size"]))
        return {"format": INCLUSION_FORMAT, "manifest": mname, "event": event, "leaf_index": index,
                "tree_size": int(head["size"]), "root": head["root"], "proof": [h.hex() for h in proof],
                "checkpoint": head.get("checkpoint")}
    raise ProofError(f"event {event_id!r} is in no exported Parquet part under {root_loc}")


def _note(bundle: dict[str, Any], field: str) -> bytes:
    note = bundle.get(field)
    if not isinstance(note, str) or not note:
        raise ProofError(f"the bundle carries no signed checkpoint ({field}): the log was written without "
                         "a signing_key, so nothing in it binds the root to a key")
    return note.encode("utf-8")


def _hashes(bundle: dict[str, Any]) -> list[bytes]:
    try:
        proof = [bytes.fromhex(h) for h in bundle["proof"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise ProofError(f"the bundle's proof is not a list of hex hashes ({exc})") from None
    return proof


def verify_inclusion(bundle: dict[str, Any], public_key: Any) -> Checkpoint:
    """Check an inclusion bundle from `prove` offline: the checkpoint's signature
    by `public_key` (a `VerifierKey`, its text or a file), the event's leaf hash,
    and its audit path to the signed root. Returns the verified checkpoint;
    raises `ProofError` (or another `IntegrityError`) naming what failed."""
    if not isinstance(bundle, dict) or bundle.get("format") != INCLUSION_FORMAT:
        raise ProofError(f"not an inclusion bundle (format {INCLUSION_FORMAT!r})")
    cp = open_checkpoint(_note(bundle, "checkpoint"), [verifier_of(public_key)])
    index, size = bundle.get("leaf_index"), bundle.get("tree_size")
    if size != cp.size:
        raise ProofError(f"the bundle's tree size {size} is not its checkpoint's ({cp.size})")
    try:
        leaf = event_leaf_hash(bundle["event"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ProofError(f"the bundle's event is not an export-format event object ({exc})") from None
    if not isinstance(index, int) or not _verify_inclusion(leaf, index, cp.size, _hashes(bundle), cp.root):
        raise ProofError(f"event {bundle['event'].get('event_id')!r} is not at position {index} of the signed log "
                         "(the event, its position or the proof was altered)")
    return cp


def prove_consistency(path: str | Path, old_checkpoint: str | bytes | Path, *,
                      storage_options: StorageOptions | None = None) -> dict[str, Any]:
    """Proof that the log under `path` extends `old_checkpoint` (its note text, or
    a file holding it): the RFC 9162 consistency proof from the old size to the
    newest tree head, with both checkpoints.

    Example:
        >>> import tempfile
        >>> import axon_audit
        >>> from axon_audit.integrity.checkpoint import SigningKey
        >>> folder, key = tempfile.mkdtemp(), SigningKey.generate("audit.example/trail")
        >>> with axon_audit.AuditLogger(auto_export_path=folder, signing_key=key) as audit:
        ...     _ = audit.log("store", user_id="u1")
        >>> kept = axon_audit.verify(folder, public_key=key.verifier()).checkpoints["audit.example/trail"]
        >>> with axon_audit.AuditLogger(auto_export_path=folder, signing_key=key) as audit:
        ...     _ = audit.log("store", user_id="u2")
        >>> axon_audit.verify_consistency(axon_audit.prove_consistency(folder, kept), key.verifier()).size
        2
    """
    old_note = checkpoint_note(old_checkpoint).decode("utf-8")
    old = Checkpoint.parse(old_note.split("\n\n")[0].encode() + b"\n")
    root_loc = resolve(path, storage_options=storage_options)
    for mname, entries in _logs(root_loc):
        if origin_of(entries) != old.origin:
            continue
        head = _newest_tree(entries)
        size = int(head["size"])
        if size < old.size:
            raise ProofError(f"{mname}: the log holds {size} events, fewer than the {old.size} of the old "
                             "checkpoint (rolled back or truncated)")
        nodes, _ = _load(root_loc, entries)
        proof = nodes.subproof(old.size, 0, size, True) if 0 < old.size < size else []
        return {"format": CONSISTENCY_FORMAT, "manifest": mname, "old": old_note, "new": head.get("checkpoint"),
                "proof": [h.hex() for h in proof]}
    raise ProofError(f"no log under {root_loc} has the origin {old.origin!r} of the old checkpoint")


def verify_consistency(bundle: dict[str, Any], public_key: Any) -> Checkpoint:
    """Check a bundle from `prove_consistency` offline: both checkpoints signed by
    `public_key`, of the same log, and the proof that the new tree extends the
    old one. Returns the new checkpoint; raises `ProofError` naming what failed."""
    if not isinstance(bundle, dict) or bundle.get("format") != CONSISTENCY_FORMAT:
        raise ProofError(f"not a consistency bundle (format {CONSISTENCY_FORMAT!r})")
    verifier = verifier_of(public_key)
    old = open_checkpoint(_note(bundle, "old"), [verifier])
    new = open_checkpoint(_note(bundle, "new"), [verifier], origin=old.origin)
    if new.size < old.size:
        raise ProofError(f"the new checkpoint ({new.size} events) is older than the old one ({old.size})")
    if not _verify_consistency(old.size, new.size, old.root, new.root, _hashes(bundle)):
        raise ProofError(f"the log at {new.size} events does not extend the checkpoint at {old.size} "
                         "(history was rewritten, or the proof was altered)")
    return new
