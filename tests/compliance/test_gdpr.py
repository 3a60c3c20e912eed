"""GDPR: subject access across sources; erasure leaves no byte of the subject in any file."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import orjson
import polars as pl
import pytest

from axon_audit import AuditLogger, AuditTypeError, AuditValueError, erase_subject, subject_access_report, verify
from axon_audit.workload import generate_events

UTC = timezone.utc
SUBJECT = "ann.lee@example.com"  # an id that is PII itself, with characters regexes care about
SESSION = "sess-ann.lee@example.com-1"


def test_subject_access_report_hand_counted(small_logger, tmp_path):
    r = subject_access_report(small_logger, "alice")
    d = r.to_dict()
    assert [e["event_id"] for e in d["events"]] == ["evt_a1", "evt_a2", "evt_a3", "evt_a4"]
    assert d["entries"] == ["e1", "e2"]
    assert [e["event_id"] for e in d["accessed_by_others"]] == ["evt_b2", "evt_b3", "evt_d2"]
    assert (d["events"], d["other_users"]) and d["other_users"] == 2
    assert d["first_event"] == "2026-11-03T09:00:00.000000Z"
    n = r.export(tmp_path / "alice.json")
    doc = json.loads((tmp_path / "alice.json").read_text())
    assert n == doc["total_events"] == 7
    assert [e["event_id"] for e in doc["events"]] == ["evt_a1", "evt_a2", "evt_a3", "evt_a4", "evt_b2",
                                                       "evt_b3", "evt_d2"]
    assert "Subject access report: alice" in r._repr_html_()
    nobody = subject_access_report(small_logger, "zed")
    assert nobody.to_dict()["events"] == [] and nobody.to_dict()["accessed_by_others"] == []
    with pytest.raises(AuditTypeError, match="user_id"):
        subject_access_report(small_logger, 42)


def subject_rows(n: int) -> list[dict]:
    base = datetime(2026, 11, 2, tzinfo=UTC)
    rows = []
    for i in range(n):
        rows.append({
            "timestamp": base.replace(day=2 + i % 20, hour=i % 24),
            "operation": ["STORE", "RECALL", "FORGET"][i % 3],
            "user_id": SUBJECT,
            "session_id": SESSION,
            "entry_ids": [f"entry_ann_{i}"],
            "metadata": {"contact": SUBJECT, "note": f"asked by {SUBJECT}", "n": i},
            "error_message": f"quota for {SUBJECT}" if i % 5 == 0 else None,
            "status": "FAILURE" if i % 5 == 0 else "SUCCESS",
        })
    return rows


def all_file_bytes(root: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in root.rglob("*") if p.is_file()]


def decoded_strings(path: Path) -> str:
    """Every value of a Parquet file as text (the bytes on disk are compressed)."""
    return pl.read_parquet(path).with_columns(pl.col("entry_ids").list.join("|")).cast(pl.String).write_csv()


@pytest.mark.parametrize("mode", ["pseudonymize", "remove"])
def test_erasure_across_memory_json_and_parquet(tmp_path, mode):
    folder = tmp_path / "audit"
    audit = AuditLogger(max_events=5_000, auto_export_path=folder)
    background = generate_events(12_000, seed=4, start=datetime(2026, 11, 1, tzinfo=UTC), days=25)
    rows = subject_rows(60)
    audit.log_batch(background.slice(0, 6_000))
    audit.log_batch(rows[:30])
    audit.log_batch(background.slice(6_000))
    audit.log_batch(rows[30:])  # these stay in memory
    audit.flush()
    assert any(SUBJECT.encode() in b for _, b in all_file_bytes(folder))  # it was there
    before_files = sorted(p.name for p in folder.rglob("*") if p.is_file())
    live = audit.scan(user_id=SUBJECT).collect().height

    result = erase_subject(audit, SUBJECT, mode=mode, requested_by="dpo_1")
    audit.close()

    assert result.events == 60 and result.files_rewritten
    for path, raw in all_file_bytes(folder):
        assert SUBJECT.encode() not in raw and SESSION.encode() not in raw, path
        if path.suffix == ".parquet":
            text = decoded_strings(path)
            assert SUBJECT not in text and SESSION not in text, path
    # Nothing else changed: same files (plus the erasure's own export), same events, other users intact.
    after_files = sorted(p.name for p in folder.rglob("*") if p.is_file())
    assert set(before_files) <= set(after_files)
    exported = pl.scan_parquet(folder / "parquet" / "**" / "*.parquet").collect()
    assert exported.height == 12_060 + 1  # close() exported the rest; +1: the erasure event
    assert live == 30 and result.memory_events_rewritten > 0  # live data was erased too, not only files
    others = background.select("user_id", "operation", "metadata").sort(pl.all())
    kept = exported.filter(pl.col("user_id").cast(pl.String).str.starts_with("user_"))
    assert kept.select(pl.col("user_id").cast(pl.String), pl.col("operation").cast(pl.String),
                       "metadata").sort(pl.all()).equals(others.with_columns(pl.col("operation").cast(pl.String)))
    erased = exported.filter(pl.col("entry_ids").list.first().str.contains("entry_ann_"))
    assert erased.height == 60
    if mode == "pseudonymize":
        assert erased["user_id"].cast(pl.String).unique().to_list() == [result.pseudonym]
        assert orjson.loads(erased["metadata"][0])["contact"] == result.pseudonym
    else:
        assert erased["user_id"].null_count() == 60 and erased["session_id"].null_count() == 60
        assert orjson.loads(erased["metadata"][0])["note"] == "asked by [erased]"
    # The erasure is an audit event, naming no one but the pseudonym.
    record = exported.filter(pl.col("event_id") == result.audit_event_id)
    assert record["user_id"].cast(pl.String).item() == "dpo_1"
    meta = orjson.loads(record["metadata"].item())
    assert meta["gdpr_erasure"] is True and meta["events"] == 60 and meta["files_rewritten"] == len(
        result.files_rewritten)
    assert subject_access_report(audit, SUBJECT).to_dict()["events"] == []
    check = verify(folder)  # the manifest was re-sealed, and says an erasure happened
    assert check.ok, check.problems
    assert len(check.erasures) == 1 and "60 events" in check.erasures[0]


def test_erasure_of_a_folder_alone_records_itself_there(tmp_path):
    folder = tmp_path / "exports"
    with AuditLogger(max_events=100, auto_export_path=folder) as audit:
        audit.log_batch([*subject_rows(10), {"operation": "STORE", "user_id": "bob", "metadata": {"x": 1}}])
    result = erase_subject(str(folder), SUBJECT)
    assert result.memory_events_rewritten == 0 and result.events == 10
    assert not any(SUBJECT.encode() in raw for _, raw in all_file_bytes(folder))
    assert any(b'"gdpr_erasure":true' in p.read_bytes() for p in folder.glob("*.json"))  # the record, as an export
    df = pl.scan_parquet(folder / "parquet" / "**" / "*.parquet").collect()
    assert df.height == 12 and df.filter(pl.col("user_id").cast(pl.String) == "bob").height == 1


def test_erasure_bad_arguments(tmp_path):
    with pytest.raises(AuditValueError, match="mode"):
        erase_subject(AuditLogger(), "ann", mode="shred")
    with pytest.raises(AuditValueError, match="does not exist"):
        erase_subject(tmp_path / "nope", "ann")
    with pytest.raises(AuditTypeError, match="cannot erase"):
        erase_subject(object(), "ann")
    with pytest.raises(AuditValueError, match="user_id"):
        erase_subject(AuditLogger(), " ")


def test_accessed_by_others_counts_only_entries_the_subject_stored_first():
    audit = AuditLogger()
    audit.log("store", user_id="ann", entry_ids=["x"])
    audit.log("store", user_id="bob", entry_ids=["x", "y"])
    audit.log("recall", user_id="carol", entry_ids=["x"])
    audit.log("recall", user_id="carol", entry_ids=["y"])
    ann = subject_access_report(audit, "ann").frames
    assert ann["entries"]["entry_id"].to_list() == ["x"]
    assert ann["accessed_by_others"]["user_id"].to_list() == ["bob", "carol"]
    bob = subject_access_report(audit, "bob").frames
    assert bob["entries"]["entry_id"].to_list() == ["y"]
    assert bob["accessed_by_others"].select("user_id", pl.col("entry_ids").list.first()).rows() == [("carol", "y")]


from hypothesis import HealthCheck, given, settings  # noqa: E402 - the property tests below import what they use here
from hypothesis import strategies as st  # noqa: E402 - the property tests below import what they use here


@pytest.mark.slow
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tail=st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]) | st.sampled_from('"\\@. -'),
                    min_size=1, max_size=12))
def test_erasure_of_any_id_leaves_no_bytes(tmp_path_factory, tail):
    subject = "subj_" + tail
    folder = tmp_path_factory.mktemp("erase")
    rows = [{"operation": "STORE", "user_id": subject, "session_id": f"{subject}-s", "entry_ids": ["e1"],
             "metadata": {"who": subject, "n": 1}, "error_message": f"by {subject}"},
            {"operation": "RECALL", "user_id": "other", "entry_ids": ["e1"], "metadata": {"note": "fine"}}]
    with AuditLogger(max_events=2, auto_export_path=folder) as audit:
        audit.log_batch(rows)  # rotated to files
        audit.log_batch(rows)  # and again
        audit.log_batch(rows[:1])  # and one in memory
        erase_subject(audit, subject, mode="remove")
        assert audit.query_events(user_id=subject) == []
    forms = {subject.encode(), json.dumps(subject)[1:-1].encode(),
             json.dumps(subject, ensure_ascii=True)[1:-1].encode()}
    for path, raw in all_file_bytes(folder):
        assert not any(f in raw for f in forms), path
        if path.suffix == ".parquet":
            assert subject not in decoded_strings(path)
    kept = pl.scan_parquet(folder / "parquet" / "**" / "*.parquet").collect()
    assert kept.filter(pl.col("user_id").cast(pl.String) == "other").height == 2
    assert kept.height == 6  # 5 events + the erasure record


def test_erasure_is_refused_whole_when_a_file_cannot_be_rewritten(tmp_path):
    folder = tmp_path / "audit"
    audit = AuditLogger(max_events=10, auto_export_path=folder)
    audit.log_batch(subject_rows(10))  # rotated to files
    audit.log_batch(subject_rows(3))  # in memory
    audit.flush()
    # A foreign Parquet file in a partition (e.g. with an extra column) stops the erasure before any change.
    foreign = pl.DataFrame({"event_id": ["x"], "extra": [1]})
    (folder / "parquet" / "date=2026-11-02").mkdir(parents=True, exist_ok=True)
    foreign.write_parquet(folder / "parquet" / "date=2026-11-02" / "zz-foreign.parquet")
    files = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    with pytest.raises(Exception, match="columns it does not know"):
        erase_subject(audit, SUBJECT)
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == files
    assert len(audit.query_events(user_id=SUBJECT)) == 3  # memory untouched too

