"""Tamper evidence: every kind of attack on an export folder is detected and named."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import axon_audit
from axon_audit import AuditLogger
from axon_audit.integrity import chain_v1, merkle
from axon_audit.integrity import manifest as _integrity
from axon_audit.integrity.leaf import event_leaf_hash, leaf_hashes
from axon_audit.io.json_export import event_objects
from axon_audit.io.layout import ExportLayout
from axon_audit.model.schema import from_arrow, normalize_batch, to_arrow
from axon_audit.workload import generate_events

KEY = "k3y"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Three rotations of 40 events each, every event distinct."""
    root = tmp_path / "exp"
    with AuditLogger(max_events=40, auto_export_path=root, hmac_key=KEY) as audit:
        for i in range(120):
            audit.log("store" if i % 3 else "recall", user_id=f"user_{i % 7}", entry_ids=[f"e{i}"],
                      metadata={"i": i}, duration_ms=float(i))
            if i % 40 == 39:
                audit.flush()
    return root


def manifest(root: Path) -> dict:
    return orjson.loads((root / "manifest.json").read_bytes())


def write_manifest(root: Path, doc: dict) -> None:
    (root / "manifest.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))


def json_files(root: Path) -> list[Path]:
    return [root / e["file"] for e in manifest(root)["entries"] if e["kind"] == "json"]


def parquet_files(root: Path) -> list[Path]:
    return [root / e["file"] for e in manifest(root)["entries"] if e["kind"] == "parquet"]


def event_lines(path: Path) -> tuple[list[bytes], list[bytes]]:
    lines = path.read_bytes().split(b"\n")
    return lines, lines[1:-2]


def problems(root: Path, key: str | None = KEY) -> list[str]:
    result = axon_audit.verify(root, key=key)
    assert result.ok is (not result.problems)
    return result.problems


def test_untouched_folder_verifies_with_counts(folder: Path) -> None:
    result = axon_audit.verify(folder, key=KEY)
    assert result.ok and result.problems == [] and result.hmac_checked
    entries = manifest(folder)["entries"]
    n_files = len([e for e in entries if "file" in e])
    assert result.files_checked == n_files >= 6  # files, not the tree entries
    assert len(entries) == n_files + 3  # one tree head per commit
    assert result.events_checked == 120  # each event once, replayed from its Parquet part
    assert result.tree_size == 120
    assert axon_audit.verify(folder).ok  # without the key: the HMAC is simply not checked


def test_modified_byte_names_file_and_event(folder: Path) -> None:
    target = json_files(folder)[1]
    _lines, events = event_lines(target)
    victim = orjson.loads(events[5].rstrip(b","))
    data = bytearray(target.read_bytes())
    at = data.index(b'"duration_ms":' + str(victim["duration_ms"]).encode())
    data[at + len('"duration_ms":')] ^= 1  # one digit of one event changes
    target.write_bytes(bytes(data))
    found = problems(folder)
    assert any(target.name in p and "SHA-256" in p for p in found)
    assert any(target.name in p and victim["event_id"] in p for p in found)


def test_deleted_file_is_named(folder: Path) -> None:
    gone = parquet_files(folder)[0]
    gone.unlink()
    found = problems(folder)
    assert found[0] == f"{gone.relative_to(folder).as_posix()}: missing (deleted or renamed)"


def test_inserted_file_is_named(folder: Path) -> None:
    extra = folder / "audit_2099_01_01_000000.json"
    shutil.copy(json_files(folder)[0], extra)
    assert problems(folder) == [f"{extra.name}: not listed in the manifest (inserted file)"]


def test_replaced_file_is_named(folder: Path) -> None:
    a, b = json_files(folder)[:2]
    shutil.copy(b, a)  # a well-formed export file, but not the one the manifest lists
    found = problems(folder)
    first_of_b = orjson.loads(event_lines(b)[1][0].rstrip(b","))["event_id"]
    assert any(p.startswith(f"{a.name}: content differs from the manifest's SHA-256") for p in found)
    assert any(p.startswith(f"{a.name}: ") and p.endswith(f"; first altered event: {first_of_b} (event #0)")
               for p in found), found


def test_reordered_files_are_detected(folder: Path) -> None:
    a, b = json_files(folder)[:2]
    tmp = a.with_suffix(".swap")
    a.rename(tmp); b.rename(a); tmp.rename(b)  # noqa: E702 - swap two files' names
    found = problems(folder)
    assert any(a.name in p for p in found) and any(b.name in p for p in found)


def test_reordered_manifest_entries_break_the_link(folder: Path) -> None:
    doc = manifest(folder)
    doc["entries"][1], doc["entries"][2] = doc["entries"][2], doc["entries"][1]
    write_manifest(folder, doc)
    assert "does not link to the entry before it" in problems(folder)[0]


def test_edited_event_is_named(folder: Path) -> None:
    target = json_files(folder)[2]
    _lines, events = event_lines(target)
    victim = orjson.loads(events[3].rstrip(b","))
    entry = victim["entry_ids"][0].encode()
    before = b'"user_id":"%s","session_id":null,"entry_ids":["%s"]' % (victim["user_id"].encode(), entry)
    after = b'"user_id":"someone_else","session_id":null,"entry_ids":["%s"]' % entry
    target.write_bytes(target.read_bytes().replace(before, after))
    assert named(problems(folder), target) == f"{victim['event_id']} (event #3)"


def named(found: list[str], doc: Path) -> str | None:
    """The event a problem names as the first altered one of JSON document `doc`."""
    marker = "; first altered event: "
    hits = [p.split(marker, 1)[1] for p in found if p.startswith(f"{doc.name}: ") and marker in p]
    return hits[0] if len(hits) == 1 else None


def _rewrite_events(path: Path, events: list[bytes]) -> None:
    lines, _ = event_lines(path)
    body = [e.rstrip(b",") for e in events]
    path.write_bytes(b"\n".join([lines[0], b",\n".join(body), *lines[-2:]]))


def test_deleted_event_is_named(folder: Path) -> None:
    target = json_files(folder)[0]
    _, events = event_lines(target)
    after = orjson.loads(events[11].rstrip(b","))["event_id"]
    _rewrite_events(target, events[:10] + events[11:])
    assert named(problems(folder), target) == f"{after} (event #10)"  # the event now in the deleted one's place


def test_reordered_events_are_named(folder: Path) -> None:
    target = json_files(folder)[1]
    _, events = event_lines(target)
    first_moved = orjson.loads(events[21].rstrip(b","))["event_id"]
    _rewrite_events(target, [*events[:20], events[21], events[20], *events[22:]])
    assert named(problems(folder), target) == f"{first_moved} (event #20)"


def test_edited_event_in_parquet_is_named(folder: Path) -> None:
    target = parquet_files(folder)[1]
    table = pq.read_table(target)
    df = pl.from_arrow(table)
    victim = df["event_id"][7]
    df = df.with_columns(pl.when(pl.col("event_id") == victim).then(pl.lit("FAILURE"))
                         .otherwise(pl.col("status").cast(pl.String)).alias("status"))
    pq.write_table(df.to_arrow().cast(table.schema), target)
    found = problems(folder)
    name = target.relative_to(folder).as_posix()
    assert f"{name}: content differs from the manifest's SHA-256 (modified or replaced)" in found
    assert f"{name}: event {victim} (row 7) differs from the intact JSON copy: altered, removed, inserted or " \
           "reordered there" in found
    # The log replayed from the parts no longer gives the commit's tree head (nor any later one).
    entries = manifest(folder)["entries"]
    at = next(i for i, e in enumerate(entries) if e.get("file") == name)
    heads = [i for i, e in enumerate(entries) if e["kind"] == "tree"]
    assert [any(p.startswith(f"manifest.json: tree head #{i} ") and "does not match the events" in p
                for p in found) for i in heads] == [i > at for i in heads]


def _rehash(root: Path, entries: list[dict], key: str | None) -> None:
    """What an attacker who knows the format (but not the key) can recompute."""
    prev = _integrity.GENESIS
    for i, e in enumerate(entries):
        e.update(index=i, prev=prev)
        e["hash"] = prev = _integrity.entry_hash(e)
    doc = {"format": _integrity.FORMAT, "entries": entries, "head": {"entries": len(entries), "hash": prev}}
    if key is not None:
        doc["hmac"] = _integrity.head_hmac(key.encode(), len(entries), prev)
    write_manifest(root, doc)


def drop_newest_commit(root: Path) -> list[dict]:
    """Delete the newest commit's files; return the entries before that commit."""
    entries = manifest(root)["entries"]
    last_json = max(i for i, e in enumerate(entries) if e["kind"] == "json")
    for e in entries[last_json:]:  # its JSON, its Parquet parts and its tree head
        if "file" in e:
            (root / e["file"]).unlink()
    assert entries[last_json - 1]["kind"] == "tree"  # the kept entries end on the previous commit's tree head
    return entries[:last_json]


def test_truncated_tail_is_detected_only_with_the_key(folder: Path) -> None:
    kept = drop_newest_commit(folder)
    _rehash(folder, kept, key=None)
    # Honest limit: without the key a consistent truncation cannot be told from a shorter history.
    assert axon_audit.verify(folder).ok
    found = problems(folder, key=KEY)
    assert found == ["manifest.json: no HMAC, but a key was given (manifest rewritten without the key)"]
    _rehash(folder, kept, key="guessed")
    assert "HMAC of the head does not match" in problems(folder, key=KEY)[0]


def test_full_rewrite_with_the_key_is_not_detectable(folder: Path) -> None:
    """The documented limit: whoever holds the key can rewrite history consistently."""
    _rehash(folder, drop_newest_commit(folder), key=KEY)
    result = axon_audit.verify(folder, key=KEY)
    assert result.ok and result.hmac_checked and result.tree_size == 80
    # (A signing key does not change this; a checkpoint an auditor kept does: see test_proofs.py.)


def test_manifest_edit_is_named(folder: Path) -> None:
    doc = manifest(folder)
    doc["entries"][0]["rows"] += 1
    write_manifest(folder, doc)
    assert problems(folder)[0].startswith("manifest.json: entry #0")


def test_missing_or_garbled_manifest(folder: Path, tmp_path: Path) -> None:
    (folder / "manifest.json").write_bytes(b"{not json")
    assert problems(folder)[0].startswith("manifest.json: unreadable")
    (folder / "manifest.json").unlink()
    assert problems(folder) == ["manifest.json: missing"]
    assert problems(tmp_path / "nowhere") == [f"{tmp_path / 'nowhere'}: not a folder"]
    with pytest.raises(axon_audit.AuditTypeError, match="path must be"):
        axon_audit.verify(3)  # type: ignore[arg-type]


_LOG_ONE_RUN = """
import sys
from axon_audit import AuditLogger
with AuditLogger(max_events=1000, auto_export_path=sys.argv[1]) as audit:
    for _i in range(10):
        audit.log("store", user_id=sys.argv[2])
"""


def log_order(root: Path) -> list[dict]:
    """Every exported event's JSON object, in log order (the commits' JSON documents, in manifest order)."""
    return [ev for e in manifest(root)["entries"] if e["kind"] == "json"
            for ev in orjson.loads((root / e["file"]).read_bytes())["events"]]


def test_log_continues_across_loggers_and_processes(tmp_path: Path) -> None:
    root = tmp_path / "exp"
    for run in range(3):
        if run == 1:  # another process appends to the same log
            subprocess.run([sys.executable, "-c", _LOG_ONE_RUN, str(root), "run1"], check=True, timeout=120)
            continue
        with AuditLogger(max_events=1000, auto_export_path=root) as audit:
            for _i in range(10):
                audit.log("store", user_id=f"run{run}")
    result = axon_audit.verify(root)
    assert result.ok and result.events_checked == 30 and result.tree_size == 30, result.problems
    entries = manifest(root)["entries"]
    trees = [e for e in entries if e["kind"] == "tree"]
    assert [t["size"] for t in trees] == [10, 20, 30]  # one log, not three
    assert [e["leaves"] for e in entries if e["kind"] == "json"] == [[0, 10], [10, 20], [20, 30]]
    assert [e["leaves"] for e in entries if e["kind"] == "parquet"] == [[0, 10], [10, 20], [20, 30]]
    events = log_order(root)
    assert [ev["user_id"] for ev in events] == ["run0"] * 10 + ["run1"] * 10 + ["run2"] * 10
    leaves = [event_leaf_hash(ev) for ev in events]
    assert [t["root"] for t in trees] == [merkle.root(leaves[:n]).hex() for n in (10, 20, 30)]


def test_exported_files_carry_exactly_the_fixed_columns_and_keys(folder: Path) -> None:
    for doc in json_files(folder):
        events = orjson.loads(doc.read_bytes())["events"]
        assert events and all(list(ev) == list(axon_audit.COLUMNS) for ev in events)  # no "chain" key
    for part in parquet_files(folder):
        assert pq.read_schema(part).names == list(axon_audit.COLUMNS)  # no chain column


def test_the_manifest_records_the_log_of_every_event(folder: Path) -> None:
    """Leaf ranges cover 0..N contiguously in both formats, and every tree head is the
    RFC 6962 tree of the events' leaves (computed here from the JSON, one event at a
    time) up to that point, with the compact range a writer extends."""
    entries = manifest(folder)["entries"]
    events = log_order(folder)
    assert len(events) == 120
    leaves = [event_leaf_hash(ev) for ev in events]
    # The vectorized path over the Parquet parts gives the same leaves, in the same order.
    parts = pl.concat([from_arrow(pq.read_table(p)) for p in parquet_files(folder)])
    assert [bytes(h) for h in leaf_hashes(parts)] == leaves
    for kind in ("json", "parquet"):
        ranges = [e["leaves"] for e in entries if e["kind"] == kind]
        assert ranges[0][0] == 0 and ranges[-1][1] == 120
        assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges)), ranges
        assert all(e["rows"] == e["leaves"][1] - e["leaves"][0] for e in entries if e["kind"] == kind)
    start = 0
    for i, e in enumerate(entries):
        if e["kind"] != "tree":
            continue
        commit = entries[start:i]
        (doc,) = [x for x in commit if x["kind"] == "json"]
        part_ranges = [x["leaves"] for x in commit if x["kind"] == "parquet"]
        assert part_ranges[0][0] == doc["leaves"][0] and part_ranges[-1][1] == doc["leaves"][1] == e["size"]
        compact = merkle.CompactRange()
        compact.extend(leaves[:e["size"]])
        assert e["root"] == merkle.root(leaves[:e["size"]]).hex() == compact.root().hex()
        assert e["range"] == [h.hex() for h in compact.hashes]
        assert "checkpoint" not in e  # no signing key given
        start = i + 1
    assert [e["size"] for e in entries if e["kind"] == "tree"] == [40, 80, 120]


def test_both_copies_altered_alike_is_detected_and_not_called_intact(folder: Path) -> None:
    """An attacker edits an event in the JSON document and in the Parquet part alike:
    no intact copy is left to name it by, but the tree head catches it, and the JSON
    finding must not claim its events are intact."""
    doc, part = json_files(folder)[1], parquet_files(folder)[1]
    _lines, events = event_lines(doc)
    victim = orjson.loads(events[4].rstrip(b","))
    doc.write_bytes(doc.read_bytes().replace(f'"entry_ids":["{victim["entry_ids"][0]}"]'.encode(),
                                             b'"entry_ids":["forged"]'))
    table = pq.read_table(part)
    df = pl.from_arrow(table).with_columns(
        pl.when(pl.col("event_id") == victim["event_id"]).then(pl.lit(["forged"]))
        .otherwise(pl.col("entry_ids")).alias("entry_ids"))
    pq.write_table(df.to_arrow().cast(table.schema), part)
    assert orjson.loads(event_lines(doc)[1][4].rstrip(b","))["entry_ids"] == ["forged"]  # both copies alike
    found = problems(folder)
    entries = manifest(folder)["entries"]
    at = next(i for i, e in enumerate(entries) if e.get("file") == part.relative_to(folder).as_posix())
    head = next(i for i, e in enumerate(entries) if e["kind"] == "tree" and i > at)
    assert any(p.startswith(f"manifest.json: tree head #{head} (size {entries[head]['size']}) does not match the "
                            "events") for p in found), found
    json_finding = [p for p in found if p.startswith(f"{doc.name}: ")]
    assert len(json_finding) == 1 and "SHA-256" in json_finding[0]
    assert "intact" not in json_finding[0] and "cannot be named" in json_finding[0], json_finding


def test_truncated_document_names_the_first_event_it_lost(folder: Path) -> None:
    doc = json_files(folder)[0]
    data = doc.read_bytes()
    _lines, events = event_lines(doc)
    doc.write_bytes(data[: data.index(events[30])] + events[30][:25])  # cut inside event #30's line
    assert named(problems(folder), doc) == "#30 (unparseable)"


# --------------------------------------------------------------------------- folders before the log


def _v1_hmac(key: bytes, count: int, head: str) -> str:
    """The head HMAC as format 1 wrote it (under its own format's name)."""
    return hmac.new(key, f"{_integrity.FORMAT_V1}:{count}:{head}".encode(), hashlib.sha256).hexdigest()


def write_v1_folder(root: Path, commits: list[pl.DataFrame], key: bytes | None) -> None:
    """An export folder as a logger before the export log wrote it (``axon_audit.manifest/1``):
    per event ``chain = sha256(previous || event text)``, an extra ``"chain"`` key after the
    fixed keys in JSON, a ``chain`` column in Parquet, one chain per format from 64 zeros,
    and ``chain_start``/``chain_end`` in each file's entry; no leaves, no tree."""
    layout = ExportLayout(root)
    root.mkdir(parents=True)
    new: list[dict] = []
    ends = {"json": chain_v1.GENESIS, "parquet": chain_v1.GENESIS}

    def entry(name: str, kind: str, df: pl.DataFrame, chain: list[str]) -> dict:
        data = (root / name).read_bytes()
        start = ends[kind]
        ends[kind] = chain[-1]
        stamp = "%Y-%m-%dT%H:%M:%S.%fZ"
        return {"file": name, "kind": kind, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                "rows": df.height, "first_event_id": df["event_id"][0], "last_event_id": df["event_id"][-1],
                "first_time": df["timestamp"].min().strftime(stamp), "last_time": df["timestamp"].max().strftime(stamp),
                "chain_start": start, "chain_end": chain[-1]}

    for n, df in enumerate(commits):
        objects = event_objects(df)
        chain = [h.hex() for h in chain_v1.chain_digests(objects, ends["json"])]
        lines = [o[:-1] + f',"chain":"{c}"}}' for o, c in zip(objects.to_list(), chain, strict=True)]
        name = f"audit_2025_01_0{n + 1}_120000.json"
        body = ",\n".join(lines)
        (root / name).write_bytes(f'{{"events": [\n{body}\n], "total_events": {df.height}, '
                                  f'"exported_at": "2025-01-0{n + 1}T12:00:00.000000Z"}}\n'.encode())
        new.append(entry(name, "json", df, chain))
        for (day,), part in df.with_columns(pl.Series("chain", chain)).group_by(
                pl.col("timestamp").dt.date(), maintain_order=True):
            path = layout.part_path(day)
            path.parent.mkdir(parents=True, exist_ok=True)
            table = to_arrow(part.drop("chain")).append_column("chain", pa.array(part["chain"].to_list()))
            pq.write_table(table, path)
            name = path.relative_to(root).as_posix()
            new.append(entry(name, "parquet", part, part["chain"].to_list()))
    doc = _integrity.build_manifest({"entries": []}, new, None, "2025-01-05T00:00:00.000000Z")
    doc["format"] = _integrity.FORMAT_V1
    assert all("leaves" not in e for e in doc["entries"]) and doc["entries"][0]["chain_start"] == "0" * 64
    if key is not None:
        doc["hmac"] = _v1_hmac(key, doc["head"]["entries"], doc["head"]["hash"])
    write_manifest(root, doc)


@pytest.fixture
def v1_folder(tmp_path: Path) -> Path:
    """Two old commits of 30 events each, each over two UTC days."""
    events = normalize_batch(generate_events(60, seed=3, days=4, start=datetime(2025, 1, 1, tzinfo=timezone.utc)))
    root = tmp_path / "old"
    write_v1_folder(root, [events.slice(0, 30), events.slice(30, 30)], KEY.encode())
    return root


def test_a_v1_folder_still_verifies(v1_folder: Path) -> None:
    entries = manifest(v1_folder)["entries"]
    assert manifest(v1_folder)["format"] == "axon_audit.manifest/1" and len(entries) >= 4
    result = axon_audit.verify(v1_folder, key=KEY)
    assert result.ok, result.problems
    assert result.hmac_checked and result.files_checked == len(entries)
    assert result.events_checked == 60 and result.tree_size == 0  # counted once; no log in an old folder
    assert "HMAC of the head does not match" in problems(v1_folder, key="wrong")[0]


def test_edits_to_a_v1_folder_are_named_by_its_chain(v1_folder: Path) -> None:
    doc = json_files(v1_folder)[1]
    _lines, events = event_lines(doc)
    victim = orjson.loads(events[6].rstrip(b","))
    doc.write_bytes(doc.read_bytes().replace(f'"event_id":"{victim["event_id"]}"'.encode(),
                                             f'"event_id":"{victim["event_id"][:-1]}X"'.encode()))
    part = parquet_files(v1_folder)[0]
    table = pq.read_table(part)
    df = pl.from_arrow(table)
    other = df["event_id"][2]
    df = df.with_columns(pl.when(pl.col("event_id") == other).then(pl.lit("edited"))
                         .otherwise(pl.col("user_id")).alias("user_id"))
    pq.write_table(df.to_arrow().cast(table.schema), part)  # the chain column copied as it was
    found = problems(v1_folder)
    name = part.relative_to(v1_folder).as_posix()
    assert f"{doc.name}: content differs from the manifest's SHA-256 (modified or replaced)" in found
    assert any(p.startswith(f"{doc.name}: event {victim['event_id'][:-1]}X (event #6): hash chain broken")
               for p in found), found
    assert any(p.startswith(f"{name}: event {other} (row 2): hash chain broken") for p in found), found
    assert len(found) == 4  # nothing else: the other files are intact


def test_a_v1_folder_goes_on_with_the_log(v1_folder: Path) -> None:
    """A new logger exports into the old folder: its events start the log at leaf 0,
    the old files stay checked by their chain, the head signed with the key."""
    with AuditLogger(auto_export_path=v1_folder, hmac_key=KEY) as audit:
        for i in range(7):
            audit.log("store", user_id=f"new{i}")
    doc = manifest(v1_folder)
    assert doc["format"] == _integrity.FORMAT
    assert [e["leaves"] for e in doc["entries"] if e["kind"] == "json" and "leaves" in e] == [[0, 7]]
    parts = [e["leaves"] for e in doc["entries"] if e["kind"] == "parquet" and "leaves" in e]
    assert parts[0][0] == 0 and parts[-1][1] == 7
    result = axon_audit.verify(v1_folder, key=KEY)
    assert result.ok and result.events_checked == 67 and result.tree_size == 7, result.problems
    old = json_files(v1_folder)[0]
    old.write_bytes(old.read_bytes().replace(b'"status":"SUCCESS"', b'"status":"FAILURE"', 1))
    found = problems(v1_folder)
    assert any(p.startswith(f"{old.name}: event ") and "(event #" in p and "hash chain broken" in p
               for p in found), found
