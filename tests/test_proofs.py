"""The export log's proofs end to end (issue 13, "Must show"): a real signed
AuditLogger over several rotations; inclusion and consistency proofs that
round-trip and the forgeries, rollbacks and truncations they must reject;
known-answer tree vectors for events; and the proofs module's node builder
(`_Nodes`, with retention-style stored subtrees) against the reference proofs."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import shutil
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import axon_audit
from axon_audit import (
    AuditLogger,
    ProofError,
    SigningKey,
    prove,
    prove_consistency,
    verify,
    verify_consistency,
    verify_inclusion,
)
from axon_audit.exceptions import IntegrityError
from axon_audit.integrity import manifest as _integrity
from axon_audit.integrity import merkle
from axon_audit.integrity.checkpoint import (
    BadSignatureError,
    Checkpoint,
    UnknownKeyError,
    open_checkpoint,
    sign_checkpoint,
)
from axon_audit.integrity.leaf import canonical_event, event_leaf_hash, leaf_hashes
from axon_audit.integrity.proofs import _Nodes
from axon_audit.model.schema import normalize_batch
from axon_audit.workload import generate_events

UTC = timezone.utc
ORIGIN = "audit.example/trail"
SIGNER = SigningKey.generate(ORIGIN)
VERIFIER = SIGNER.verifier()
COMMITS = [7, 13, 1, 20, 9]  # events per export commit: tree heads at 7, 20, 21, 41, 50
HEADS = list(itertools.accumulate(COMMITS))


# --------------------------------------------------------------------------- a signed folder


def log_commits(root: Path, sizes: list[int], seed: int, key: SigningKey = SIGNER) -> None:
    """One export commit per entry of `sizes` (a logger each: it exports when it closes),
    each over two or three UTC days."""
    for n, size in enumerate(sizes):
        start = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=seed + 3 * n)
        with AuditLogger(max_events=10**6, auto_export_path=root, signing_key=key) as audit:
            audit.log_batch(generate_events(size, seed=seed + n, days=2.5, start=start))


@pytest.fixture(scope="module")
def signed_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("signed") / "exp"
    log_commits(root, COMMITS, seed=0)
    return root


@pytest.fixture
def folder(signed_template: Path, tmp_path: Path) -> Path:
    root = tmp_path / "exp"
    shutil.copytree(signed_template, root)
    return root


def manifest(root: Path) -> dict:
    return orjson.loads((root / "manifest.json").read_bytes())


def write_manifest(root: Path, doc: dict) -> None:
    (root / "manifest.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))


def log_order(root: Path) -> list[dict]:
    """Every exported event's JSON object, in log order."""
    return [ev for e in manifest(root)["entries"] if e["kind"] == "json"
            for ev in orjson.loads((root / e["file"]).read_bytes())["events"]]


def trees(root: Path) -> list[dict]:
    return [e for e in manifest(root)["entries"] if e["kind"] == "tree"]


def newest_checkpoint(root: Path) -> str:
    result = verify(root, public_key=VERIFIER)
    assert result.ok, result.problems
    return result.checkpoints[ORIGIN]


def rehash(root: Path, entries: list[dict]) -> None:
    """Re-link manifest entries as an attacker without any key can."""
    prev = _integrity.GENESIS
    for i, e in enumerate(entries):
        e.update(index=i, prev=prev)
        e["hash"] = prev = _integrity.entry_hash(e)
    write_manifest(root, {"format": _integrity.FORMAT, "entries": entries,
                          "head": {"entries": len(entries), "hash": prev}})


def test_the_signed_folder_is_one_log_with_a_checkpoint_per_commit(folder: Path) -> None:
    result = verify(folder, public_key=VERIFIER)
    assert result.ok, result.problems
    assert result.signatures_checked == len(COMMITS) and result.tree_size == HEADS[-1] == result.events_checked
    assert [t["size"] for t in trees(folder)] == HEADS
    assert sum(e["kind"] == "parquet" for e in manifest(folder)["entries"]) > len(COMMITS)  # commits span days
    leaves = [event_leaf_hash(ev) for ev in log_order(folder)]
    for t in trees(folder):
        cp = open_checkpoint(t["checkpoint"].encode(), [VERIFIER], origin=ORIGIN)
        assert (cp.size, cp.root) == (t["size"], merkle.root(leaves[:t["size"]]))
    assert result.checkpoints == {ORIGIN: trees(folder)[-1]["checkpoint"]}


# --------------------------------------------------------------------------- inclusion


@pytest.mark.parametrize("position", [0, 1, HEADS[0], HEADS[1] + 5, HEADS[-1] // 2, HEADS[-1] - 1],
                         ids=["first", "second", "commit-start", "in-commit", "middle", "last"])
def test_inclusion_proof_round_trips(folder: Path, position: int) -> None:
    events = log_order(folder)
    event = events[position]
    bundle = prove(folder, event["event_id"])
    assert bundle["leaf_index"] == position and bundle["tree_size"] == HEADS[-1]
    assert bundle["event"] == event  # the export-format object, as in the JSON copy
    assert bundle["root"] == trees(folder)[-1]["root"] and bundle["checkpoint"] == trees(folder)[-1]["checkpoint"]
    leaves = [event_leaf_hash(ev) for ev in events]
    assert [bytes.fromhex(h) for h in bundle["proof"]] == merkle.inclusion_proof(leaves, position, len(leaves))
    mailed = json.loads(json.dumps(bundle))  # plain JSON: it can be sent and checked elsewhere
    cp = verify_inclusion(mailed, VERIFIER)
    assert (cp.origin, cp.size, cp.root.hex()) == (ORIGIN, HEADS[-1], trees(folder)[-1]["root"])
    assert verify_inclusion(bundle, str(VERIFIER)).size == HEADS[-1]  # the key's text works too


def test_tampered_inclusion_bundles_are_rejected(folder: Path) -> None:
    events = log_order(folder)
    bundle = prove(folder, events[10]["event_id"])
    verify_inclusion(bundle, VERIFIER)

    def rejected(change) -> None:
        forged = json.loads(json.dumps(bundle))
        change(forged)
        with pytest.raises(IntegrityError):
            verify_inclusion(forged, VERIFIER)

    rejected(lambda b: b["event"].update(user_id="someone_else"))
    rejected(lambda b: b["event"].update(metadata={**b["event"]["metadata"], "added": 1}))
    rejected(lambda b: b["event"].update(status="FAILURE" if b["event"]["status"] != "FAILURE" else "SUCCESS"))
    rejected(lambda b: b.update(event=events[11]))  # another real event at this position
    rejected(lambda b: b.update(leaf_index=11))
    rejected(lambda b: b.update(tree_size=HEADS[-2]))
    rejected(lambda b: b["proof"].__setitem__(0, "00" * 32))
    rejected(lambda b: b["proof"].pop())
    rejected(lambda b: b.update(checkpoint=None))
    rejected(lambda b: b["event"].update(chain="x"))  # not an event object (the old export's extra key)
    with pytest.raises(ProofError, match="event"):
        verify_inclusion({**bundle, "event": {**bundle["event"], "user_id": "x"}}, VERIFIER)


def _note_parts(note: str) -> tuple[Checkpoint, str]:
    body, sigs = note.split("\n\n")
    return Checkpoint.parse(body.encode() + b"\n"), sigs


def test_a_forged_checkpoint_is_rejected(folder: Path) -> None:
    """The attacker rebuilds the whole tree around an altered event and signs its head
    with a key of their own under the log's name: only the real key's holder can sign."""
    events = log_order(folder)
    position = 17
    bundle = prove(folder, events[position]["event_id"])
    forged_event = {**events[position], "user_id": "someone_else"}
    leaves = [event_leaf_hash(ev) for ev in events]
    leaves[position] = event_leaf_hash(forged_event)
    n = len(leaves)
    real, _ = _note_parts(bundle["checkpoint"])
    impostor = SigningKey.generate(ORIGIN)  # same name, another key
    note = sign_checkpoint(Checkpoint(ORIGIN, n, merkle.root(leaves), real.extensions), impostor).decode()
    forged = {**bundle, "event": forged_event, "checkpoint": note, "root": merkle.root(leaves).hex(),
              "proof": [h.hex() for h in merkle.inclusion_proof(leaves, position, n)]}
    assert verify_inclusion(forged, impostor.verifier()).size == n  # consistent: only the key tells it apart
    with pytest.raises(UnknownKeyError):
        verify_inclusion(forged, VERIFIER)
    # The impostor's signature line made to carry the real key's ID (a 4-byte collision): a bad signature.
    real_b64 = _note_parts(bundle["checkpoint"])[1].split(" ")[2].strip()
    fake_b64 = _note_parts(note)[1].split(" ")[2].strip()
    spliced = base64.b64encode(base64.b64decode(real_b64)[:4] + base64.b64decode(fake_b64)[4:]).decode()
    collided = note.replace(fake_b64, spliced)
    assert collided != note
    with pytest.raises(BadSignatureError):
        verify_inclusion({**forged, "checkpoint": collided}, VERIFIER)


@pytest.mark.parametrize("edit", ["size", "root", "extension", "origin"])
def test_an_edited_checkpoint_text_is_rejected(folder: Path, edit: str) -> None:
    events = log_order(folder)
    bundle = prove(folder, events[3]["event_id"])
    cp, _ = _note_parts(bundle["checkpoint"])
    lines = bundle["checkpoint"].split("\n")
    if edit == "size":
        lines[1] = str(cp.size + 1)
    elif edit == "root":
        lines[2] = base64.b64encode(merkle.EMPTY_ROOT).decode()
    elif edit == "extension":
        lines[3] = lines[3][:-1] + ("0" if lines[3][-1] != "0" else "1")
    else:
        lines[0] = ORIGIN + "2"
    edited = "\n".join(lines)
    assert edited != bundle["checkpoint"]
    with pytest.raises(IntegrityError):
        verify_inclusion({**bundle, "checkpoint": edited, "tree_size": cp.size + (edit == "size")}, VERIFIER)
    # In the manifest too: the entry re-hashed so the manifest links, the checkpoint no longer verifies.
    entries = manifest(folder)["entries"]
    entries[-1]["checkpoint"] = edited
    rehash(folder, entries)
    found = verify(folder, public_key=VERIFIER).problems
    assert any(p.startswith(f"manifest.json: tree head #{len(entries) - 1}: checkpoint rejected") for p in found), found


def test_a_folder_written_without_a_signing_key_proves_nothing(tmp_path: Path) -> None:
    root = tmp_path / "unsigned"
    with AuditLogger(auto_export_path=root) as audit:
        first = audit.log("store", user_id="u1").event_id
        audit.log("store", user_id="u2")
    bundle = prove(root, first)
    assert bundle["checkpoint"] is None and bundle["tree_size"] == 2
    with pytest.raises(ProofError, match="no signed checkpoint"):
        verify_inclusion(bundle, VERIFIER)
    assert any("has no signed checkpoint, but a public key was given" in p
               for p in verify(root, public_key=VERIFIER).problems)
    with pytest.raises(ProofError, match="is in no exported Parquet part"):
        prove(root, "evt_not_there")


# --------------------------------------------------------------------------- consistency


def test_consistency_proofs_round_trip_from_every_kept_checkpoint(folder: Path) -> None:
    kept = [t["checkpoint"] for t in trees(folder)]
    log_commits(folder, [4, 30], seed=100)  # the log grows: 54, 84
    grown = HEADS[-1] + 34
    result = verify(folder, public_key=VERIFIER)
    assert result.ok and result.tree_size == grown, result.problems
    leaves = [event_leaf_hash(ev) for ev in log_order(folder)]
    for note, size in zip(kept, HEADS, strict=True):
        bundle = prove_consistency(folder, note)
        assert bundle["old"] == note and bundle["new"] == trees(folder)[-1]["checkpoint"]
        assert [bytes.fromhex(h) for h in bundle["proof"]] == merkle.consistency_proof(leaves, size, grown)
        new = verify_consistency(json.loads(json.dumps(bundle)), VERIFIER)
        assert (new.size, new.root) == (grown, merkle.root(leaves))
        assert verify(folder, public_key=VERIFIER, checkpoint=note).ok  # the log extends what was kept
    same = prove_consistency(folder, trees(folder)[-1]["checkpoint"])  # nothing new since: an empty proof
    assert same["proof"] == [] and verify_consistency(same, VERIFIER).size == grown


def test_tampered_consistency_bundles_are_rejected(folder: Path) -> None:
    kept = trees(folder)[1]["checkpoint"]
    bundle = prove_consistency(folder, kept)
    verify_consistency(bundle, VERIFIER)
    for change in [lambda b: b["proof"].__setitem__(0, "11" * 32), lambda b: b["proof"].pop(),
                   lambda b: b.update(old=trees(folder)[0]["checkpoint"]),  # another old size for this proof
                   lambda b: b.update(old=b["new"], new=b["old"]),  # the new head is older
                   lambda b: b.update(new=None)]:
        forged = json.loads(json.dumps(bundle))
        change(forged)
        with pytest.raises(IntegrityError):
            verify_consistency(forged, VERIFIER)
    # Both checkpoints must be the same log's: the same key's head of another origin is refused.
    old = _note_parts(kept)[0]
    elsewhere = sign_checkpoint(Checkpoint(ORIGIN + "/other", old.size, old.root, old.extensions), SIGNER).decode()
    with pytest.raises(IntegrityError, match="origin"):
        verify_consistency({**bundle, "old": elsewhere}, VERIFIER)


# --------------------------------------------------------------------------- rollback and truncation


def test_a_rolled_back_manifest_is_caught_by_the_kept_checkpoint(folder: Path) -> None:
    older_manifest = (folder / "manifest.json").read_bytes()
    older_files = {p for p in folder.rglob("*") if p.is_file()}
    older_kept = newest_checkpoint(folder)
    log_commits(folder, [6, 6], seed=200)
    kept_newer = newest_checkpoint(folder)
    assert _note_parts(kept_newer)[0].size == HEADS[-1] + 12
    # Roll back: the older (validly signed) manifest, and only the files it lists.
    (folder / "manifest.json").write_bytes(older_manifest)
    for p in {p for p in folder.rglob("*") if p.is_file()} - older_files:
        p.unlink()
    assert verify(folder, public_key=VERIFIER).ok  # on its own an older state looks intact: the honest limit
    assert verify(folder, public_key=VERIFIER, checkpoint=older_kept).ok
    result = verify(folder, public_key=VERIFIER, checkpoint=kept_newer)
    assert not result.ok
    assert result.problems == [f"manifest.json: the log holds {HEADS[-1]} events, fewer than the "
                               f"{HEADS[-1] + 12} of the checkpoint kept (the log was rolled back or truncated)"]
    with pytest.raises(ProofError, match=f"holds {HEADS[-1]} events, fewer than the {HEADS[-1] + 12}"):
        prove_consistency(folder, kept_newer)
    with pytest.raises(axon_audit.AuditTypeError, match="needs the public_key"):
        verify(folder, checkpoint=kept_newer)


def test_a_truncated_log_is_caught_by_the_kept_checkpoint(folder: Path) -> None:
    kept = newest_checkpoint(folder)  # the auditor kept the newest head
    entries = manifest(folder)["entries"]
    cut = max(i for i, e in enumerate(entries) if e["kind"] == "json")
    for e in entries[cut:]:  # the newest commit's files go, and its entries
        if "file" in e:
            (folder / e["file"]).unlink()
    rehash(folder, entries[:cut])
    honest = verify(folder, public_key=VERIFIER)
    assert honest.ok and honest.tree_size == HEADS[-2]  # every remaining checkpoint still verifies
    result = verify(folder, public_key=VERIFIER, checkpoint=kept)
    assert result.problems == [f"manifest.json: the log holds {HEADS[-2]} events, fewer than the {HEADS[-1]} "
                               "of the checkpoint kept (the log was rolled back or truncated)"]
    with pytest.raises(ProofError, match="rolled back or truncated"):
        prove_consistency(folder, kept)
    # Then other events, as many and more, under a key of the log's name the attacker made:
    impostor = SigningKey.generate(ORIGIN)
    log_commits(folder, [COMMITS[-1] + 3], seed=300, key=impostor)
    found = verify(folder, public_key=VERIFIER, checkpoint=kept).problems
    assert any(": checkpoint rejected (note has no signature by a trusted key" in p for p in found), found
    assert any(p.startswith(f"manifest.json: the log's first {HEADS[-1]} events do not give the root of the "
                            "checkpoint kept") for p in found), found


def test_a_commit_stripped_of_its_tree_head_is_named(folder: Path) -> None:
    """Dropping the newest tree head (signed checkpoint and all) must not leave that
    commit's files unchecked: its JSON document is edited here too."""
    kept = trees(folder)[-2]["checkpoint"]
    entries = manifest(folder)["entries"][:-1]
    files = len(entries) - 1 - max(i for i, e in enumerate(entries) if e["kind"] == "tree")  # the newest commit's
    rehash(folder, entries)
    doc = folder / [e for e in entries if e["kind"] == "json"][-1]["file"]
    victim = log_order(folder)[HEADS[-2] + 2]
    doc.write_bytes(doc.read_bytes().replace(f'"event_id":"{victim["event_id"]}"'.encode(),
                                             f'"event_id":"{victim["event_id"]}x"'.encode()))
    found = verify(folder, public_key=VERIFIER, checkpoint=kept).problems
    assert files >= 2
    assert f"manifest.json: its last {files} file entries have no tree head after them (a commit's tree " \
           "head was removed: manifest truncated or edited)" in found
    assert any(p.startswith(f"{doc.name}: content differs from the manifest's SHA-256") and
               p.endswith(f"first altered event: {victim['event_id']}x (event #2)") for p in found), found


# --------------------------------------------------------------------------- known answers


VECTORS = json.loads((Path(__file__).parent / "vectors" / "tree_vectors.json").read_text(encoding="utf-8"))


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 MTH, straight from its definition (independent of merkle.py)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:])).digest()


def test_tree_vectors_of_events() -> None:
    events, leaves = VECTORS["events"], [bytes.fromhex(h) for h in VECTORS["leaf_hashes"]]
    assert len(events) == 5
    assert [canonical_event(e).decode() for e in events] == VECTORS["canonical"]
    assert [event_leaf_hash(e) for e in events] == leaves
    assert [hashlib.sha256(b"\x00" + t.encode()).digest() for t in VECTORS["canonical"]] == leaves
    assert [bytes(h) for h in leaf_hashes(normalize_batch(events))] == leaves  # the vectorized path
    for size, root in VECTORS["roots"].items():
        assert merkle.root(leaves[:int(size)]).hex() == _mth(leaves[:int(size)]).hex() == root
    nodes = _Nodes()
    nodes.segments.append((0, np.frombuffer(b"".join(leaves), np.uint8).reshape(-1, 32)))
    for v in VECTORS["inclusion"]:
        proof = [bytes.fromhex(h) for h in v["proof"]]
        assert merkle.inclusion_proof(leaves, v["index"], v["size"]) == proof == nodes.path(v["index"], 0, v["size"])
        assert merkle.verify_inclusion(leaves[v["index"]], v["index"], v["size"], proof,
                                       bytes.fromhex(VECTORS["roots"][str(v["size"])]))
    for v in VECTORS["consistency"]:
        proof = [bytes.fromhex(h) for h in v["proof"]]
        assert merkle.consistency_proof(leaves, v["old"], v["new"]) == proof
        assert nodes.subproof(v["old"], 0, v["new"], True) == proof
        assert merkle.verify_consistency(v["old"], v["new"], bytes.fromhex(VECTORS["roots"][str(v["old"])]),
                                         bytes.fromhex(VECTORS["roots"][str(v["new"])]), proof)


def test_a_real_export_of_the_vector_events_gives_the_vector_tree(tmp_path: Path) -> None:
    root = tmp_path / "vectors"
    events = VECTORS["events"]
    for commit in (events[:2], events[2:]):
        with AuditLogger(max_events=10**6, auto_export_path=root, signing_key=SIGNER) as audit:
            audit.log_batch(commit)
    heads = trees(root)
    assert [(t["size"], t["root"]) for t in heads] == [(2, VECTORS["roots"]["2"]), (5, VECTORS["roots"]["5"])]
    assert sum(e["kind"] == "parquet" for e in manifest(root)["entries"]) == 3  # 2025-03-01, then both days
    for v in VECTORS["inclusion"]:
        bundle = prove(root, events[v["index"]]["event_id"])
        assert bundle["leaf_index"] == v["index"] and bundle["proof"] == v["proof"]
        assert bundle["event"] == events[v["index"]] and verify_inclusion(bundle, VERIFIER).size == 5
    bundle = prove_consistency(root, heads[0]["checkpoint"])
    assert bundle["proof"] == next(v["proof"] for v in VECTORS["consistency"] if v["old"] == 2)
    assert verify_consistency(bundle, VERIFIER).root.hex() == VECTORS["roots"]["5"]


# --------------------------------------------------------------------------- the node builder


def _leaves(n: int) -> np.ndarray:
    return np.frombuffer(b"".join(merkle.leaf_hash(b"leaf %d" % i) for i in range(n)), np.uint8).reshape(n, 32)


def _cover(leaves: np.ndarray, first: int, end: int) -> list[tuple[int, int, bytes]]:
    """(position, height, root) of the perfect subtrees over [first, end), each aligned
    at its start, largest first: what retention keeps of a deleted part."""
    out = []
    while first < end:
        h = 0
        while first % (2 << h) == 0 and first + (2 << h) <= end:
            h += 1
        out.append((first, h, merkle.root(leaves[first:first + (1 << h)])))
        first += 1 << h
    return out


@st.composite
def split_logs(draw: st.DrawFn) -> tuple[int, list[int], list[bool]]:
    """A log size, the boundaries of its files, and which files retention deleted."""
    n = draw(st.integers(1, 300))
    cuts = sorted(draw(st.sets(st.integers(1, n - 1), max_size=12))) if n > 1 else []
    bounds = [0, *cuts, n]
    retired = draw(st.lists(st.booleans(), min_size=len(bounds) - 1, max_size=len(bounds) - 1))
    return n, bounds, retired


def _nodes(leaves: np.ndarray, bounds: list[int], retired: list[bool]) -> _Nodes:
    nodes = _Nodes()
    for (a, b), gone in zip(itertools.pairwise(bounds), retired, strict=True):
        if gone:
            for pos, h, node in _cover(leaves, a, b):
                nodes.subtrees[(pos, 1 << h)] = node
        else:
            nodes.segments.append((a, leaves[a:b]))
    return nodes


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(split_logs(), st.data())
def test_nodes_give_the_reference_proofs_over_split_and_retired_logs(log, data: st.DataObject) -> None:
    n, bounds, retired = log
    leaves = _leaves(n)
    as_bytes = [bytes(r) for r in leaves]
    nodes = _nodes(leaves, bounds, retired)
    root = merkle.root(leaves)
    assert nodes.mth(0, n) == root  # retention's subtrees stand in for their leaves
    gone = set()
    for (a, b), g in zip(itertools.pairwise(bounds), retired, strict=True):
        gone |= set(range(a, b)) if g else set()

    kept_positions = [i for i in range(n) if i not in gone]
    picks = [*data.draw(st.lists(st.integers(0, n - 1), max_size=8)), 0, n - 1, *kept_positions[:1],
             *kept_positions[-1:]]
    for i in sorted(set(picks)):
        expected = merkle.inclusion_proof(leaves, i, n)
        if i in gone:  # its leaf is gone: the proof cannot be made, but it is never a wrong one
            try:
                assert nodes.path(i, 0, n) == expected
            except ProofError:
                pass
            continue
        path = nodes.path(i, 0, n)
        assert path == expected
        assert merkle.verify_inclusion(as_bytes[i], i, n, path, root)

    # Tree heads fall on file boundaries: every consistency proof between two of them.
    sizes = bounds[1:]
    for old, new in itertools.combinations_with_replacement(sizes, 2):
        proof = nodes.subproof(old, 0, new, True)
        assert proof == merkle.consistency_proof(leaves, old, new)
        assert merkle.verify_consistency(old, new, merkle.root(leaves[:old]), merkle.root(leaves[:new]), proof)
    m = data.draw(st.integers(1, n))  # any size, not only a boundary
    try:
        proof = nodes.subproof(m, 0, n, True)
    except ProofError:
        assert any(a < m < b for (a, b), g in zip(itertools.pairwise(bounds), retired, strict=True) if g)
    else:
        assert proof == merkle.consistency_proof(leaves, m, n)


def test_nodes_refuse_a_position_nothing_covers() -> None:
    leaves = _leaves(6)
    nodes = _Nodes()
    nodes.segments.append((0, leaves[:2]))
    nodes.segments.append((4, leaves[4:]))  # [2, 4) neither in a file nor a stored subtree
    with pytest.raises(ProofError, match="log position 2 is in no file and no stored subtree"):
        nodes.mth(0, 6)
    assert nodes.path(5, 4, 6) == [bytes(leaves[4])]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(1, 25), min_size=1, max_size=4), st.data())
def test_end_to_end_proofs_over_random_commits(sizes: list[int], data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as d:
        _end_to_end(Path(d) / "exp", sizes, data)


def _end_to_end(root: Path, sizes: list[int], data: st.DataObject) -> None:
    log_commits(root, sizes, seed=sum(sizes))
    events = log_order(root)
    n = sum(sizes)
    assert len(events) == n and [t["size"] for t in trees(root)] == list(itertools.accumulate(sizes))
    for i in sorted({*data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=4)), n - 1}):
        bundle = prove(root, events[i]["event_id"])
        assert bundle["leaf_index"] == i and verify_inclusion(bundle, VERIFIER).size == n
    for t in trees(root):
        assert verify_consistency(prove_consistency(root, t["checkpoint"]), VERIFIER).size == n
        assert verify(root, public_key=VERIFIER, checkpoint=t["checkpoint"]).ok


def test_entries_appended_after_the_newest_signed_head_are_reported(folder: Path) -> None:
    """A record appended without the signing key (here a forged erasure that would
    hand a replaced event its old leaf) is covered by no signature: verify says so."""
    entries = manifest(folder)["entries"]
    forged = {"kind": "erasure", "file": None, "events": 1, "replaced": {}, "leaves": {}, "deleted": []}
    rehash(folder, [*entries, forged])
    assert axon_audit.verify(folder).ok  # without the public key nothing can tell
    found = axon_audit.verify(folder, public_key=VERIFIER).problems
    assert found == ["manifest.json: its last 1 entries follow the newest signed checkpoint, "
                     "so no signature covers them (appended without the key)"]
