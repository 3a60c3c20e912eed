"""The Merkle tree of the transparency log, as RFC 6962 / RFC 9162 (Certificate
Transparency) define it, over SHA-256.

* leaf hash: SHA-256(0x00 || leaf data) (`leaf_hash`; events: `axon_audit.integrity.leaf`);
* node hash: SHA-256(0x01 || left || right) (`node_hash`);
* MTH({}) = SHA-256(""); MTH of n > 1 leaves splits them at k, the largest power
  of two < n: MTH(D[n]) = node_hash(MTH(D[0:k]), MTH(D[k:n])).

`root` computes MTH level by level, hashing a whole level per step; pairing
neighbours bottom-up and promoting a level's odd last node unchanged (never
duplicating it) gives exactly the RFC's split. `CompactRange` keeps only the
roots of the perfect subtrees that make up a log of any size (one per set bit of
the size), so a writer can append leaves and state the root at every size
without keeping the leaves. `inclusion_proof`/`consistency_proof` build the
RFC 9162 §2.1.3.1/§2.1.4.1 proofs from the leaf hashes; `verify_inclusion` and
`verify_consistency` are the §2.1.3.2/§2.1.4.2 algorithms and take hashes only.

Leaf hashes are passed as an (n, 32) uint8 numpy array or a sequence of 32-byte
`bytes`; hashes come back as `bytes`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import numpy as np

from axon_audit.integrity.digest import sha256_rows

__all__ = [
    "EMPTY_ROOT",
    "CompactRange",
    "LeafHashes",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
#: MTH of the empty tree: SHA-256 of the empty string.
EMPTY_ROOT = hashlib.sha256(b"").digest()

LeafHashes = np.ndarray | Sequence[bytes]


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || data).

    Example:
        >>> from axon_audit.integrity.merkle import leaf_hash
        >>> leaf_hash(b"").hex()[:16]
        '6e340b9cffb37a98'
    """
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: SHA-256(0x01 || left || right).

    Example:
        >>> from axon_audit.integrity.merkle import leaf_hash, node_hash
        >>> node_hash(leaf_hash(b""), leaf_hash(b"\\x00")).hex()[:16]
        'fac54203e7cc696c'
    """
    return hashlib.sha256(b"\x01" + left + right).digest()


def _as_array(leaves: LeafHashes) -> np.ndarray:
    if isinstance(leaves, np.ndarray):
        if leaves.dtype != np.uint8 or leaves.ndim != 2 or leaves.shape[1] != HASH_SIZE:
            raise ValueError(f"leaf hashes must be an (n, 32) uint8 array, got {leaves.dtype} {leaves.shape}")
        return leaves
    items = list(leaves)
    for i, item in enumerate(items):
        if not isinstance(item, (bytes, bytearray, memoryview)) or len(item) != HASH_SIZE:
            raise ValueError(f"leaf hash {i} is not 32 bytes: {item!r:.80}")
    return np.frombuffer(b"".join(bytes(item) for item in items), np.uint8).reshape(-1, HASH_SIZE)


def _mth(level: np.ndarray) -> bytes:
    """MTH of an (n, 32) array of leaf hashes, a whole level per step."""
    if len(level) == 0:
        return EMPTY_ROOT
    while len(level) > 1:
        even = len(level) & ~1
        parents = sha256_rows(level[:even].reshape(-1, 2 * HASH_SIZE), b"\x01")
        if len(level) & 1:
            parents = np.concatenate([parents, level[-1:]])  # promoted as it is (RFC 6962), not paired with itself
        level = parents
    return level[0].tobytes()


def _perfect_roots(d: np.ndarray, spans: list[tuple[int, int]]) -> list[bytes]:
    """The root of each perfect subtree ``d[pos:pos + 2**height]`` of `spans`,
    their levels hashed together: every subtree still above one node has an even
    count at each level, so pairing neighbours over the concatenation pairs
    within each subtree."""
    levels = [d[pos:pos + (1 << height)] for pos, height in spans]
    active = [i for i, (_, height) in enumerate(spans) if height > 0]
    while active:
        rows = np.concatenate([levels[i] for i in active]) if len(active) > 1 else levels[active[0]]
        parents = sha256_rows(rows.reshape(-1, 2 * HASH_SIZE), b"\x01")
        at, still = 0, []
        for i in active:
            half = len(levels[i]) // 2
            levels[i] = parents[at:at + half]
            at += half
            if half > 1:
                still.append(i)
        active = still
    return [level[0].tobytes() for level in levels]


def root(leaves: LeafHashes) -> bytes:
    """The Merkle tree hash (RFC 6962 MTH) of the leaf hashes, any number of them.

    Example:
        >>> from axon_audit.integrity.merkle import leaf_hash, root
        >>> root([]).hex()[:16], root([leaf_hash(b"")]) == leaf_hash(b"")
        ('e3b0c44298fc1c14', True)
        >>> root([leaf_hash(bytes([i])) for i in range(3)]).hex()[:16]
        '3b6cccd7e3e023ff'
    """
    return _mth(_as_array(leaves))


def _split(n: int) -> int:
    """The largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_size(size: int, name: str, limit: int | None = None) -> None:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 0:
        raise ValueError(f"{name} must be an int >= 0, got {size!r}")
    if limit is not None and size > limit:
        raise ValueError(f"{name} {size} exceeds the {limit} leaf hashes given")


def inclusion_proof(leaves: LeafHashes, index: int, size: int) -> list[bytes]:
    """The audit path of leaf `index` in the tree of the first `size` leaves
    (RFC 9162 §2.1.3.1 PATH), the hashes from the leaf's level upwards.

    Example:
        >>> from axon_audit.integrity.merkle import inclusion_proof, leaf_hash, node_hash
        >>> leaves = [leaf_hash(bytes([i])) for i in range(3)]
        >>> inclusion_proof(leaves, 2, 3) == [node_hash(leaves[0], leaves[1])]
        True
    """
    d = _as_array(leaves)
    _check_size(size, "size", len(d))
    _check_size(index, "index")
    if index >= size:
        raise ValueError(f"index {index} is not in a tree of size {size}")
    path: list[bytes] = []  # collected from the root down; the proof lists them from the leaf up
    lo, hi, m = 0, size, index
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            path.append(_mth(d[lo + k:hi]))
            hi = lo + k
        else:
            path.append(_mth(d[lo:lo + k]))
            lo, m = lo + k, m - k
    return path[::-1]


def consistency_proof(leaves: LeafHashes, old_size: int, new_size: int) -> list[bytes]:
    """The proof that the tree of the first `old_size` leaves is a prefix of the
    tree of the first `new_size` (RFC 9162 §2.1.4.1 PROOF); empty when
    `old_size` is 0 or equals `new_size`.

    Example:
        >>> from axon_audit.integrity.merkle import consistency_proof, leaf_hash, node_hash
        >>> leaves = [leaf_hash(bytes([i])) for i in range(3)]
        >>> consistency_proof(leaves, 2, 3) == [leaves[2]], consistency_proof(leaves, 3, 3)
        (True, [])
    """
    d = _as_array(leaves)
    _check_size(new_size, "new_size", len(d))
    _check_size(old_size, "old_size", new_size)
    if old_size == 0 or old_size == new_size:
        return []
    path: list[bytes] = []  # root down, as in inclusion_proof
    lo, hi, m, whole = 0, new_size, old_size, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            path.append(_mth(d[lo + k:hi]))
            hi = lo + k
        else:
            path.append(_mth(d[lo:lo + k]))
            lo, m, whole = lo + k, m - k, False
    if not whole:  # SUBPROOF(m, D[m], false) = {MTH(D[m])}: the old tree is not a subtree of the new one
        path.append(_mth(d[lo:hi]))
    return path[::-1]


def _hashes_ok(*hashes: object) -> bool:
    return all(isinstance(h, (bytes, bytearray)) and len(h) == HASH_SIZE for h in hashes)


def _size_ok(*sizes: object) -> bool:
    return all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 0 for s in sizes)


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """Whether `proof` shows the leaf hash at `index` in the tree of `size`
    leaves whose root is `root` (RFC 9162 §2.1.3.2). Malformed input is False.
    The size is bound by the root the verifier trusts for it: some other sizes
    give the same path shape (leaf 0 of 129 or of 130 leaves).

    Example:
        >>> from axon_audit.integrity.merkle import inclusion_proof, leaf_hash, root, verify_inclusion
        >>> leaves = [leaf_hash(bytes([i])) for i in range(5)]
        >>> proof, top = inclusion_proof(leaves, 3, 5), root(leaves)
        >>> verify_inclusion(leaves[3], 3, 5, proof, top), verify_inclusion(leaves[3], 2, 5, proof, top)
        (True, False)
    """
    if not _size_ok(index, size) or not _hashes_ok(leaf_hash, root, *proof) or index >= size:
        return False
    fn, sn, r = index, size - 1, bytes(leaf_hash)
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """Whether `proof` shows the tree (`old_size`, `old_root`) is a prefix of the
    tree (`new_size`, `new_root`) (RFC 9162 §2.1.4.2). Equal sizes need equal
    roots and an empty proof; the empty tree (root SHA-256("")) is a prefix of
    every tree, with an empty proof. Malformed input is False.

    Example:
        >>> from axon_audit.integrity.merkle import consistency_proof, leaf_hash, root, verify_consistency
        >>> leaves = [leaf_hash(bytes([i])) for i in range(7)]
        >>> proof = consistency_proof(leaves, 3, 7)
        >>> verify_consistency(3, 7, root(leaves[:3]), root(leaves), proof)
        True
        >>> verify_consistency(3, 7, root(leaves[:4]), root(leaves), proof)
        False
    """
    if not _size_ok(old_size, new_size) or not _hashes_ok(old_root, new_root, *proof) or old_size > new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    path = [bytes(p) for p in proof]
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is a node of the new tree
        path.insert(0, bytes(old_root))
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == old_root and sr == new_root and sn == 0


class CompactRange:
    """The append-only log's state without its leaves: the roots of the perfect
    subtrees covering leaves [0, size), largest first, one per set bit of `size`
    (Trillian's compact range from 0). Restore one from a saved (size, hashes).

    Example:
        >>> from axon_audit.integrity.merkle import CompactRange, leaf_hash, root
        >>> leaves = [leaf_hash(bytes([i])) for i in range(6)]
        >>> log = CompactRange()
        >>> log.extend(leaves[:5]); log.append(leaves[5])
        >>> log.size, len(log.hashes), log.root() == root(leaves)
        (6, 2, True)
        >>> CompactRange(log.size, log.hashes).root() == log.root()
        True
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Iterable[bytes] = ()) -> None:
        _check_size(size, "size")
        self._size = int(size)
        self._hashes = [bytes(h) for h in hashes]
        if len(self._hashes) != self._size.bit_count() or not _hashes_ok(*self._hashes):
            raise ValueError(f"a compact range of size {size} holds {self._size.bit_count()} hashes of 32 bytes, "
                             f"got {len(self._hashes)}")

    @property
    def size(self) -> int:
        """How many leaves were appended."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The perfect subtrees' roots, largest first (what to save)."""
        return tuple(self._hashes)

    def _push(self, node: bytes, height: int) -> None:
        # Only called with size a multiple of 2**height: merge while the size has that bit set.
        added, size = 1 << height, self._size
        while size >> height & 1:
            node = node_hash(self._hashes.pop(), node)
            height += 1
        self._hashes.append(node)
        self._size += added

    def append(self, leaf_hash: bytes) -> None:
        """Append one leaf hash."""
        if not _hashes_ok(leaf_hash):
            raise ValueError(f"leaf hash is not 32 bytes: {leaf_hash!r:.80}")
        self._push(bytes(leaf_hash), 0)

    def push_subtree(self, node: bytes, height: int) -> None:
        """Append a perfect subtree of ``2**height`` leaves given by its root alone
        (a range whose leaves are gone); it must start at a multiple of its width.

        Example:
            >>> from axon_audit.integrity.merkle import CompactRange, leaf_hash, node_hash, root
            >>> leaves = [leaf_hash(bytes([i])) for i in range(3)]
            >>> log = CompactRange(); log.push_subtree(node_hash(leaves[0], leaves[1]), 1); log.append(leaves[2])
            >>> log.root() == root(leaves)
            True
        """
        if isinstance(height, bool) or not isinstance(height, int) or not 0 <= height < 64:
            raise ValueError(f"height must be an int in [0, 64), got {height!r}")
        if self._size % (1 << height):
            raise ValueError(f"a subtree of 2**{height} leaves cannot start at {self._size}")
        if not _hashes_ok(node):
            raise ValueError(f"subtree hash is not 32 bytes: {node!r:.80}")
        self._push(bytes(node), height)

    def extend(self, leaves: LeafHashes) -> None:
        """Append many leaf hashes: the new range splits into aligned perfect
        subtrees, all of them hashed together a level per step (one batch of
        SHA-256 per level, however many subtrees), then merged in."""
        d = _as_array(leaves)
        spans: list[tuple[int, int]] = []  # (position in d, height) of each aligned perfect subtree
        pos, size = 0, self._size
        while pos < len(d):
            align = (size & -size).bit_length() - 1 if size else 63
            height = min(align, (len(d) - pos).bit_length() - 1)
            spans.append((pos, height))
            pos += 1 << height
            size += 1 << height
        for (_, height), node in zip(spans, _perfect_roots(d, spans), strict=True):
            self._push(node, height)

    def root(self) -> bytes:
        """The tree hash of the leaves appended so far (MTH; SHA-256("") when none).

        Example:
            >>> from axon_audit.integrity.merkle import CompactRange
            >>> CompactRange().root().hex()[:16]
            'e3b0c44298fc1c14'
        """
        if not self._hashes:
            return EMPTY_ROOT
        r = self._hashes[-1]
        for h in reversed(self._hashes[:-1]):
            r = node_hash(h, r)
        return r

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()[:16]}…)"
