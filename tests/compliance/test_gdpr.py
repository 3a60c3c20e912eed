"""GDPR: subject access across sources; erasure leaves no byte of the subject in any file."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import orjson
import polars as pl
import pyarrow.parquet as pq
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
    live = audit.scan(user_id=SUBJECT, include_archived=False).collect().height

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
    assert len(audit.query_events(user_id=SUBJECT, include_archived=False)) == 3  # memory untouched too



# --------------------------------------------------------------------------- sealed folders: the export log

from axon_audit import ArchiveError  # noqa: E402 - the sealed-folder tests below
from axon_audit.integrity.checkpoint import SigningKey  # noqa: E402
from axon_audit.integrity.leaf import leaf_hashes  # noqa: E402
from axon_audit.integrity.manifest import append_entries, sha256_file  # noqa: E402
from axon_audit.integrity.replay import read_part  # noqa: E402
from axon_audit.io.json_export import write_json_export  # noqa: E402
from axon_audit.model.schema import normalize_batch, to_arrow  # noqa: E402

HMAC = "gdpr-hmac-key"


def sealed_folder(root: Path, signing_key: SigningKey | None = None, hmac_key: str | None = HMAC) -> Path:
    """Several export commits (many parts each) of background events with the subject's 40 among them."""
    background = generate_events(3_000, seed=11, start=datetime(2026, 11, 1, tzinfo=UTC), days=20)
    with AuditLogger(max_events=700, auto_export_path=root, hmac_key=hmac_key, signing_key=signing_key) as audit:
        audit.log_batch(background.slice(0, 1_500))
        audit.log_batch(subject_rows(40))
        audit.log_batch(background.slice(1_500))
    return root


def entries_of(root: Path) -> list[dict]:
    return orjson.loads((root / "manifest.json").read_bytes())["entries"]


def logged_events(root: Path, entries: list[dict]) -> dict[int, tuple[str | None, bytes]]:
    """Each log position's (user_id, leaf hash), read from the folder's Parquet parts as they are now."""
    out = {}
    for e in entries:
        if e.get("kind") == "parquet" and "leaves" in e and (root / e["file"]).exists():
            df = read_part((root / e["file"]).read_bytes())
            for i, (user, leaf) in enumerate(zip(df["user_id"].cast(pl.String), leaf_hashes(df), strict=True)):
                out[e["leaves"][0] + i] = (user, leaf.tobytes())
    return out


def assert_subject_gone(root: Path, subject: str = SUBJECT, *, manifest: bool = True) -> None:
    for path, raw in all_file_bytes(root):
        if path.name == "manifest.json" and not manifest:
            continue
        assert subject.encode() not in raw, path
        if path.suffix == ".parquet":
            assert subject not in decoded_strings(path), path


def alter_one_event(path: Path, user: str | None = None) -> None:
    """Rewrite a Parquet part with one event's duration changed (the first of `user`, or
    of anyone else when `user` is None): what an attacker would do."""
    df = read_part(path.read_bytes())
    who = pl.col("user_id").cast(pl.String)
    hit = (who == user) if user is not None else who.str.starts_with("user_")  # a background user
    first = df.with_row_index("i").filter(hit)["i"][0]
    df = df.with_columns(pl.when(pl.int_range(pl.len()) == first).then(pl.lit(99_999.0)).otherwise("duration_ms")
                         .alias("duration_ms"))
    pq.write_table(to_arrow(df), path)


def test_sealed_erasure_appends_one_entry_and_keeps_the_log(tmp_path):
    signer = SigningKey.generate("audit.example/gdpr")
    folder = sealed_folder(tmp_path / "sealed", signer)
    before = verify(folder, key=HMAC, public_key=signer.verifier())
    assert before.ok, before.problems
    kept = next(iter(before.checkpoints.values()))  # an auditor's copy of the newest signed head
    entries = entries_of(folder)
    events = logged_events(folder, entries)
    subject_positions = {p for p, (user, _) in events.items() if user == SUBJECT}
    assert len(subject_positions) == 40

    result = erase_subject(str(folder), SUBJECT, hmac_key=HMAC, signing_key=signer, requested_by="dpo")

    after = entries_of(folder)
    assert after[:len(entries)] == entries  # append only: every earlier entry, tree head and checkpoint as it was
    erasure, head, *record = after[len(entries):]
    assert erasure["kind"] == "erasure" and erasure["events"] == 40 and erasure["deleted"] == []
    newest = [e for e in entries if e["kind"] == "tree"][-1]
    # The unchanged tree head, signed again over the erasure entry; then the erasure's own record,
    # one more commit (JSON, its part, a signed tree head one event larger).
    assert head["kind"] == "tree" and head["root"] == newest["root"] and head["checkpoint"] != newest["checkpoint"]
    assert [e["kind"] for e in record] == ["json", "parquet", "tree"]
    assert record[-1]["size"] == newest["size"] + 1 and record[-1]["checkpoint"]
    # Every altered event is listed by position with the leaf it was logged with.
    assert {int(p) for p in erasure["leaves"]} == subject_positions
    assert all(bytes.fromhex(h) == events[int(p)][1] for p, h in erasure["leaves"].items())
    # Each rewritten file is listed with its new content.
    assert sorted(erasure["replaced"]) == sorted(p.relative_to(folder).as_posix() for p in result.files_rewritten)
    assert {".json", ".parquet"} == {p.suffix for p in result.files_rewritten}
    for name, now in erasure["replaced"].items():
        assert sha256_file(folder / name) == (now["sha256"], now["bytes"])
    now_events = logged_events(folder, entries)
    assert all((now_events[p][1] != events[p][1]) == (p in subject_positions) for p in events)
    assert_subject_gone(folder)

    check = verify(folder, key=HMAC, public_key=signer.verifier(), checkpoint=kept)
    assert check.ok, check.problems
    assert check.tree_size == newest["size"] + 1 and check.events_checked == newest["size"] + 1
    assert len(check.erasures) == 1 and "40 events" in check.erasures[0]


@pytest.mark.parametrize("how", ["alter an erased event", "alter another event of a rewritten part",
                                 "alter a rewritten document", "restore the original"])
def test_tampering_with_an_erased_file_is_detected(tmp_path, how):
    folder = sealed_folder(tmp_path / "sealed")
    originals = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    result = erase_subject(str(folder), SUBJECT, hmac_key=HMAC)
    assert verify(folder, key=HMAC).ok
    parts = [p for p in result.files_rewritten if p.suffix == ".parquet"]
    part = max(parts, key=lambda p: pq.read_metadata(p).num_rows)  # one with other users' events too
    document = next(p for p in result.files_rewritten if p.suffix == ".json")
    if how == "alter an erased event":
        alter_one_event(part, result.pseudonym)
        target = part
    elif how == "alter another event of a rewritten part":
        alter_one_event(part)
        target = part
    elif how == "alter a rewritten document":
        document.write_bytes(document.read_bytes().replace(result.pseudonym.encode(), b"someone_else", 1))
        target = document
    else:  # the subject's data put back
        part.write_bytes(originals[part])
        target = part
    check = verify(folder, key=HMAC)
    assert not check.ok
    name = target.relative_to(folder).as_posix()
    assert f"{name}: content differs from the manifest's SHA-256 (modified or replaced)" in check.problems[0]
    # An erased event's leaf is the one the erasure entry lists, so only the SHA-256 guards what it says now;
    # any other event of the part is replayed from the file, and the tree heads catch it too.
    tree_broken = any("does not match the events of its files" in p for p in check.problems)
    assert tree_broken == (how == "alter another event of a rewritten part")


def test_erasure_refuses_a_tampered_file_and_changes_nothing(tmp_path):
    folder = tmp_path / "audit"
    audit = AuditLogger(max_events=20, auto_export_path=folder, hmac_key=HMAC)
    audit.log_batch(subject_rows(20))  # rotated to files
    audit.log_batch(subject_rows(3))  # in memory
    audit.flush()
    alter_one_event(next(folder.rglob("*.parquet")), SUBJECT)
    files = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    with pytest.raises(AuditValueError, match=r"differs from the manifest's SHA-256 .* nothing was changed"):
        erase_subject(audit, SUBJECT)
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == files
    assert len(audit.query_events(user_id=SUBJECT, include_archived=False)) == 3  # memory untouched too
    audit.close()


def test_a_second_erasure_keeps_the_original_leaves(tmp_path):
    folder = sealed_folder(tmp_path / "sealed")
    first = erase_subject(str(folder), SUBJECT, hmac_key=HMAC)
    # The pseudonym erased in turn: events already rewritten once are rewritten again.
    second = erase_subject(str(folder), first.pseudonym, mode="remove", hmac_key=HMAC)
    assert second.events == 40
    e1, e2 = (e for e in entries_of(folder) if e["kind"] == "erasure")
    assert set(e1["leaves"]) < set(e2["leaves"])  # + the first erasure's record, which names the pseudonym
    assert all(e2["leaves"][p] == h for p, h in e1["leaves"].items())  # the leaves they were logged with
    check = verify(folder, key=HMAC)
    assert check.ok, check.problems
    assert len(check.erasures) == 2
    # The manifest is append-only: the first erasure's entry still names its pseudonym (no one's data).
    assert_subject_gone(folder, first.pseudonym, manifest=False)
    assert_subject_gone(folder)


def test_folder_erasure_needs_the_keys_of_a_signed_folder(tmp_path):
    signer = SigningKey.generate("audit.example/gdpr")
    folder = sealed_folder(tmp_path / "sealed", signer)
    files = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    with pytest.raises(AuditValueError, match=r"hmac_key: .* has a signed manifest"):
        erase_subject(str(folder), SUBJECT)
    with pytest.raises(AuditValueError, match=r"signing_key: .* signs its tree heads"):
        erase_subject(str(folder), SUBJECT, hmac_key=HMAC)
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == files
    erase_subject(str(folder), SUBJECT, hmac_key=HMAC, signing_key=signer.to_string())
    check = verify(folder, key=HMAC, public_key=signer.verifier())
    assert check.ok, check.problems


def test_erasure_refuses_an_old_chained_file_holding_the_subject(tmp_path):
    # A folder sealed before the export log: its entries carry the event chain's ends, not log positions.
    folder = tmp_path / "old"
    folder.mkdir()
    path = write_json_export(normalize_batch(subject_rows(3)), folder / "audit_2026_11_30_120000.json")
    digest, size = sha256_file(path)
    entry = {"file": path.name, "kind": "json", "sha256": digest, "bytes": size, "rows": 3,
             "chain_start": "0" * 64, "chain_end": "ab" * 32}
    append_entries(folder, {"entries": []}, [entry], None, "2026-11-30T12:00:00.000000Z")
    files = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != ".manifest.lock"}
    with pytest.raises(ArchiveError, match=r"holds the subject and is an old hash-chained export \(manifest format /1"):
        erase_subject(str(folder), SUBJECT)
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != ".manifest.lock"} == files
    # A subject it does not hold is erased elsewhere as usual (here: nowhere; the record is a new commit).
    erase_subject(str(folder), "someone.else@example.com")
    assert entries_of(folder)[0] == orjson.loads(files[folder / "manifest.json"])["entries"][0]


def test_a_failed_manifest_append_puts_the_files_back(tmp_path, monkeypatch):
    folder = sealed_folder(tmp_path / "sealed")
    files = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("axon_audit.integrity.manifest.append_entries", fail)
    with pytest.raises(OSError, match="No space left"):
        erase_subject(str(folder), SUBJECT, hmac_key=HMAC)
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == files  # as it was, subject and all
    monkeypatch.undo()
    assert verify(folder, key=HMAC).ok
