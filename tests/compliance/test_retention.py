"""apply_retention removes exactly the whole partitions and JSON exports older than the limit."""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axon_audit import AuditLogger, AuditValueError, apply_retention
from axon_audit.io.json_export import write_json_export
from axon_audit.io.parquet import write_parquet_partitions
from axon_audit.model.schema import normalize_batch
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
        for d in expected if (datetime.combine(d, datetime.min.time(), UTC) + timedelta(days=1)) < cutoff}
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

