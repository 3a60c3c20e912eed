"""Erasure and retention on an s3:// lake, against the real S3-compatible server of
conftest.py: the objects rewritten or deleted, one signed ``maintenance`` entry in
the lake's global log, `verify` passing and listing it afterwards, proofs still
verifying, and every way of forging or skipping the record caught."""

from __future__ import annotations

import base64
from datetime import datetime, timezone

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

import axon_audit
from axon_audit import AuditArchive, AuditLogger, erase_subject, verify
from axon_audit.integrity.checkpoint import SigningKey
from axon_audit.workload import generate_events

UTC = timezone.utc
KEY = "lake-secret"
SIGNER = SigningKey.generate("audit.example/lake")


class Lake:
    def __init__(self, server, bucket: str) -> None:
        self.fs = pafs.S3FileSystem(endpoint_override=server.endpoint)
        self.base = f"{bucket}/audit"
        self.uri = f"s3://{self.base}"
        self.opts = {"endpoint_url": server.endpoint}

    def keys(self) -> list[str]:
        infos = self.fs.get_file_info(pafs.FileSelector(self.base, recursive=True, allow_not_found=True))
        return sorted(i.path[len(self.base) + 1:] for i in infos if i.type == pafs.FileType.File)

    def read(self, key: str) -> bytes:
        with self.fs.open_input_stream(f"{self.base}/{key}") as fh:
            return fh.read()

    def write(self, key: str, data: bytes) -> None:
        with self.fs.open_output_stream(f"{self.base}/{key}") as fh:
            fh.write(data)

    def snapshot(self) -> dict[str, bytes]:
        return {k: self.read(k) for k in self.keys()}

    def events(self) -> pl.DataFrame:
        return AuditArchive(self.uri, storage_options=self.opts).scan().collect()

    def json_events(self) -> list[dict]:
        out: list[dict] = []
        for k in self.keys():
            if k.startswith("audit_") and k.endswith(".json"):
                out += orjson.loads(self.read(k))["events"]
        return out

    def verify(self, **kw):
        return verify(self.uri, key=KEY, public_key=SIGNER.verifier(), storage_options=self.opts, **kw)


def _subject_rows(events, user: str, sessions: set[str]) -> int:
    return sum(1 for e in events if e.get("user_id") == user or e.get("session_id") in sessions)


@pytest.fixture
def lake(s3_server, s3_bucket) -> Lake:
    """Two writers (each its own manifest), three UTC days each, keyed and signed; user
    "ann" in both writers' events, with a session of her own."""
    out = Lake(s3_server, s3_bucket)
    for seed in (1, 2):
        batch = generate_events(900, seed=seed, days=3, start=datetime(2025, 6, 1, tzinfo=UTC))
        with AuditLogger(max_events=300, auto_export_path=out.uri, storage_options=out.opts, hmac_key=KEY,
                         signing_key=SIGNER) as audit:
            for i in range(0, 900, 300):
                audit.log_batch(batch.slice(i, 300))
            audit.log_batch([
                {"operation": "store", "user_id": "ann", "session_id": f"s-ann-{seed}", "entry_ids": [f"m{seed}"],
                 "metadata": {"note": f"ann wrote {seed}"}, "timestamp": datetime(2025, 6, 2, 9, tzinfo=UTC)},
                {"operation": "recall", "user_id": "bob", "metadata": {"shared_with": "ann"},
                 "timestamp": datetime(2025, 6, 3, 9, tzinfo=UTC)}])
    assert out.verify().ok
    return out


def test_erasure_on_s3_rewrites_the_objects_and_verify_passes_listing_it(lake: Lake) -> None:
    before = lake.events()
    result = erase_subject(lake.uri, "ann", requested_by="dpo", hmac_key=KEY, signing_key=SIGNER,
                           storage_options=lake.opts)
    assert result.events == 2 and result.pseudonym is not None
    # Both writers' JSON document and Parquet part of each day holding her events: rewritten.
    assert len(result.files_rewritten) >= 4
    after = lake.events()
    # Nothing lost: every event is still there, plus the FORGET record.
    assert after.height == before.height + 1
    assert set(before["event_id"]) <= set(after["event_id"])
    assert after.filter(pl.col("user_id") == "ann").height == 0
    assert after.filter(pl.col("session_id").cast(pl.String).str.starts_with("s-ann")).height == 0
    assert after.filter(pl.col("user_id") == result.pseudonym).height == 2
    bob = after.filter((pl.col("user_id") == "bob") & (pl.col("operation") == "RECALL")
                       & pl.col("metadata").str.contains(result.pseudonym))
    assert bob.height == 2  # a whole-value mention in another's metadata changes too
    assert _subject_rows(lake.json_events(), "ann", {"s-ann-1", "s-ann-2"}) == 0  # the JSON copies too
    forget = after.filter(pl.col("event_id") == result.audit_event_id)
    assert forget.select("operation", "user_id").rows() == [("FORGET", "dpo")]
    assert orjson.loads(forget["metadata"][0])["gdpr_erasure"] is True
    # Untouched events are byte-identical in content.
    keep = ["event_id", "timestamp", "operation", "user_id", "session_id", "status"]
    untouched = before.filter(~pl.col("event_id").is_in(
        after.filter(pl.col("user_id") == result.pseudonym)["event_id"].to_list() + bob["event_id"].to_list()))
    assert untouched.select(keep).sort("event_id").equals(
        after.filter(pl.col("event_id").is_in(untouched["event_id"].to_list())).select(keep).sort("event_id"))

    checked = lake.verify()
    assert checked.ok, checked.problems
    assert len(checked.erasures) == 2  # one record per writer manifest, both in one global entry
    (entry,) = [k for k in lake.keys() if k.startswith("global/")
                and orjson.loads(lake.read(k)).get("kind") == "maintenance"]
    assert all(line.startswith(entry) for line in checked.erasures)
    assert any("maintenance" in n for n in checked.notes)
    doc = orjson.loads(lake.read(entry))
    assert doc["action"] == "erasure" and len(doc["records"]) == 2 and "signature" in doc and "hmac" in doc
    assert verify(lake.uri, storage_options=lake.opts).ok  # and without any key


def test_proofs_still_verify_after_an_erasure_on_s3(lake: Lake) -> None:
    before = lake.events().filter(pl.col("user_id") != "ann")
    erase_subject(lake.uri, "ann", hmac_key=KEY, signing_key=SIGNER, storage_options=lake.opts)
    for event_id in before["event_id"].sample(5, seed=3).to_list():
        bundle = axon_audit.prove(lake.uri, event_id, storage_options=lake.opts)
        assert axon_audit.verify_inclusion(bundle, SIGNER.verifier()).size == bundle["tree_size"]
    erased = lake.events().filter(pl.col("operation") == "STORE", pl.col("entry_ids").list.contains("m1"))
    with pytest.raises(axon_audit.IntegrityError, match="was erased"):
        axon_audit.prove(lake.uri, erased["event_id"][0], storage_options=lake.opts)


def test_writers_go_on_after_an_erasure_and_the_lake_still_verifies(lake: Lake) -> None:
    with AuditLogger(max_events=100, auto_export_path=lake.uri, storage_options=lake.opts, hmac_key=KEY,
                     signing_key=SIGNER) as live:
        live.log_batch(generate_events(150, seed=9, days=1, start=datetime(2025, 6, 4, tzinfo=UTC)))
        erase_subject([live, lake.uri], "ann", hmac_key=KEY, signing_key=SIGNER, storage_options=lake.opts)
        live.log_batch(generate_events(150, seed=10, days=1, start=datetime(2025, 6, 5, tzinfo=UTC)))
    checked = lake.verify()
    assert checked.ok, checked.problems
    assert lake.events().filter(pl.col("user_id") == "ann").height == 0
    assert lake.events().height == 2 * 902 + 300 + 1  # the FORGET event logged by the live logger


def test_an_archive_of_the_lake_is_erased_from_too(lake: Lake) -> None:
    archive = AuditArchive(lake.uri, storage_options=lake.opts)
    result = erase_subject(archive, "ann", mode="remove", hmac_key=KEY, signing_key=SIGNER)
    assert result.events == 2 and result.pseudonym is None
    ann = lake.events().filter(pl.col("entry_ids").list.contains("m1") | pl.col("entry_ids").list.contains("m2"))
    assert ann["user_id"].to_list() == [None, None] and lake.verify().ok


def test_an_erasure_without_the_lakes_keys_is_refused_and_changes_nothing(lake: Lake) -> None:
    before = lake.snapshot()
    with pytest.raises(axon_audit.AuditValueError, match=r"hmac_key: .* has keyed manifests"):
        erase_subject(lake.uri, "ann", signing_key=SIGNER, storage_options=lake.opts)
    with pytest.raises(axon_audit.AuditValueError, match=r"signing_key: .* signs its tree heads"):
        erase_subject(lake.uri, "ann", hmac_key=KEY, storage_options=lake.opts)
    assert lake.snapshot() == before


def test_an_object_altered_before_the_erasure_is_refused(lake: Lake) -> None:
    doc = next(k for k in lake.keys() if k.startswith("audit_") and b'"ann"' in lake.read(k))
    lake.write(doc, lake.read(doc).replace(b'"ann wrote', b'"ANN wrote'))
    before = lake.snapshot()
    with pytest.raises(axon_audit.AuditValueError, match="differs from the manifest's SHA-256"):
        erase_subject(lake.uri, "ann", hmac_key=KEY, signing_key=SIGNER, storage_options=lake.opts)
    assert lake.snapshot() == before


def _maintenance(lake: Lake) -> str:
    return next(k for k in lake.keys() if k.startswith("global/")
                and orjson.loads(lake.read(k)).get("kind") == "maintenance")


def test_a_forged_or_altered_maintenance_entry_is_caught(lake: Lake) -> None:
    erase_subject(lake.uri, "ann", hmac_key=KEY, signing_key=SIGNER, storage_options=lake.opts)
    entry = _maintenance(lake)
    good = lake.read(entry)
    doc = orjson.loads(good)
    # A record edited to vouch for other bytes: the entry's hash no longer matches.
    m, rec = next(iter(doc["records"].items()))
    name = next(iter(rec["replaced"]))
    doc["records"][m]["replaced"][name]["sha256"] = "0" * 64
    lake.write(entry, orjson.dumps(doc))
    assert any(p.startswith(f"{entry}: altered") for p in lake.verify().problems)
    # Re-hashed by someone without the keys: HMAC and signature both fail.
    from axon_audit.integrity.global_log import _entry_hash

    doc["hash"] = _entry_hash(doc)
    lake.write(entry, orjson.dumps(doc))
    problems = lake.verify().problems
    assert any(f"{entry}: HMAC does not match" in p for p in problems)
    assert any(f"{entry}: not signed by the public key given" in p for p in problems)
    other = SigningKey.generate("audit.example/lake")  # same name, another key: still not signed by ours
    doc["signature"]["ed25519"] = base64.b64encode(other.sign(b"x")).decode()
    lake.write(entry, orjson.dumps(doc))
    assert any(f"{entry}: not signed by the public key given" in p for p in lake.verify().problems)
    lake.write(entry, good)
    assert lake.verify().ok


def test_deleting_the_maintenance_entry_or_rewriting_without_one_is_caught(lake: Lake) -> None:
    erase_subject(lake.uri, "ann", hmac_key=KEY, signing_key=SIGNER, storage_options=lake.opts)
    entry = _maintenance(lake)
    lake.fs.delete_file(f"{lake.base}/{entry}")
    problems = lake.verify().problems
    assert any(f"{entry}: missing (a global entry was deleted)" in p for p in problems)
    # Without its record the rewritten objects no longer match their manifests.
    assert any("content differs from the manifest's SHA-256" in p for p in problems)


# --------------------------------------------------------------------------- retention

NOW = datetime(2025, 6, 3, tzinfo=UTC)  # keep 1 day: 2025-06-01 expires whole, 06-02 and 06-03 stay


def test_retention_on_s3_deletes_the_expired_day_and_verify_passes_listing_it(lake: Lake) -> None:
    before = lake.events()
    expired = before.filter(pl.col("timestamp") < datetime(2025, 6, 2, tzinfo=UTC))
    assert 0 < expired.height < before.height
    plan = axon_audit.apply_retention(lake.uri, 1, now=NOW, dry_run=True, storage_options=lake.opts)
    assert lake.events().height == before.height  # a dry run changes nothing
    result = axon_audit.apply_retention(lake.uri, 1, now=NOW, hmac_key=KEY, signing_key=SIGNER,
                                        storage_options=lake.opts)
    assert [str(p) for p in plan.partitions] == [str(p) for p in result.partitions]
    assert (plan.events, plan.json_events) == (result.events, result.json_events) == (expired.height,) * 2
    assert [p.name for p in result.partitions] == ["date=2025-06-01"]
    after = lake.events()
    assert sorted(after["event_id"]) == sorted(set(before["event_id"]) - set(expired["event_id"]))
    assert not any(k.startswith("parquet/date=2025-06-01/") for k in lake.keys())
    json_ids = {e["event_id"] for e in lake.json_events()}
    assert json_ids == set(after["event_id"])  # the JSON copies lost exactly the same events
    checked = lake.verify()
    assert checked.ok, checked.problems
    assert len(checked.retentions) == 2 and all(line.startswith("global/") for line in checked.retentions)
    assert result.manifest.startswith("recorded in the lake's global log")
    for event_id in after["event_id"].sample(4, seed=1).to_list():  # the tree still replays: proofs hold
        bundle = axon_audit.prove(lake.uri, event_id, storage_options=lake.opts)
        assert axon_audit.verify_inclusion(bundle, SIGNER.verifier()).size == bundle["tree_size"]
    # Erasure after retention, then retention again with nothing left to remove: still verifies.
    erase_subject(lake.uri, "ann", hmac_key=KEY, signing_key=SIGNER, storage_options=lake.opts)
    again = axon_audit.apply_retention(lake.uri, 1, now=NOW, hmac_key=KEY, signing_key=SIGNER,
                                       storage_options=lake.opts)
    assert again.events == again.json_events == 0
    checked = lake.verify()
    assert checked.ok, checked.problems
    assert (len(checked.retentions), len(checked.erasures)) == (2, 2)


def test_retention_without_the_keys_or_over_an_altered_part_changes_nothing(lake: Lake) -> None:
    before = lake.snapshot()
    with pytest.raises(axon_audit.AuditValueError, match=r"hmac_key: .* retention must sign"):
        axon_audit.apply_retention(lake.uri, 1, now=NOW, signing_key=SIGNER, storage_options=lake.opts)
    with pytest.raises(axon_audit.AuditValueError, match=r"signing_key: .* retention must be signed"):
        axon_audit.apply_retention(lake.uri, 1, now=NOW, hmac_key=KEY, storage_options=lake.opts)
    assert lake.snapshot() == before
    part = next(k for k in lake.keys() if k.startswith("parquet/date=2025-06-01/"))
    good = lake.read(part)
    table = pq.read_table(pa.BufferReader(good))
    users = table.column("user_id").to_pylist()
    users[0] = "someone_else"  # tampered with before it expires: a valid part, other content
    table = table.set_column(table.column_names.index("user_id"), "user_id",
                             pa.array(users, type=table.schema.field("user_id").type))
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    for forged, message in ((sink.getvalue().to_pybytes(), "differs from the manifest's SHA-256"),
                            (good + b"\0", "is not a readable Parquet part")):
        lake.write(part, forged)
        before = lake.snapshot()
        with pytest.raises(axon_audit.AuditValueError, match=message):
            axon_audit.apply_retention(lake.uri, 1, now=NOW, hmac_key=KEY, signing_key=SIGNER,
                                       storage_options=lake.opts)
        assert lake.snapshot() == before


def test_retention_that_cannot_record_itself_puts_the_documents_back(lake: Lake, s3_server) -> None:
    before = lake.snapshot()
    s3_server.deny = lambda method, path: method == "PUT" and "/global/" in path
    try:
        with pytest.raises(OSError):
            axon_audit.apply_retention(lake.uri, 1, now=NOW, hmac_key=KEY, signing_key=SIGNER,
                                       storage_options=lake.opts)
    finally:
        s3_server.deny = None
    assert lake.snapshot() == before  # nothing deleted, every rewritten document restored
    assert lake.verify().ok


def test_every_global_entry_of_a_signed_lake_is_signed(lake: Lake) -> None:
    """Writers with a signing key sign their global commits too: an entry appended by
    someone holding only the HMAC key (so its HMAC is right) is caught by the public key."""
    from axon_audit.integrity.global_log import GlobalLog
    from axon_audit.io.location import resolve

    names = [k for k in lake.keys() if k.startswith("global/")]
    assert len(names) == 8 and all("signature" in orjson.loads(lake.read(k)) for k in names)  # 2 writers x 4
    manifest = orjson.loads(lake.read(names[-1]))["manifest"]
    doc = orjson.loads(lake.read(manifest))
    GlobalLog(resolve(lake.uri, storage_options=lake.opts), KEY.encode()).commit(
        "intruder", manifest, doc["head"], ("0" * 64, 1))
    problems = lake.verify().problems
    assert "global/000000000009.json: not signed by the public key given (audit.example/lake): forged, or " \
           "written without the signing key" in problems
    assert verify(lake.uri, key=KEY, storage_options=lake.opts).problems != []  # its digest is wrong too


# --------------------------------------------------------------------------- the CLI on a lake


def test_cli_erase_and_retention_on_an_s3_lake(lake: Lake, tmp_path, monkeypatch) -> None:
    import subprocess

    from tests.cli_process import env, script

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # the endpoint is on the command line
    key_file = tmp_path / "lake.key"
    SIGNER.to_file(key_file)
    (tmp_path / "lake.key.pub").write_text(str(SIGNER.verifier()))
    where = ("--endpoint-url", lake.opts["endpoint_url"])

    def run(*args: object, code: int) -> list[str]:
        proc = subprocess.run([script(), *map(str, args)], capture_output=True, text=True, timeout=120, env=env())
        assert proc.returncode == code, (proc.stdout, proc.stderr)
        return (proc.stdout + proc.stderr).splitlines()

    before = lake.snapshot()
    plan = run("erase", lake.uri, "ann", *where, "--dry-run", code=0)
    assert plan[0].startswith("dry run: erasing ann (pseudonymize) would change 2 of their events (2 sessions) in ")
    assert plan[-1] == "nothing was changed" and any(line.strip().startswith("parquet/") for line in plan)
    missing = run("erase", lake.uri, "ann", *where, "--signing-key", key_file, "--yes", code=2)
    assert any(line.startswith("axon-audit: error: --key: ") and "has keyed manifests" in line for line in missing)
    assert lake.snapshot() == before  # the dry run and the refusal changed nothing
    done = run("erase", lake.uri, "ann", *where, "--key", KEY, "--signing-key", key_file, "--requested-by", "dpo",
               "--yes", code=0)
    assert done[0] == "erased ann (pseudonymize): 2 events changed, " + plan[0].split(" in ")[1].replace(
        ":", " rewritten")
    listing = run("retention", lake.uri, "--keep-days", "1", "--now", "2025-06-03T00:00:00Z", *where, "--dry-run",
                  code=0)
    assert "  delete parquet/date=2025-06-01/" in listing
    assert listing[-1].startswith("dry run: would delete 1 partitions")
    run("retention", lake.uri, "--keep-days", "1", "--now", "2025-06-03T00:00:00Z", *where, "--key", KEY,
        "--signing-key", key_file, "--yes", code=0)
    checked = run("verify", lake.uri, *where, "--key", KEY, "--public-key", tmp_path / "lake.key.pub", code=0)
    assert checked[-1].startswith("intact: ")
    assert lake.events().filter(pl.col("user_id") == "ann").height == 0
    assert not any(k.startswith("parquet/date=2025-06-01/") for k in lake.keys())


def test_polling_readers_fetch_each_global_entry_once(lake: Lake, s3_server) -> None:
    """tail and durable sinks read the maintenance records on every poll: entries are
    written once, so each is fetched once; verify (fresh=True) fetches them all again."""
    from axon_audit.integrity.global_log import maintenance_records
    from axon_audit.io.location import resolve

    erase_subject(lake.uri, "ann", hmac_key=KEY, signing_key=SIGNER, storage_options=lake.opts)
    root = resolve(lake.uri, storage_options=lake.opts)
    bucket = lake.base.split("/")[0]
    first = maintenance_records(root)
    assert len(first) == 2  # the erasure's records, one per writer manifest
    s3_server.reset()
    assert maintenance_records(root) == first
    assert [k for k in s3_server.object_gets(bucket) if "/global/" in k] == []
    entries = [k for k in lake.keys() if k.startswith("global/")]
    s3_server.reset()
    assert maintenance_records(root, fresh=True) == first
    assert len([k for k in s3_server.object_gets(bucket) if "/global/" in k]) == len(entries)
