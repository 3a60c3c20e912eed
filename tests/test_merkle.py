"""The Merkle log's core: RFC 6962 known answers, proofs that verify and
tampered ones that don't, the compact range against the full tree, and the
RFC 8785 leaf encoding (hand-checked vectors, the rfc8785 package, and the
vectorized path against the scalar one)."""

from __future__ import annotations

import hashlib
import json
import math
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from axon_audit.integrity import digest
from axon_audit.integrity.leaf import (
    _numbers,
    _strings,
    canonical_event,
    canonical_events,
    canonical_json,
    event_leaf_hash,
    leaf_hashes,
    objects_and_leaves,
)
from axon_audit.integrity.merkle import (
    EMPTY_ROOT,
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)
from axon_audit.io.json_export import event_objects
from axon_audit.model.schema import normalize_batch
from axon_audit.workload import generate_events

# --------------------------------------------------------------------------- RFC 6962 known answers

# The leaves and roots of Certificate Transparency's merkle tree tests (also Trillian's / transparency-dev's).
CT_LEAVES = [bytes.fromhex(h) for h in
             ("", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")]
CT_ROOTS = [bytes.fromhex(h) for h in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]
H = bytes.fromhex
CT_INCLUSION = [  # (index, size, proof)
    (0, 1, []),
    (0, 8, [H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")]),
    (5, 8, [H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
    (2, 3, [H("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (1, 5, [H("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")]),
]
CT_CONSISTENCY = [  # (old size, new size, proof)
    (1, 1, []),
    (1, 8, [H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")]),
    (6, 8, [H("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
    (2, 5, [H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")]),
]
CT_HASHES = [leaf_hash(d) for d in CT_LEAVES]


_LARGE = 50_000  # batches of this size and more (the sizes a rotation hashes)

def reference_mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1 as written: recursive, split at the largest power of two < n, hashlib only."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1 << ((n - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + reference_mth(leaves[:k]) + reference_mth(leaves[k:])).digest()


def test_published_roots_for_sizes_0_to_8() -> None:
    assert root([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert CT_ROOTS[-1].hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    for n in range(1, 9):
        assert root(CT_HASHES[:n]) == CT_ROOTS[n - 1] == reference_mth(CT_HASHES[:n])
        assert root(np.frombuffer(b"".join(CT_HASHES[:n]), np.uint8).reshape(-1, 32)) == CT_ROOTS[n - 1]


@pytest.mark.parametrize(("index", "size", "proof"), CT_INCLUSION)
def test_published_inclusion_proofs(index: int, size: int, proof: list[bytes]) -> None:
    assert inclusion_proof(CT_HASHES, index, size) == proof
    assert verify_inclusion(CT_HASHES[index], index, size, proof, CT_ROOTS[size - 1])


@pytest.mark.parametrize(("old", "new", "proof"), CT_CONSISTENCY)
def test_published_consistency_proofs(old: int, new: int, proof: list[bytes]) -> None:
    assert consistency_proof(CT_HASHES, old, new) == proof
    assert verify_consistency(old, new, CT_ROOTS[old - 1], CT_ROOTS[new - 1], proof)


def test_odd_node_is_promoted_not_duplicated() -> None:
    a, b, c = CT_HASHES[:3]
    assert root([a, b, c]) == node_hash(node_hash(a, b), c)
    assert root([a, b, c]) != node_hash(node_hash(a, b), node_hash(c, c))


def test_degenerate_consistency_cases() -> None:
    r4, r5 = CT_ROOTS[3], CT_ROOTS[4]
    assert verify_consistency(4, 4, r4, r4, [])
    assert not verify_consistency(4, 4, r4, r5, [])
    assert not verify_consistency(4, 4, r4, r4, [r4])
    assert verify_consistency(0, 8, EMPTY_ROOT, CT_ROOTS[7], [])
    assert not verify_consistency(0, 8, r4, CT_ROOTS[7], [])
    assert not verify_consistency(0, 8, EMPTY_ROOT, CT_ROOTS[7], [r4])
    assert not verify_consistency(6, 8, CT_ROOTS[5], CT_ROOTS[7], [])
    assert not verify_consistency(8, 6, CT_ROOTS[7], CT_ROOTS[5], CT_CONSISTENCY[2][2])
    assert not verify_consistency(6, 8, CT_ROOTS[5][:31], CT_ROOTS[7], CT_CONSISTENCY[2][2])


def test_malformed_inclusion_input_is_false_and_bad_requests_raise() -> None:
    proof = CT_INCLUSION[2][2]
    assert not verify_inclusion(CT_HASHES[5], 8, 8, proof, CT_ROOTS[7])
    assert not verify_inclusion(CT_HASHES[5], -1, 8, proof, CT_ROOTS[7])
    assert not verify_inclusion(CT_HASHES[5][:31], 5, 8, proof, CT_ROOTS[7])
    assert not verify_inclusion(CT_HASHES[5], 5, 8, [proof[0][:31], *proof[1:]], CT_ROOTS[7])
    assert not verify_inclusion(CT_HASHES[0], 0, 0, [], EMPTY_ROOT)
    with pytest.raises(ValueError):
        inclusion_proof(CT_HASHES, 8, 8)
    with pytest.raises(ValueError):
        inclusion_proof(CT_HASHES, 0, 9)
    with pytest.raises(ValueError):
        consistency_proof(CT_HASHES, 5, 3)
    with pytest.raises(ValueError):
        root([b"short"])


# --------------------------------------------------------------------------- proofs, properties

LEAVES = [leaf_hash(i.to_bytes(4, "big")) for i in range(300)]


@cache
def ref_root(size: int) -> bytes:
    return reference_mth(LEAVES[:size])


def _flip(h: bytes, byte: int) -> bytes:
    b = bytearray(h)
    b[byte % len(b)] ^= 0x01
    return bytes(b)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 300), data=st.data())
def test_inclusion_proofs_verify_and_tampering_is_rejected(size: int, data: st.DataObject) -> None:
    top = ref_root(size)
    assert root(LEAVES[:size]) == top
    for index in data.draw(st.lists(st.integers(0, size - 1), min_size=1, max_size=5, unique=True)):
        proof = inclusion_proof(LEAVES, index, size)
        assert len(proof) <= max(1, size - 1).bit_length()
        assert verify_inclusion(LEAVES[index], index, size, proof, top)
        if proof:
            i = data.draw(st.integers(0, len(proof) - 1))
            tampered = [*proof[:i], _flip(proof[i], data.draw(st.integers(0, 31))), *proof[i + 1:]]
            assert not verify_inclusion(LEAVES[index], index, size, tampered, top)
            assert not verify_inclusion(LEAVES[index], index, size, proof[:-1], top)
            assert not verify_inclusion(LEAVES[index], index, size, [*proof, top], top)
        assert not verify_inclusion(_flip(LEAVES[index], 0), index, size, proof, top)
        if size > 1:
            other = data.draw(st.integers(0, size - 1).filter(lambda j, index=index: j != index))
            assert not verify_inclusion(LEAVES[index], other, size, proof, top)
        # Not every other size: the path of leaf 0 is the same in trees of 129 and 130 leaves, so a
        # verifier binds the size through the root it trusts for that size (RFC 9162 signs them together).
        # Sizes that change the path's shape are rejected (the probes transparency-dev's tests use).
        for wrong_size in {size * 2, size // 2} - {size}:
            if wrong_size > index:
                assert not verify_inclusion(LEAVES[index], index, wrong_size, proof, top)
        assert not verify_inclusion(LEAVES[index], index, size, proof, ref_root(size - 1) if size > 1 else EMPTY_ROOT)
        other_tree = root([leaf_hash(b"other" + j.to_bytes(2, "big")) for j in range(size)])
        assert not verify_inclusion(LEAVES[index], index, size, proof, other_tree)


@settings(max_examples=80, deadline=None)
@given(sizes=st.tuples(st.integers(0, 300), st.integers(0, 300)).map(sorted), data=st.data())
def test_consistency_proofs_verify_and_tampering_is_rejected(sizes: list[int], data: st.DataObject) -> None:
    old, new = sizes
    old_root, new_root = ref_root(old), ref_root(new)
    proof = consistency_proof(LEAVES, old, new)
    assert verify_consistency(old, new, old_root, new_root, proof)
    if old == 0 or old == new:
        assert proof == []
        return
    i = data.draw(st.integers(0, len(proof) - 1))
    tampered = [*proof[:i], _flip(proof[i], data.draw(st.integers(0, 31))), *proof[i + 1:]]
    assert not verify_consistency(old, new, old_root, new_root, tampered)
    assert not verify_consistency(old, new, old_root, new_root, proof[:-1])
    assert not verify_consistency(old, new, old_root, new_root, [*proof, new_root])
    assert not verify_consistency(old, new, new_root, old_root, proof)
    assert not verify_consistency(old, new, _flip(old_root, 3), new_root, proof)
    other = root([leaf_hash(b"other" + j.to_bytes(2, "big")) for j in range(new)])
    assert not verify_consistency(old, new, old_root, other, proof)
    # As for inclusion, only sizes that change the proof's shape can be told apart from the hashes alone
    # (1 -> 129 and 1 -> 130 share a proof); these are transparency-dev's probes.
    for wrong_old in {old - 1, old + 1, old ^ 2} - {old}:
        assert not verify_consistency(wrong_old, new, old_root, new_root, proof)
    for wrong_new in {new * 2, new // 2} - {new}:
        assert not verify_consistency(old, wrong_new, old_root, new_root, proof)


@settings(max_examples=40, deadline=None)
@given(chunks=st.lists(st.integers(0, 40), max_size=20))
def test_compact_range_root_equals_root_at_every_size(chunks: list[int]) -> None:
    log, done = CompactRange(), 0
    assert log.root() == EMPTY_ROOT
    for n in chunks:
        n = min(n, len(LEAVES) - done)
        if n == 1:
            log.append(LEAVES[done])
        else:
            log.extend(LEAVES[done:done + n])
        done += n
        assert log.size == done and len(log.hashes) == done.bit_count()
        assert log.root() == ref_root(done)
        assert CompactRange(log.size, log.hashes).root() == log.root()


def test_compact_range_one_leaf_at_a_time_and_bad_state() -> None:
    log = CompactRange()
    for size in range(1, 301):
        log.append(LEAVES[size - 1])
        assert log.root() == ref_root(size)
    with pytest.raises(ValueError):
        CompactRange(3, [LEAVES[0]])
    with pytest.raises(ValueError):
        log.append(b"short")


def test_large_trees_agree() -> None:
    """A large tree (150 K leaves) hashed level by level: the order must hold."""
    leaves = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(3 * _LARGE + 5)]
    expected = reference_mth(leaves)
    assert root(leaves) == expected
    log = CompactRange()
    log.extend(leaves[:7])
    log.extend(leaves[7:])
    assert log.root() == expected
    proof = inclusion_proof(leaves, 12_000, len(leaves))
    assert verify_inclusion(leaves[12_000], 12_000, len(leaves), proof, expected)


def test_batched_sha256_equals_hashlib() -> None:
    n = 2 * _LARGE
    texts = [f"{i}\\x41\x00é😀" * (i % 5) for i in range(n)]
    got = digest.sha256_values(pa.array(texts), b"\x00")
    assert [bytes(r) for r in got] == [hashlib.sha256(b"\x00" + t.encode()).digest() for t in texts]
    views = pl.Series(texts).to_arrow()
    assert np.array_equal(digest.sha256_values(views, b"\x00"), got)
    rows = np.random.default_rng(1).integers(0, 256, (n, 64), dtype=np.uint8)
    got_rows = digest.sha256_rows(rows, b"\x01")
    assert [bytes(r) for r in got_rows] == [hashlib.sha256(b"\x01" + r.tobytes()).digest() for r in rows]
    assert np.array_equal(digest.sha256_rows(rows[:10], b"\x01"), got_rows[:10])


# --------------------------------------------------------------------------- the leaf encoding

VECTORS = json.loads((Path(__file__).parent / "vectors" / "leaf_vectors.json").read_text(encoding="utf-8"))["vectors"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["description"][:40] for v in VECTORS])
def test_leaf_vectors(vector: dict) -> None:
    event, canonical = vector["event"], vector["canonical"].encode()
    assert canonical_event(event) == canonical
    assert rfc8785.dumps(event) == canonical
    assert event_leaf_hash(event).hex() == vector["leaf_hash"]
    assert hashlib.sha256(b"\x00" + canonical).hexdigest() == vector["leaf_hash"]
    # The same event through the frame: normalize_batch, then the vectorized path.
    row = dict(event)
    row["timestamp"] = datetime.strptime(event["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    df = normalize_batch([row])
    assert canonical_events(df).to_list() == [vector["canonical"]]
    assert leaf_hashes(df)[0].tobytes().hex() == vector["leaf_hash"]


def test_canonical_event_refuses_other_shapes() -> None:
    event = dict(VECTORS[-1]["event"])
    with pytest.raises(ValueError, match="extra"):
        canonical_event({**event, "chain": "x"})
    with pytest.raises(ValueError, match="missing"):
        canonical_event({k: v for k, v in event.items() if k != "status"})
    with pytest.raises(TypeError):
        canonical_event({**event, "metadata": "{}"})
    with pytest.raises(ValueError):
        canonical_json(math.nan)
    with pytest.raises(ValueError):
        canonical_json("\ud800")


def test_polars_string_escaping_is_rfc8785_for_every_code_point() -> None:
    """`_strings` leans on polars' JSON writer for columns that need escaping."""
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    texts = pl.Series([c + "x" for c in chars] + [None])
    assert _strings(texts).to_list() == [canonical_json(t) for t in texts.to_list()[:-1]] + ["null"]
    plain = pl.Series(["abc", None, "ü/€"])  # no escaping needed: the fast path
    assert _strings(plain).to_list() == ['"abc"', "null", '"ü/€"']


finite = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(finite, min_size=1, max_size=50))
def test_vectorized_numbers_equal_ecmascript(values: list[float]) -> None:
    expected = [rfc8785.dumps(v).decode() for v in values]
    assert [canonical_json(v) for v in values] == expected
    assert _numbers(pl.Series(values, dtype=pl.Float64)).to_list() == expected


def test_vectorized_numbers_edge_values() -> None:
    values = [45.2, 1e21, 1e20, 0.1 + 0.2, -0.0, 0.0, 5000.0, 1e-6, 1e-7, 9.999999e-7, 1e16, 1e15, 5e-324,
              1.7976931348623157e308, -1.5e-7, 123456789012345680000.0, 0.000123, 2.0**53, None]
    expected = [rfc8785.dumps(v).decode() if v is not None else "null" for v in values]
    assert _numbers(pl.Series(values, dtype=pl.Float64)).to_list() == expected


json_scalars = st.none() | st.booleans() | finite | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=8)
json_values = st.recursive(json_scalars, lambda kids: st.lists(kids, max_size=4)
                           | st.dictionaries(st.text(max_size=6), kids, max_size=4), max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_canonical_json_equals_rfc8785_package(value: object) -> None:
    assert canonical_json(value).encode() == rfc8785.dumps(value)


def _scalar_hashes(df: pl.DataFrame) -> list[bytes]:
    return [event_leaf_hash(json.loads(text)) for text in event_objects(df).to_list()]


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 3000))
def test_vectorized_leaf_hashes_equal_scalar_on_workload(seed: int, n: int) -> None:
    df = normalize_batch(generate_events(n, seed=seed))
    hashes = leaf_hashes(df)
    assert hashes.shape == (n, 32)
    assert [bytes(r) for r in hashes] == _scalar_hashes(df)


texts = st.text(max_size=12)
rows = st.fixed_dictionaries(
    {"operation": st.sampled_from(["STORE", "RECALL", "FORGET", "BULK_STORE"]),
     "event_id": st.text(min_size=1, max_size=12),
     "timestamp": st.datetimes(datetime(1900, 1, 1), datetime(2200, 1, 1), timezones=st.just(timezone.utc)),
     "status": st.sampled_from(["SUCCESS", "FAILURE", "PARTIAL"])},
    optional={"user_id": texts | st.none(), "session_id": texts | st.none(),
              "entry_ids": st.lists(texts, max_size=4) | st.none(),
              "metadata": st.dictionaries(st.text(min_size=1, max_size=6), json_values, max_size=4) | st.none(),
              "error_message": texts | st.none(),
              "duration_ms": st.floats(0, allow_nan=False, allow_infinity=False) | st.none()})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(rows, min_size=1, max_size=12, unique_by=lambda r: r["event_id"]))
def test_vectorized_leaf_hashes_equal_scalar_on_built_rows(batch: list[dict]) -> None:
    columns = {key for row in batch for key in row}  # every row names every column it uses, None elsewhere
    df = normalize_batch([{key: row.get(key) for key in columns} for row in batch])
    assert [bytes(r) for r in leaf_hashes(df)] == _scalar_hashes(df)
    assert canonical_events(df).to_list() == [rfc8785.dumps(json.loads(t)).decode() for t in event_objects(df)]


def test_leaf_hashes_of_a_large_frame() -> None:
    df = normalize_batch(generate_events(2 * _LARGE, seed=7,
                                         start=datetime(2025, 1, 1, tzinfo=timezone.utc) - timedelta(days=1)))
    hashes = leaf_hashes(df)
    sample = np.random.default_rng(0).choice(df.height, 200, replace=False)
    expected = _scalar_hashes(df[sample.tolist()])
    assert [bytes(hashes[i]) for i in sample] == expected
    assert root(hashes) == reference_mth([bytes(r) for r in hashes])


def test_hashing_from_several_threads_at_once() -> None:
    """Callers on several threads at once each get their own rows back."""
    frames = [normalize_batch(generate_events(_LARGE + 1000 * i, seed=i)) for i in range(3)]
    alone = [leaf_hashes(df) for df in frames]
    with ThreadPoolExecutor(3) as pool:
        together = list(pool.map(leaf_hashes, frames))
    assert all(np.array_equal(a, b) for a, b in zip(alone, together, strict=True))


def _mth_reference(leaves: list[bytes]) -> bytes:
    """RFC 6962 MTH by its recursive definition, hashlib only."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + _mth_reference(leaves[:k]) + _mth_reference(leaves[k:])).digest()


@settings(max_examples=15, deadline=None)
@given(cuts=st.lists(st.integers(1, 2500), min_size=1, max_size=4))
def test_batched_hashing_matches_the_definition_at_sizes_past_the_batch_threshold(cuts: list[int]) -> None:
    """Above `digest.BATCH_MIN` values the hashes come from polars-hash, in batches
    across subtrees: the roots must still be the definition's."""
    rng = np.random.default_rng(len(cuts) * 7919 + sum(cuts))
    leaves = [bytes(x) for x in rng.integers(0, 256, (sum(cuts), 32), dtype=np.uint8)]
    log, done = CompactRange(), 0
    for n in cuts:
        log.extend(np.frombuffer(b"".join(leaves[done:done + n]), np.uint8).reshape(-1, 32))
        done += n
        assert log.root() == _mth_reference(leaves[:done]) == root(leaves[:done])


def _export_objects_before(df: pl.DataFrame) -> pl.Series:
    """The export object as 5c6a5d3 wrote it (polars' JSON writer over two structs):
    the seed format's bytes, which the shared field literals must keep exactly."""
    head = pl.struct(
        "event_id", pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").alias("timestamp"),
        pl.col("operation").cast(pl.String), pl.col("user_id").cast(pl.String), pl.col("session_id").cast(pl.String),
        pl.col("entry_ids").fill_null([]),
    ).struct.json_encode()
    tail = pl.struct(pl.col("status").cast(pl.String), "error_message", "duration_ms").struct.json_encode()
    return df.select(pl.concat_str(head.str.strip_suffix("}"), pl.lit(',"metadata":'),
                                   pl.col("metadata").fill_null("{}"), pl.lit(","),
                                   tail.str.strip_prefix("{"))).to_series()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(rows, min_size=1, max_size=12, unique_by=lambda r: r["event_id"]), st.integers(0, 700))
def test_export_objects_and_leaves_from_one_query_keep_the_export_bytes(batch: list[dict], pad: int) -> None:
    columns = {key for row in batch for key in row}
    df = normalize_batch([{key: row.get(key) for key in columns} for row in batch] + [{"operation": "STORE"}] * pad)
    objects, leaves = objects_and_leaves(df)  # past BATCH_MIN rows the one-query path runs
    if not isinstance(objects, pl.Series):  # the compiled path: what writes them
        objects = objects.objects()
    assert objects.to_list() == event_objects(df).to_list() == _export_objects_before(df).to_list()
    assert [bytes(r) for r in leaves] == [bytes(r) for r in leaf_hashes(df)]
