"""Retention removes the expired events from the JSON copies as well as the Parquet
partitions, reports per file exactly what left the disk, and plans in a dry run
what the real run then does (sealed folders: the manifest checked, verify passing)."""

from __future__ import annotations

import hashlib
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import polars as pl
import pyarrow.parquet as pq
import pytest

from axon_audit import AuditLogger, AuditValueError, apply_retention, erase_subject, verify
from axon_audit.exceptions import ArchiveError
from axon_audit.integrity.checkpoint import SigningKey
from axon_audit.io.json_export import write_json_export
from axon_audit.io.parquet import write_parquet_partitions
from axon_audit.model.schema import normalize_batch
from axon_audit.read.sources import open_source
from axon_audit.workload import generate_events

UTC = timezone.utc
START = datetime(2026, 3, 1, tzinfo=UTC)
NOW = datetime(2026, 3, 7, 15, tzinfo=UTC)  # keep 3.5 days: cutoff Mar 4 03:00, so Mar 1..3 expire
HMAC = "retention-json-key"
SIGNER = SigningKey.generate("retention.json/test")


def build(root: Path, sealed: bool) -> Path:
    """300 events over 6 days, logged in time order with rotation every 60 events:
    the JSON exports cover consecutive spans, one of them across the cut-off."""
    events = generate_events(300, seed=4, start=START, days=6).sort("timestamp")
    if sealed:
        with AuditLogger(max_events=60, auto_export_path=root, hmac_key=HMAC, signing_key=SIGNER) as audit:
            for i in range(0, 300, 30):
                audit.log_batch(events.slice(i, 30))
        return root
    df = normalize_batch(events)  # a folder without a manifest: the files as a rotation names them
    write_parquet_partitions(df, root / "parquet")
    for i in range(0, 300, 60):
        chunk = df.slice(i, 60)
        write_json_export(chunk, root / f"audit_{chunk['timestamp'].max():%Y_%m_%d_%H%M%S}.json")
    return root


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> dict[bool, Path]:
    base = tmp_path_factory.mktemp("retjson")
    return {s: build(base / ("sealed" if s else "plain"), s) for s in (True, False)}


def copy_of(templates: dict[bool, Path], sealed: bool, tmp_path: Path) -> Path:
    return Path(shutil.copytree(templates[sealed], tmp_path / "audit"))


def json_events(root: Path) -> dict[str, list[dict]]:
    """Every JSON export's event objects, by file name."""
    return {p.name: orjson.loads(p.read_bytes())["events"] for p in sorted(root.glob("*.json"))
            if p.name != "manifest.json"}


def parquet_ids(root: Path) -> list[str]:
    parts = sorted((root / "parquet").rglob("*.parquet"))
    return sorted(pl.read_parquet(parts, hive_partitioning=False)["event_id"].to_list()) if parts else []


def hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")}


def plan_of(r) -> tuple:
    return (r.cutoff, r.expired_before, r.partitions, r.json_files, r.json_rewritten, r.removed,
            r.events, r.json_events, r.bytes)


@pytest.mark.parametrize("sealed", [True, False], ids=["sealed", "plain"])
def test_retention_removes_expired_events_from_both_copies_exactly(templates, tmp_path, sealed):
    root = copy_of(templates, sealed, tmp_path)
    keys = {"hmac_key": HMAC, "signing_key": SIGNER} if sealed else {}
    before_json, before_pq = json_events(root), parquet_ids(root)
    part_rows = {p: pq.read_metadata(p).num_rows for p in (root / "parquet").rglob("*.parquet")}
    was = hashes(root)

    dry = apply_retention(root, 3.5, now=NOW, dry_run=True)
    assert hashes(root) == was  # a dry run changes nothing
    if sealed:
        assert dry.manifest.startswith("sealed: ") and dry.manifest.endswith("keys needed: hmac/signing")
    else:
        assert dry.manifest == "no integrity manifest found"
    r = apply_retention(root, 3.5, now=NOW, **keys)
    assert plan_of(r) == plan_of(dry)  # the plan is what the real run did
    assert r.expired_before == datetime(2026, 3, 4, tzinfo=UTC)
    assert r.json_files and r.json_rewritten  # whole exports went, and one straddled the cut-off

    cut = r.expired_before.strftime("%Y-%m-%dT%H:%M:%S")
    after_json = json_events(root)
    assert all(e["timestamp"] >= cut for events in after_json.values() for e in events)  # no expired event left
    kept = {e["event_id"]: e for events in before_json.values() for e in events if e["timestamp"] >= cut}
    after_ids = [e["event_id"] for events in after_json.values() for e in events]
    assert sorted(after_ids) == sorted(kept)  # every kept event still there, once
    assert all(e == kept[e["event_id"]] for events in after_json.values() for e in events)  # unaltered
    assert parquet_ids(root) == sorted(kept)  # the Parquet copy holds the same events
    for source in (root, *r.json_rewritten):  # as the readers see the folder and each rewritten export
        read = open_source(source).scan().select("event_id", "timestamp").collect()
        assert read.filter(pl.col("timestamp") < r.expired_before).height == 0 and read.height

    # The counts are what a fresh read no longer finds, per kind and per file.
    assert r.json_events == sum(map(len, before_json.values())) - len(after_ids)
    assert r.events == len(before_pq) - len(parquet_ids(root))
    for path, n in r.removed.items():
        if path.suffix == ".json":
            assert n == len(before_json[path.name]) - len(after_json.get(path.name, []))
            assert (path in r.json_rewritten) == (path.name in after_json)
        else:
            assert n == part_rows[path] and not path.exists()
    assert {p for p in r.removed if p.suffix == ".json"} == {*r.json_files, *r.json_rewritten}
    for path in r.json_rewritten:
        doc = orjson.loads(path.read_bytes())
        assert doc["total_events"] == len(doc["events"]) == len(before_json[path.name]) - r.removed[path]

    if sealed:
        check = verify(root, key=HMAC, public_key=SIGNER.verifier())
        assert check.ok, check.problems
        assert len(check.retentions) == 1 and "JSON copies rewritten" in check.retentions[0]
        assert apply_retention(root, 3.5, now=NOW, dry_run=True).manifest.startswith("sealed: ")
    again = apply_retention(root, 3.5, now=NOW, **keys)  # nothing left to remove
    assert (again.partitions, again.json_files, again.json_rewritten, again.json_events) == ([], [], [], 0)


def test_an_erasure_after_retention_still_verifies(templates, tmp_path):
    root = copy_of(templates, True, tmp_path)
    r = apply_retention(root, 3.5, now=NOW, hmac_key=HMAC, signing_key=SIGNER)
    straddling = orjson.loads(r.json_rewritten[0].read_bytes())["events"]
    subject = next(e["user_id"] for e in straddling if e["user_id"])
    erase_subject(str(root), subject, hmac_key=HMAC, signing_key=SIGNER)  # rewrites the rewritten copy again
    assert all(e["user_id"] != subject for events in json_events(root).values() for e in events)
    check = verify(root, key=HMAC, public_key=SIGNER.verifier())
    assert check.ok, check.problems


def test_a_tampered_json_copy_is_refused_in_the_dry_run_and_the_real_run(templates, tmp_path):
    root = copy_of(templates, True, tmp_path)
    target = apply_retention(root, 3.5, now=NOW, dry_run=True).json_rewritten[0]
    target.write_bytes(target.read_bytes().replace(b'"SUCCESS"', b'"FAILURE"', 1))
    was = hashes(root)
    for dry in (True, False):
        with pytest.raises(AuditValueError, match=rf"{target.name} differs from the manifest's SHA-256"):
            apply_retention(root, 3.5, now=NOW, dry_run=dry, hmac_key=HMAC, signing_key=SIGNER)
        assert hashes(root) == was  # nothing removed


def test_the_dry_run_reports_a_broken_manifest(templates, tmp_path):
    root = copy_of(templates, True, tmp_path)
    wrong = apply_retention(root, 3.5, now=NOW, dry_run=True, hmac_key="not-the-key")
    assert wrong.manifest == "manifest problem: the HMAC of its head does not match the key given"
    with pytest.raises(AuditValueError, match="HMAC of its head does not match"):  # never re-signed with it
        apply_retention(root, 3.5, now=NOW, hmac_key="not-the-key", signing_key=SIGNER)
    doc = orjson.loads((root / "manifest.json").read_bytes())
    doc["entries"][1]["rows"] += 1  # an edited entry: its hash no longer holds
    (root / "manifest.json").write_bytes(orjson.dumps(doc))
    broken = apply_retention(root, 3.5, now=NOW, dry_run=True)
    assert broken.manifest == "manifest problem: entry #1 does not link to the one before it (run verify)"
    with pytest.raises(AuditValueError, match="entry #1 does not link"):
        apply_retention(root, 3.5, now=NOW, hmac_key=HMAC, signing_key=SIGNER)
    (root / "manifest.json").write_bytes(b"{not json")
    assert apply_retention(root, 3.5, now=NOW, dry_run=True).manifest.startswith("manifest problem: ")
    with pytest.raises(AuditValueError, match="manifest does not parse"):
        apply_retention(root, 3.5, now=NOW, hmac_key=HMAC, signing_key=SIGNER)


def test_a_json_export_of_only_kept_events_is_left_byte_for_byte(templates, tmp_path):
    root = copy_of(templates, False, tmp_path)
    was = hashes(root)
    r = apply_retention(root, 3.5, now=NOW)
    touched = {p.name for p in (*r.json_files, *r.json_rewritten)}
    untouched = {n for n in was if n.endswith(".json") and n not in touched}
    assert untouched and all(hashes(root)[n] == was[n] for n in untouched)
    assert NOW - timedelta(days=3.5) == r.cutoff


def test_an_old_chained_json_copy_to_rewrite_is_refused_by_name(templates, tmp_path):
    root = copy_of(templates, False, tmp_path)
    target = apply_retention(root, 3.5, now=NOW, dry_run=True).json_rewritten[0]
    doc = orjson.loads(target.read_bytes())
    doc["events"] = [{**e, "chain": "0" * 64} for e in doc["events"]]  # as the old format's exports carried it
    target.write_bytes(orjson.dumps(doc))
    was = hashes(root)
    for dry in (True, False):
        with pytest.raises(ArchiveError, match=rf"old hash-chained .*: {target.name}; nothing was removed"):
            apply_retention(root, 3.5, now=NOW, dry_run=dry)
        assert hashes(root) == was
