"""Tamper evidence: every kind of attack on an export folder is detected and named."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import orjson
import polars as pl
import pyarrow.parquet as pq
import pytest

import axon_audit
from axon_audit import AuditLogger
from axon_audit.integrity import manifest as _integrity
from axon_audit.integrity import verify as _verify

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
    n_files = len(manifest(folder)["entries"])
    assert result.files_checked == n_files >= 6
    assert result.events_checked == 240  # 120 in JSON + the same 120 in Parquet
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
    assert any(a.name in p and "SHA-256" in p for p in found)
    assert any(a.name in p and "hash chain broken" in p for p in found)


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
    chain_problems = [p for p in problems(folder) if "hash chain broken" in p]
    assert chain_problems and victim["event_id"] in chain_problems[0]


def _rewrite_events(path: Path, events: list[bytes]) -> None:
    lines, _ = event_lines(path)
    body = [e.rstrip(b",") for e in events]
    path.write_bytes(b"\n".join([lines[0], b",\n".join(body), *lines[-2:]]))


def test_deleted_event_is_named(folder: Path) -> None:
    target = json_files(folder)[0]
    _, events = event_lines(target)
    after = orjson.loads(events[11].rstrip(b","))["event_id"]
    _rewrite_events(target, events[:10] + events[11:])
    chain = [p for p in problems(folder) if "hash chain broken" in p]
    assert chain and after in chain[0]


def test_reordered_events_are_named(folder: Path) -> None:
    target = json_files(folder)[1]
    _, events = event_lines(target)
    first_moved = orjson.loads(events[21].rstrip(b","))["event_id"]
    _rewrite_events(target, [*events[:20], events[21], events[20], *events[22:]])
    chain = [p for p in problems(folder) if "hash chain broken" in p]
    assert chain and first_moved in chain[0]


def test_edited_event_in_parquet_is_named(folder: Path) -> None:
    target = parquet_files(folder)[1]
    table = pq.read_table(target)
    df = pl.from_arrow(table)
    victim = df["event_id"][7]
    df = df.with_columns(pl.when(pl.col("event_id") == victim).then(pl.lit("FAILURE"))
                         .otherwise(pl.col("status").cast(pl.String)).alias("status"))
    pq.write_table(df.to_arrow().cast(table.schema), target)
    found = problems(folder)
    assert any(target.name in p and victim in p and "hash chain broken" in p for p in found)


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


def test_truncated_tail_is_detected_only_with_the_key(folder: Path) -> None:
    doc = manifest(folder)
    last_json = max(i for i, e in enumerate(doc["entries"]) if e["kind"] == "json")
    kept = doc["entries"][:last_json]  # drop the newest export: its JSON and its Parquet files
    for e in doc["entries"][last_json:]:
        (folder / e["file"]).unlink()
    _rehash(folder, kept, key=None)
    # Honest limit: without the key a consistent truncation cannot be told from a shorter history.
    assert axon_audit.verify(folder).ok
    found = problems(folder, key=KEY)
    assert found == ["manifest.json: no HMAC, but a key was given (manifest rewritten without the key)"]
    _rehash(folder, kept, key="guessed")
    assert "HMAC of the head does not match" in problems(folder, key=KEY)[0]


def test_full_rewrite_with_the_key_is_not_detectable(folder: Path) -> None:
    """The documented limit: whoever holds the key can rewrite history consistently."""
    doc = manifest(folder)
    _rehash(folder, doc["entries"][:-1], key=None)
    (folder / doc["entries"][-1]["file"]).unlink()
    _rehash(folder, manifest(folder)["entries"], key=KEY)
    assert axon_audit.verify(folder, key=KEY).ok


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


def test_chain_continues_across_loggers_and_processes(tmp_path: Path) -> None:
    root = tmp_path / "exp"
    for run in range(3):
        with AuditLogger(max_events=1000, auto_export_path=root) as audit:
            for _i in range(10):
                audit.log("store", user_id=f"run{run}")
    result = axon_audit.verify(root)
    assert result.ok and result.events_checked == 60
    entries = manifest(root)["entries"]
    jsons = [e for e in entries if e["kind"] == "json"]
    assert [e["chain_start"] for e in jsons[1:]] == [e["chain_end"] for e in jsons[:-1]]


def test_exported_files_carry_the_chain_as_an_extra_key_and_column(folder: Path) -> None:
    doc = orjson.loads(json_files(folder)[0].read_bytes())
    ev = doc["events"][0]
    assert list(ev)[:10] == list(axon_audit.COLUMNS) and list(ev)[10:] == ["chain"]
    expected = hashlib.sha256(bytes(32) + json_files(folder)[0].read_bytes().split(b"\n")[1]
                              .rstrip(b",")[: -_verify._CHAIN_SUFFIX_LEN] + b"}").hexdigest()
    assert ev["chain"] == expected
    table = pq.read_table(parquet_files(folder)[0])
    assert table.column_names == [*axon_audit.COLUMNS, "chain"]
    assert table.column("chain")[0].as_py() == ev["chain"]
