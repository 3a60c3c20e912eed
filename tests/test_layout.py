"""`ExportLayout`: the names it makes parse back, and its listings are exactly what
a real rotation left on disk, the files every reader then reads."""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import axon_audit
from axon_audit import AuditArchive, AuditLogger, scan_lake
from axon_audit.io.atomic import atomic_write
from axon_audit.io.layout import ExportLayout
from axon_audit.io.location import resolve
from axon_audit.workload import generate_events

UTC = timezone.utc
DAYS = st.dates(min_value=date(1000, 1, 1), max_value=date(9999, 12, 31))
# strftime pads %Y to four digits only from year 1000 on
TIMES = st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59),
                     timezones=st.just(UTC))


@settings(max_examples=200, deadline=None)
@given(day=DAYS)
def test_a_part_path_parses_back_to_its_day(day: date) -> None:
    for layout in (ExportLayout(Path("/srv/audit")), ExportLayout(resolve("s3://lake/audit"))):
        part = layout.part_path(day)
        name = layout.name_of(part)
        assert name.startswith(f"parquet/date={day.isoformat()}/part-") and name.endswith(".parquet")
        assert layout.day_of(name) == day
    # A reader pointed at the parquet/ folder itself names parts without the prefix.
    assert ExportLayout(Path("/srv/audit/parquet")).day_of(f"{ExportLayout.partition_name(day)}/x.parquet") == day


@pytest.mark.parametrize("name", [
    "date=2025-13-01/x.parquet",  # the shape of a partition, not a day
    "date=2025-01-01",            # a file, not a folder
    "x/date=2025-01-01/y.parquet",  # not directly under the Parquet root
    "parquet/x.parquet",
    "date=2025-1-01/x.parquet",
])
def test_names_that_are_not_in_a_partition_have_no_day(name: str) -> None:
    assert ExportLayout(Path("/srv/audit")).day_of(name) is None


@settings(max_examples=200, deadline=None)
@given(at=TIMES, tag=st.sampled_from(["", "erasure"]), suffix=st.sampled_from(["", "_1", "_17", "_0a1b2c3d4e5f"]))
def test_a_rotation_name_parses_back_to_its_time(at: datetime, tag: str, suffix: str) -> None:
    name = ExportLayout.rotation_name(at, tag=tag)
    assert ExportLayout.rotation_time(name) == at.replace(microsecond=0)
    taken = name.removesuffix(".json") + suffix + ".json"  # as unique names extend it
    assert ExportLayout.rotation_time(taken) == at.replace(microsecond=0)
    assert ExportLayout.is_rotation_document(taken) and ExportLayout.is_export_document(taken)


@pytest.mark.parametrize("name, rotation, document", [
    ("manifest.json", False, False),
    (".audit_2025_01_15_120000.json", False, False),  # hidden: a write in progress
    ("trail.json", False, True),                      # a JSON export, not a rotation's
    ("manifests/w-000001.json", False, False),
    ("audit_2025_01_15_120000.json.tmp", False, False),
])
def test_which_json_files_are_export_documents(name: str, rotation: bool, document: bool) -> None:
    assert ExportLayout.is_rotation_document(name) == rotation
    assert ExportLayout.is_export_document(name) == document


def test_unique_names_never_collide_within_one_second(tmp_path: Path) -> None:
    at = datetime(2025, 1, 15, 12, 0, 0, tzinfo=UTC)
    local = ExportLayout(tmp_path)
    names = []
    for _ in range(300):
        path = local.unique_json_path(at)
        path.touch()  # taken now: the next call must pick another name
        names.append(path.name)
    assert len(set(names)) == 300 and names[:3] == [
        "audit_2025_01_15_120000.json", "audit_2025_01_15_120000_1.json", "audit_2025_01_15_120000_2.json"]
    assert {ExportLayout.rotation_time(n) for n in names} == {at}
    # atomic_write's no-overwrite names follow the same rule.
    written = atomic_write(tmp_path / names[0], lambda fh: fh.write(b"{}"), replace=False)
    assert written.name == "audit_2025_01_15_120000_300.json"

    remote = ExportLayout(resolve("s3://lake/audit"))  # no lock there: random suffixes, never checked
    objects = {remote.unique_json_path(at).name for _ in range(2000)}
    assert len(objects) == 2000 and {ExportLayout.rotation_time(n) for n in objects} == {at}
    parts = {ExportLayout.part_name() for _ in range(2000)}
    assert len(parts) == 2000


def _on_disk(root: Path) -> tuple[set[str], set[str]]:
    """The visible Parquet files and top-level JSON files under `root`, found by os.walk."""
    parquet, documents = set(), set()
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = Path(folder).relative_to(root).as_posix()
        for f in files:
            if f.startswith("."):
                continue
            if f.endswith(".parquet"):
                parquet.add(f if rel == "." else f"{rel}/{f}")
            elif f.endswith(".json") and rel == "." and f != "manifest.json":
                documents.add(f)
    return parquet, documents


@pytest.fixture
def rotated(tmp_path: Path) -> tuple[Path, pl.DataFrame]:
    """A folder a logger rotated into many times, its events spread over four UTC days."""
    root = tmp_path / "exp"
    events = generate_events(1_200, days=4, start=datetime(2025, 3, 1, 6, tzinfo=UTC))
    with AuditLogger(max_events=150, auto_export_path=root) as audit:
        for start in range(0, events.height, 100):
            audit.log_batch(events.slice(start, 100))
    return root, events


def test_listings_are_exactly_the_files_a_rotation_wrote(rotated: tuple[Path, pl.DataFrame]) -> None:
    root, events = rotated
    logged = events.height
    # Writes in progress: hidden temporary names, never listed.
    day_dir = root / "parquet" / "date=2025-03-02"
    (day_dir / ".part-x.parquet.4242-0a1b2c3d.tmp").write_bytes(b"half")
    (root / ".audit_2025_03_05_000000.json.4242-0a1b2c3d.tmp").write_bytes(b"half")
    parquet, documents = _on_disk(root)

    layout = ExportLayout(root)
    parts, docs = layout.parts(), layout.json_documents()
    assert [p.name for p in parts] == sorted(parquet) and [d.name for d in docs] == sorted(documents)
    assert len(docs) >= 5 and len(parts) > len(docs)  # several rotations, most spanning more than one day
    assert all(p.path == root / p.name for p in [*parts, *docs])
    assert [p.name for p in layout.parts(strict=True)] == [p.name for p in parts]
    assert layout.manifest_names() == ["manifest.json"]
    assert all(ExportLayout.rotation_time(d.name) is not None for d in docs)
    assert {p.day for p in parts} == set(events["timestamp"].dt.date())
    # The day parsed from each part's path is the UTC day of every event in it.
    for p in parts:
        days = pq.read_table(p.path, columns=["timestamp"]).column("timestamp").to_pylist()
        assert {t.date() for t in days} == {p.day}, p.name
    assert [(p.path, p.name, p.day) for p in ExportLayout(resolve(root)).parts()] == [
        (resolve(root) / p.name, p.name, p.day) for p in parts]  # the object-store listing agrees
    assert [d.name for d in ExportLayout(resolve(root)).json_documents()] == [d.name for d in docs]

    # Every reader reads exactly these files, and every event once.
    archive = AuditArchive(root)
    assert archive.source == "parquet" and archive.files() == [p.path for p in parts]
    assert archive.get_statistics()["total_events"] == logged
    json_archive = AuditArchive(root, source="json")
    assert json_archive.files() == [d.path for d in docs]
    assert json_archive.get_statistics()["total_events"] == logged
    assert scan_lake(root).select(pl.len()).collect().item() == logged
    assert sorted(scan_lake(root).collect()["event_id"]) == sorted(archive.scan().collect()["event_id"])
    result = axon_audit.verify(root)
    assert result.ok, result.problems
    assert result.files_checked == len(parts) + len(docs) and result.events_checked == logged == result.tree_size

    # A file no writer made is listed, so verify names it.
    stray = day_dir / "part-stray.parquet"
    stray.write_bytes(parts[0].path.read_bytes())
    assert stray in [p.path for p in layout.parts()]
    assert axon_audit.verify(root).problems == [
        "parquet/date=2025-03-02/part-stray.parquet: not listed in the manifest (inserted file)"]


def test_retention_and_the_day_pruning_use_the_same_days(rotated: tuple[Path, pl.DataFrame]) -> None:
    root, _ = rotated
    layout = ExportLayout(root)
    days = sorted({p.day for p in layout.parts() if p.day is not None})
    assert [d for _, d in layout.partitions()] == days
    first = days[0]
    pruned = AuditArchive(root).files(start_time=datetime(first.year, first.month, first.day, tzinfo=UTC),
                                      end_time=datetime(first.year, first.month, first.day, 23, tzinfo=UTC))
    assert pruned == [p.path for p in layout.parts() if p.day == first]
    next_midnight = datetime(first.year, first.month, first.day, tzinfo=UTC) + timedelta(days=1)
    dry = axon_audit.apply_retention(root, 0, now=next_midnight, dry_run=True)
    assert dry.partitions == [root / "parquet" / ExportLayout.partition_name(first)]
