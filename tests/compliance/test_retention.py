"""apply_retention removes exactly the whole partitions and JSON exports older than the limit; in a sealed
folder it records them with their log covers, so the export log still verifies."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import orjson
import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axon_audit import AuditLogger, AuditValueError, apply_retention, erase_subject, verify
from axon_audit.integrity.checkpoint import SigningKey
from axon_audit.integrity.leaf import leaf_hashes
from axon_audit.integrity.manifest import entry_hash
from axon_audit.integrity.merkle import root as merkle_root
from axon_audit.integrity.replay import read_part
from axon_audit.io.json_export import write_json_export
from axon_audit.io.parquet import write_parquet_partitions
from axon_audit.model.schema import normalize_batch, to_arrow
from axon_audit.workload import generate_events

UTC = timezone.utc
START = datetime(2026, 10, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """20 days of events as date partitions, plus one JSON export per day named at that day's end."""
    root = tmp_path_factory.mktemp("retention")
    df = normalize_batch(generate_events(4_000, seed=9, start=START, days=20))
    write_parquet_partitions(df, root / "parquet")
    for (day,), part in df.group_by(pl.col("timestamp").dt.date(), maintain_order=True):
        name = (datetime.combine(day, datetime.min.time(), UTC) + timedelta(days=1)).strftime(
            "audit_%Y_%m_%d_%H%M%S.json")
        write_json_export(part, root / name)
    return root


def partition_days(root: Path) -> set[date]:
    return {date.fromisoformat(p.name[5:]) for p in (root / "parquet").glob("date=*")}


@settings(max_examples=60, deadline=None)
@given(now=st.datetimes(min_value=datetime(2026, 10, 1), max_value=datetime(2026, 11, 5), timezones=st.just(UTC)),
       keep=st.floats(0, 40, allow_nan=False))
def test_dry_run_selects_exactly_the_expired_units(folder, now, keep):
    r = apply_retention(folder, keep, now=now, dry_run=True)
    cutoff = now - timedelta(days=keep)
    expected = {d for d in partition_days(folder)
                if datetime.combine(d + timedelta(days=1), datetime.min.time(), UTC) <= cutoff}
    assert {date.fromisoformat(p.name[5:]) for p in r.partitions} == expected
    # Each JSON export holds one day and is named at that day's end: it goes with its partition.
    assert {p.name for p in r.json_files} == {
        (datetime.combine(d, datetime.min.time(), UTC) + timedelta(days=1)).strftime("audit_%Y_%m_%d_%H%M%S.json")
        for d in expected} and r.json_rewritten == []
    assert r.json_events == r.events
    events = pl.scan_parquet([f for p in r.partitions for f in p.glob("*.parquet")]).select(pl.len()).collect().item() \
        if r.partitions else 0
    assert r.events == events and r.dry_run
    assert partition_days(folder) == {START.date() + timedelta(days=i) for i in range(20)}  # nothing removed


def test_removes_exactly_and_keeps_the_rest_readable(folder, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(folder, root)
    before = pl.scan_parquet(root / "parquet" / "**" / "*.parquet").collect()
    now = datetime(2026, 10, 20, 6, tzinfo=UTC)
    r = apply_retention(root, 7, now=now)  # cutoff Oct 13 06:00: Oct 1..12 go
    assert sorted(p.name for p in r.partitions) == [f"date=2026-10-{d:02d}" for d in range(1, 13)]
    assert not any(p.exists() for p in [*r.partitions, *r.json_files]) and len(r.json_files) == 12
    after = pl.scan_parquet(root / "parquet" / "**" / "*.parquet").collect()
    assert after.equals(before.filter(pl.col("timestamp") >= datetime(2026, 10, 13, tzinfo=UTC)))
    assert r.events == before.height - after.height
    assert sorted(p.name for p in root.glob("*.json"))[0] == "audit_2026_10_14_000000.json"
    again = apply_retention(root, 7, now=now)
    assert again.partitions == [] and again.json_files == []
    assert "Retention" in r._repr_html_()


def test_json_export_holding_newer_events_is_kept(tmp_path):
    # Named at the start of October but holding an event of November: not expired as a whole.
    df = normalize_batch([{"operation": "store", "timestamp": datetime(2026, 11, 2, tzinfo=UTC)}])
    write_json_export(df, tmp_path / "audit_2026_10_01_000000.json")
    r = apply_retention(tmp_path, 1, now=datetime(2026, 10, 20, tzinfo=UTC))
    assert r.json_files == []


def test_bad_arguments(tmp_path):
    with pytest.raises(AuditValueError, match="keep_days"):
        apply_retention(tmp_path, -1)
    with pytest.raises(AuditValueError, match="does not exist"):
        apply_retention(tmp_path / "missing", 3)
    with AuditLogger(auto_export_path=tmp_path) as audit:
        audit.log("store")
    assert apply_retention(tmp_path, 0, dry_run=True).partitions == []  # today's partition is not over yet



# --------------------------------------------------------------------------- sealed folders: the export log

HMAC = "retention-hmac-key"
NOW = datetime(2026, 10, 20, 6, tzinfo=UTC)  # keep 7 days: the partitions of Oct 1..12 go


def sealed(root: Path, signing_key: SigningKey | None = None, hmac_key: str | None = HMAC) -> Path:
    """20 days of events over several export commits (each a JSON document and a part per day it holds)."""
    events = generate_events(4_000, seed=9, start=START, days=20)
    with AuditLogger(max_events=900, auto_export_path=root, hmac_key=hmac_key, signing_key=signing_key) as audit:
        for i in range(0, 4_000, 800):
            audit.log_batch(events.slice(i, 800))
    assert len([e for e in entries_of(root) if e["kind"] == "tree"]) >= 2  # the expired days span commits
    return root


def entries_of(root: Path) -> list[dict]:
    return orjson.loads((root / "manifest.json").read_bytes())["entries"]


def relink(root: Path, change: Callable[[list[dict]], None]) -> None:
    """Edit the manifest's entries and re-link them (hashes and head) as a forger without the HMAC key could."""
    doc = orjson.loads((root / "manifest.json").read_bytes())
    change(doc["entries"])
    prev = "0" * 64
    for i, e in enumerate(doc["entries"]):
        e.update(index=i, prev=prev)
        e["hash"] = prev = entry_hash(e)
    doc["head"] = {"entries": len(doc["entries"]), "hash": prev}
    (root / "manifest.json").write_bytes(orjson.dumps(doc))


def expected_cover(leaves: list[bytes], first: int) -> list[list]:
    """The perfect aligned subtrees over [first, first + len(leaves)), written out plainly."""
    out, p, end = [], first, first + len(leaves)
    while p < end:
        h = 0
        while p % (2 ** (h + 1)) == 0 and p + 2 ** (h + 1) <= end:
            h += 1
        out.append([h, merkle_root(leaves[p - first:p - first + 2 ** h]).hex()])
        p += 2 ** h
    return out


def test_sealed_retention_records_covers_and_verifies(tmp_path):
    signer = SigningKey.generate("audit.example/retention")
    root = sealed(tmp_path / "sealed", signer)
    before = verify(root, key=HMAC, public_key=signer.verifier())
    assert before.ok, before.problems
    kept = next(iter(before.checkpoints.values()))
    entries = entries_of(root)
    expired = [e for e in entries if e["kind"] == "parquet" and e["first_time"] < "2026-10-13"]
    leaves = {e["file"]: [bytes(x) for x in leaf_hashes(read_part((root / e["file"]).read_bytes()))]
              for e in expired}

    with pytest.raises(AuditValueError, match="signing_key"):  # a signed folder's record is signed too
        apply_retention(root, 7, now=NOW, hmac_key=HMAC)
    r = apply_retention(root, 7, now=NOW, hmac_key=HMAC, signing_key=signer)

    assert sorted(p.name for p in r.partitions) == [f"date=2026-10-{d:02d}" for d in range(1, 13)]
    assert r.manifest == "recorded in the integrity manifest"
    assert r.json_files or r.json_rewritten  # documents are named today, yet hold expired events: they lose them
    after = entries_of(root)
    assert after[:len(entries)] == entries  # append only: the tree heads and their checkpoints as they were
    entry, head = after[len(entries):]  # the record, then the unchanged tree head re-signed over it
    assert head["kind"] == "tree" and head["root"] == entries[-1]["root"] and head["checkpoint"]
    docs = sorted(p.name for p in r.json_files)
    assert entry["kind"] == "retention" and sorted(entry["removed"]) == sorted([*leaves, *docs])
    assert sorted(entry["covers"]) == sorted(leaves) and entry["events"] == sum(map(len, leaves.values()))
    for e in expired:  # each part's cover: its log range, as the perfect aligned subtrees of its events' leaves
        assert entry["covers"][e["file"]] == expected_cover(leaves[e["file"]], e["leaves"][0])
        assert sum(2 ** h for h, _ in entry["covers"][e["file"]]) == e["leaves"][1] - e["leaves"][0]
    check = verify(root, key=HMAC, public_key=signer.verifier(), checkpoint=kept)
    assert check.ok, check.problems
    assert check.tree_size == before.tree_size and check.events_checked == before.events_checked - r.events
    assert len(check.retentions) == 1 and f"{len(leaves) + len(docs)} files ({r.events} events)" in check.retentions[0]


def _retention(entries: list[dict]) -> dict:
    return next(e for e in reversed(entries) if e["kind"] == "retention")


def _flip_a_node(entries: list[dict]) -> None:
    cover = next(iter(_retention(entries)["covers"].values()))
    cover[0][1] = ("0" if cover[0][1][0] != "0" else "1") + cover[0][1][1:]


def _merge_two_nodes(entries: list[dict]) -> None:
    name, cover = next((n, c) for n, c in _retention(entries)["covers"].items() if len(c) > 1)
    _retention(entries)["covers"][name] = [[cover[0][0] + 1, cover[0][1]], *cover[2:]]


def _drop_a_cover(entries: list[dict]) -> None:
    _retention(entries)["covers"].pop(next(iter(_retention(entries)["covers"])))


@pytest.mark.parametrize(("forge", "problem"), [
    (_flip_a_node, "does not match the events of its files"),
    (_merge_two_nodes, "its retention cover"),
    (_drop_a_cover, "deleted by retention without its log cover"),
])
def test_a_forged_cover_is_detected(tmp_path, forge, problem):
    root = sealed(tmp_path / "sealed", hmac_key=None)  # no HMAC: the forger can re-link the manifest
    apply_retention(root, 7, now=NOW)
    assert verify(root).ok
    relink(root, forge)
    check = verify(root)
    assert not check.ok
    assert any(problem in p for p in check.problems), check.problems


def test_retention_refuses_a_tampered_part_and_changes_nothing(tmp_path):
    root = sealed(tmp_path / "sealed")
    part = next(iter(sorted((root / "parquet" / "date=2026-10-03").glob("*.parquet"))))
    df = read_part(part.read_bytes())
    pq.write_table(to_arrow(df.with_columns(pl.col("duration_ms").fill_null(0) + 1)), part)
    files = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    with pytest.raises(AuditValueError, match=r"differs from the manifest's SHA-256 .* nothing was removed"):
        apply_retention(root, 7, now=NOW, hmac_key=HMAC)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == files
    with pytest.raises(AuditValueError, match=r"hmac_key: .* signed manifest"):
        apply_retention(root, 7, now=NOW)


def test_retention_of_erased_parts_covers_the_logged_leaves(tmp_path):
    root = sealed(tmp_path / "sealed")
    subject = "user_00003"
    assert pl.scan_parquet(root / "parquet" / "date=2026-10-02" / "*.parquet").filter(
        pl.col("user_id").cast(pl.String) == subject).collect().height
    erase_subject(str(root), subject, hmac_key=HMAC)  # rewrites parts that retention then deletes
    apply_retention(root, 7, now=NOW, hmac_key=HMAC)
    erasure, retention = (e for e in entries_of(root) if e["kind"] in ("erasure", "retention"))
    erased_and_deleted = set(erasure["replaced"]) & set(retention["covers"])
    assert erased_and_deleted and set(erasure["replaced"]) - set(retention["covers"])  # some go, some stay
    check = verify(root, key=HMAC)
    assert check.ok, check.problems
    assert len(check.erasures) == 1 and len(check.retentions) == 1
