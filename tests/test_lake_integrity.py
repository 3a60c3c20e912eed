"""The integrity manifest on object storage, against the real S3-compatible server
of conftest.py: each writer's own manifest, `verify` over an s3:// lake and the
attacks it must name, manifest segments, a commit whose reply is lost or denied,
and the write-ahead log recovering into S3 after SIGKILL."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone

import orjson
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

import axon_audit
from axon_audit import AuditLogger, verify
from axon_audit.integrity import manifest as _integrity
from axon_audit.integrity.merkle import CompactRange, leaf_hash
from axon_audit.workload import generate_events

UTC = timezone.utc
KEY = "lake-secret"


def s3fs(server) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(endpoint_override=server.endpoint)


def keys(server, bucket: str, prefix: str) -> list[str]:
    infos = s3fs(server).get_file_info(pafs.FileSelector(f"{bucket}/{prefix}", recursive=True,
                                                         allow_not_found=True))
    return sorted(i.path[len(bucket) + len(prefix) + 2:] for i in infos if i.type == pafs.FileType.File)


class Lake:
    """A lake written by one keyed logger, with helpers to tamper with its objects."""

    def __init__(self, server, bucket: str, prefix: str = "audit") -> None:
        self.server, self.fs = server, s3fs(server)
        self.base = f"{bucket}/{prefix}"
        self.uri = f"s3://{self.base}"
        self.opts = {"endpoint_url": server.endpoint}
        self.bucket, self.prefix = bucket, prefix

    def keys(self) -> list[str]:
        return keys(self.server, self.bucket, self.prefix)

    def read(self, key: str) -> bytes:
        with self.fs.open_input_stream(f"{self.base}/{key}") as fh:
            return fh.read()

    def write(self, key: str, data: bytes) -> None:
        with self.fs.open_output_stream(f"{self.base}/{key}") as fh:
            fh.write(data)

    def delete(self, key: str) -> None:
        self.fs.delete_file(f"{self.base}/{key}")

    def manifests(self) -> list[str]:
        return [k for k in self.keys() if k.startswith("manifests/")]

    def parts(self) -> list[str]:
        return [k for k in self.keys() if k.startswith("parquet/")]

    def problems(self, key: str | None = KEY) -> list[str]:
        return verify(self.uri, key=key, storage_options=self.opts).problems

    def exported_ids(self) -> list[str]:
        """Event ids of every JSON export listed by any writer manifest."""
        ids: list[str] = []
        for m in self.manifests():
            for e in orjson.loads(self.read(m))["entries"]:
                if e["kind"] == "json":
                    ids += [ev["event_id"] for ev in orjson.loads(self.read(e["file"]))["events"]]
        return ids


@pytest.fixture
def lake(s3_server, s3_bucket) -> Lake:
    """Three rotations (over three UTC days) and a close, from one keyed logger."""
    out = Lake(s3_server, s3_bucket)
    batch = generate_events(1_500, seed=5, days=3, start=datetime(2025, 6, 1, tzinfo=UTC))
    with AuditLogger(max_events=500, auto_export_path=out.uri, storage_options=out.opts, hmac_key=KEY) as audit:
        for i in range(0, 1_500, 500):
            audit.log_batch(batch.slice(i, 500))
        audit.log("recall", user_id="late", metadata={"n": 1})
    return out


def test_a_keyed_lake_verifies_every_object_and_event(lake: Lake) -> None:
    result = verify(lake.uri, key=KEY, storage_options=lake.opts)
    assert result.ok, result.problems
    data = [k for k in lake.keys() if not k.startswith(("manifests/", "global/"))]
    assert result.hmac_checked and result.files_checked == len(data)
    assert result.events_checked == 1_501 == result.tree_size  # each event once, from its Parquet part
    (manifest,) = lake.manifests()
    doc = orjson.loads(lake.read(manifest))
    files = [e for e in doc["entries"] if "file" in e]
    assert sorted(e["file"] for e in files) == sorted(data)
    assert [e["size"] for e in doc["entries"] if e["kind"] == "tree"] == [500, 1_000, 1_500, 1_501]
    # The digests in the manifest are those of the stored bytes (hashed on upload, never re-read).
    for e in files:
        blob = lake.read(e["file"])
        assert (e["sha256"], e["bytes"]) == (hashlib.sha256(blob).hexdigest(), len(blob))


def _edit_parquet_event(lake: Lake) -> tuple[str, str]:
    key = lake.parts()[0]
    table = pq.read_table(pa.BufferReader(lake.read(key)))
    users = table.column("user_id").to_pylist()
    users[3] = "someone_else"
    idx = table.column_names.index("user_id")
    table = table.set_column(idx, "user_id", pa.array(users, type=table.schema.field("user_id").type))
    event = table.column("event_id")[3].as_py()
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)  # only the event changed
    lake.write(key, sink.getvalue().to_pybytes())
    return key, event


def attack_edit_event(lake: Lake) -> list[str]:
    key, event = _edit_parquet_event(lake)
    (name,) = lake.manifests()
    return [f"{key}: content differs from the manifest's SHA-256",
            f"{key}: event {event} (row 3) differs from the intact JSON copy",
            f"{name}: tree head #",  # the first commit's head (and every later one) no longer replays
            ]


def attack_delete_object(lake: Lake) -> list[str]:
    key = lake.parts()[1]
    lake.delete(key)
    return [f"{key}: missing (deleted or renamed)"]


def attack_insert_object(lake: Lake) -> list[str]:
    src = lake.parts()[0]
    forged = src.replace("part-", "part-0")
    lake.write(forged, lake.read(src))
    return [f"{forged}: not listed in the manifest (inserted file)"]


def attack_delete_json(lake: Lake) -> list[str]:
    key = next(k for k in lake.keys() if k.startswith("audit_"))
    lake.delete(key)
    return [f"{key}: missing (deleted or renamed)"]


def attack_delete_manifest(lake: Lake) -> list[str]:
    lake.delete(lake.manifests()[0])
    return ["manifest.json or manifests/*.json: missing"]


def attack_delete_one_writers_manifest(lake: Lake) -> list[str]:
    """Another writer shares the lake; one writer's manifest goes: its files are unlisted."""
    with AuditLogger(auto_export_path=lake.uri, storage_options=lake.opts, hmac_key=KEY) as other:
        other.log("store", user_id="other")
    mine = next(m for m in lake.manifests() if "other" not in str(lake.read(m)))
    files = [e["file"] for e in orjson.loads(lake.read(mine))["entries"] if "file" in e]
    assert files
    lake.delete(mine)
    return [f"{f}: not listed in the manifest (inserted file)" for f in files]


def _rewrite_manifest(lake: Lake, change: Callable[[dict], None], sign: bool) -> str:
    name = lake.manifests()[0]
    doc = orjson.loads(lake.read(name))
    change(doc)
    entries = doc["entries"]
    prev = _integrity.GENESIS
    for i, e in enumerate(entries):
        e.update(index=i, prev=prev)
        e["hash"] = prev = _integrity.entry_hash(e)
    doc["head"] = {"entries": len(entries), "hash": prev}
    doc.pop("hmac", None)
    if sign:
        doc["hmac"] = _integrity.head_hmac(b"a guessed key", len(entries), prev)
    lake.write(name, orjson.dumps(doc))
    return name


def _drop_newest_commit(doc: dict) -> None:
    entries = doc["entries"]
    del entries[max(i for i, e in enumerate(entries) if e["kind"] == "json"):]


def _newest_global(lake: Lake) -> str:
    return max(k for k in lake.keys() if k.startswith("global/"))


def attack_truncate_newest(lake: Lake) -> list[str]:
    entries = orjson.loads(lake.read(lake.manifests()[0]))["entries"]
    gone = [e["file"] for e in entries[max(i for i, e in enumerate(entries) if e["kind"] == "json"):] if "file" in e]
    name = _rewrite_manifest(lake, _drop_newest_commit, sign=True)
    for key in gone:  # the newest commit's files and entries all gone, the manifest re-linked
        lake.delete(key)
    # Consistent but for the HMAC, and the global log, which names the head the manifest had:
    assert verify(lake.uri, storage_options=lake.opts).problems[0] == (
        f"{name}: does not hold the head {_newest_global(lake)} names (the manifest was rolled back or rewritten)")
    return [f"{name}: HMAC of the head does not match"]


def attack_strip_hmac(lake: Lake) -> list[str]:
    name = _rewrite_manifest(lake, lambda d: None, sign=False)
    return [f"{name}: no HMAC, but a key was given"]


def attack_list_twice(lake: Lake) -> list[str]:
    (name,) = lake.manifests()
    copy = name.replace(".json", "-copy.json")
    lake.write(copy, lake.read(name))
    first = orjson.loads(lake.read(name))["entries"][0]["file"]
    return [f"{first}: listed by both {min(name, copy)} and {max(name, copy)}"]


ATTACKS = [attack_edit_event, attack_delete_object, attack_insert_object, attack_delete_json,
           attack_delete_manifest, attack_delete_one_writers_manifest, attack_truncate_newest, attack_strip_hmac,
           attack_list_twice]


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda f: f.__name__[7:])
def test_each_attack_on_the_lake_is_named(lake: Lake, attack: Callable[[Lake], list[str]]) -> None:
    assert lake.problems() == []
    expected = attack(lake)
    found = lake.problems()
    for text in expected:
        assert any(p.startswith(text) for p in found), (text, found)


def test_verify_without_the_key_still_checks_everything_but_the_signature(lake: Lake) -> None:
    result = verify(lake.uri, storage_options=lake.opts)
    assert result.ok and not result.hmac_checked
    assert any("HMAC of the head does not match" in p for p in lake.problems(key="wrong key"))


def test_verify_of_an_empty_prefix_says_so(s3_server, s3_bucket) -> None:
    result = verify(f"s3://{s3_bucket}/nothing", storage_options={"endpoint_url": s3_server.endpoint})
    assert not result.ok and result.problems == [f"s3://{s3_bucket}/nothing: no objects under this prefix"]


def test_a_long_lived_writer_goes_on_in_linked_segments(s3_server, s3_bucket, monkeypatch) -> None:
    monkeypatch.setattr(_integrity, "SEGMENT_ENTRIES", 4)
    lake = Lake(s3_server, s3_bucket, "segments")
    with AuditLogger(max_events=100, auto_export_path=lake.uri, storage_options=lake.opts, hmac_key=KEY) as audit:
        ids = [audit.log("store", user_id=f"u{i % 3}").event_id for i in range(1_000)]
    segments = lake.manifests()
    docs = [orjson.loads(lake.read(m)) for m in segments]
    # 10 exports of one day each: 30 entries (JSON, part, tree head), at most 4 (+ the last commit's 3) a segment.
    assert len(segments) >= 4 and "follows" not in docs[0]
    assert all(len(d["entries"]) <= 4 + 2 for d in docs)
    # One log across the segments: each tree head goes on from the one before, wherever it is.
    assert [e["size"] for d in docs for e in d["entries"] if e["kind"] == "tree"] == list(range(100, 1_001, 100))
    assert [e["leaves"] for d in docs for e in d["entries"] if e["kind"] == "json"] == [
        [i, i + 100] for i in range(0, 1_000, 100)]
    by_name = dict(zip(segments, docs, strict=True))
    for doc in docs[1:]:
        before = by_name[doc["follows"]["manifest"]]
        assert before["head"] == {"entries": doc["follows"]["entries"], "hash": doc["follows"]["hash"]}
    result = verify(lake.uri, key=KEY, storage_options=lake.opts)
    assert result.ok, result.problems
    assert result.events_checked == 1_000 == result.tree_size
    assert sorted(lake.exported_ids()) == sorted(ids)

    # Deleting an earlier segment is detected: the next one names it, its files lose their listing.
    middle = next(m for m, d in zip(segments, docs, strict=True) if "follows" in d and m != segments[-1])
    orphaned = [e["file"] for e in by_name[middle]["entries"] if "file" in e]
    assert orphaned
    lake.delete(middle)
    found = lake.problems()
    assert any(p.endswith(f"follows {middle}, which is missing (an earlier manifest of this writer was deleted)")
               for p in found), found
    assert all(any(p.startswith(f"{f}: not listed") for p in found) for f in orphaned)


def test_a_signed_writer_s_log_spans_its_segments(s3_server, s3_bucket, monkeypatch) -> None:
    """A writer's log goes on across its manifest segments: a checkpoint kept in an
    early segment is checked against the later ones, proofs reach events in any
    segment, and removing the newest segment (a rollback) is caught by a newer one."""
    monkeypatch.setattr(_integrity, "SEGMENT_ENTRIES", 4)  # two commits (3 entries each) a segment
    lake = Lake(s3_server, s3_bucket, "signed")
    key = axon_audit.SigningKey.generate("audit.example/lake")
    kept: list[str] = []
    ids: list[str] = []
    with AuditLogger(max_events=10, auto_export_path=lake.uri, storage_options=lake.opts, signing_key=key) as audit:
        for i in range(65):
            ids.append(audit.log("store", user_id=f"u{i % 4}").event_id)
            if i % 10 == 9:
                audit.flush()  # the rotation at 10 events has been committed
                result = verify(lake.uri, public_key=key.verifier(), storage_options=lake.opts)
                assert result.ok, result.problems
                (note,) = result.checkpoints.values()
                kept.append(note)
    segments = lake.manifests()
    assert len(segments) >= 4  # sizes 10, 20 | 30, 40 | 50, 60 | 65 (one part a commit, unless at midnight)
    for note in kept:
        result = verify(lake.uri, public_key=key.verifier(), checkpoint=note, storage_options=lake.opts)
        assert result.ok and result.tree_size == 65 and result.signatures_checked == 7, result.problems
        bundle = axon_audit.prove_consistency(lake.uri, note, storage_options=lake.opts)
        assert axon_audit.verify_consistency(bundle, key.verifier()).size == 65
    for position in (0, 15, 33, 64):  # in each segment
        bundle = axon_audit.prove(lake.uri, ids[position], storage_options=lake.opts)
        assert bundle["leaf_index"] == position and bundle["tree_size"] == 65
        assert axon_audit.verify_inclusion(bundle, key.verifier()).size == 65

    (kept_65,) = verify(lake.uri, public_key=key.verifier(), storage_options=lake.opts).checkpoints.values()
    newest = segments[-1]
    lake.delete(newest)  # back to the state after 60 events, every remaining checkpoint valid
    found = verify(lake.uri, public_key=key.verifier(), checkpoint=kept[-1], storage_options=lake.opts).problems
    assert found and all(": not listed in the manifest (inserted file)" in p for p in found[1:]), found
    assert found[0].startswith(f"{newest}: named by global/"), found  # the global log names the deleted segment
    found = verify(lake.uri, public_key=key.verifier(), checkpoint=kept_65, storage_options=lake.opts).problems
    assert f"{segments[-2]}: the log holds 60 events, fewer than the 65 of the checkpoint kept " \
           "(the log was rolled back or truncated)" in found, found
    with pytest.raises(axon_audit.ProofError, match="fewer than the 65"):
        axon_audit.prove_consistency(lake.uri, kept_65, storage_options=lake.opts)


def test_a_segment_must_go_on_from_the_log_it_follows(s3_server, s3_bucket, monkeypatch) -> None:
    monkeypatch.setattr(_integrity, "SEGMENT_ENTRIES", 4)
    lake = Lake(s3_server, s3_bucket, "forged-follows")
    key = axon_audit.SigningKey.generate("audit.example/lake")
    with AuditLogger(max_events=10, auto_export_path=lake.uri, storage_options=lake.opts, signing_key=key) as audit:
        for _ in range(30):
            audit.log("store", user_id="u")
    early = verify(lake.uri, public_key=key.verifier(), storage_options=lake.opts)
    assert early.ok, early.problems
    first, later = lake.manifests()[:2]
    doc = orjson.loads(lake.read(later))
    doc["follows"]["tree"]["range"][0] = "ab" * 32  # start the later segment from another log state
    lake.write(later, orjson.dumps(doc))
    found = lake.problems(key=None)
    assert f"{later}: follows {first}, but does not go on from its log (the tree it starts from is not the " \
           "one that manifest ends with)" in found, found


def test_a_commit_whose_reply_is_lost_counts_as_landed(s3_server, s3_bucket) -> None:
    """The manifest upload is applied by the store but its reply never comes back: the
    logger reads the manifest back, sees its own head, and keeps the export."""
    lake = Lake(s3_server, s3_bucket, "lost")
    audit = AuditLogger(max_events=10_000, auto_export_path=lake.uri, storage_options=lake.opts, hmac_key=KEY)
    ids = [audit.log("store", user_id="u").event_id for _ in range(300)]
    # pyarrow uploads as a multipart upload: the object appears whole when it is completed
    # (a POST with the upload's id), so that is the reply to lose.
    s3_server.lose_reply = lambda method, path, query: (method == "POST" and "/lost/manifests/" in path
                                                        and "uploadId=" in query)
    s3_server.reset()
    try:
        audit.close()
    finally:
        s3_server.lose_reply = None
    completes = [p for m, p, q, _ in s3_server.requests if m == "POST" and "/manifests/" in p and "uploadId=" in q]
    assert completes  # the store completed the manifest upload (and each retry of it) but answered 500
    stats = audit.get_stats()
    assert stats["export_failures"] == 0 and stats["exported_events"] == 300
    assert verify(lake.uri, key=KEY, storage_options=lake.opts).ok
    assert Counter(lake.exported_ids()) == Counter(ids) and len(set(ids)) == 300


def test_a_commit_in_doubt_keeps_its_objects_and_the_retry_overwrites_them(s3_server, s3_bucket) -> None:
    """The manifest's reply is lost and it cannot be read back either: the logger cannot
    tell whether the export committed. It keeps the objects (deleting them could
    delete committed evidence) and the events; the retry reuses the same names, so
    the lake ends with each event once and nothing unlisted."""
    lake = Lake(s3_server, s3_bucket, "doubt")
    audit = AuditLogger(max_events=10_000, auto_export_path=lake.uri, storage_options=lake.opts, hmac_key=KEY)
    ids = [audit.log("store", user_id="u").event_id for _ in range(300)]
    s3_server.lose_reply = lambda method, path, query: (method == "POST" and "/doubt/manifests/" in path
                                                        and "uploadId=" in query)
    s3_server.deny = lambda method, path: method in ("GET", "HEAD") and "/doubt/manifests/" in path
    try:
        with pytest.raises(axon_audit.ExportError, match="300 events could not be exported"):
            audit.close()
        in_doubt = lake.keys()
        assert len([k for k in in_doubt if not k.startswith(("manifests/", "global/"))]) == 2  # JSON + one day: kept
    finally:
        s3_server.lose_reply = s3_server.deny = None
    audit.close()
    # The same names, overwritten: no second copy (the global log gained the commit's entry).
    assert [k for k in lake.keys() if not k.startswith("global/")] == in_doubt
    assert verify(lake.uri, key=KEY, storage_options=lake.opts).ok
    assert Counter(lake.exported_ids()) == Counter(ids) and len(set(ids)) == 300


def test_a_denied_commit_takes_the_objects_back_and_the_retry_commits_once(s3_server, s3_bucket) -> None:
    lake = Lake(s3_server, s3_bucket, "denied")
    audit = AuditLogger(max_events=10_000, auto_export_path=lake.uri, storage_options=lake.opts, hmac_key=KEY)
    first = [audit.log("store", user_id="u").event_id for _ in range(300)]
    audit.flush()
    audit.close()  # one committed export, so the denied one is a later commit of the same manifest
    committed = lake.keys()
    audit = AuditLogger(max_events=10_000, auto_export_path=lake.uri, storage_options=lake.opts, hmac_key=KEY)
    ids = [audit.log("recall", user_id="v").event_id for _ in range(200)]
    s3_server.deny = lambda method, path: method == "PUT" and "/denied/manifests/" in path
    try:
        with pytest.raises(axon_audit.ExportError, match="200 events could not be exported"):
            audit.close()
        assert lake.keys() == committed  # the uploaded objects were taken back
        assert audit.get_stats()["pending_export_events"] == 200
    finally:
        s3_server.deny = None
    audit.close()
    assert verify(lake.uri, key=KEY, storage_options=lake.opts).ok
    assert len(lake.manifests()) == 2  # one per logger
    assert Counter(lake.exported_ids()) == Counter(first + ids)


@pytest.mark.slow
@pytest.mark.parametrize("crash_at", ["stream", "before_commit", "before_global"])
def test_sigkill_with_a_wal_recovers_into_s3_exactly_once(s3_server, s3_bucket, tmp_path, crash_at) -> None:
    """A writer with a write-ahead log dies (mid-stream, with an export's objects up
    and its manifest not, or with its manifest up and its global log entry not): the
    next logger on that log deletes the uncommitted objects, replays their events,
    publishes a committed manifest's missing global entry, and the lake verifies
    with every acknowledged event once."""
    from tests.test_wal import run_child

    lake = Lake(s3_server, s3_bucket, "wal")
    acks = run_child(tmp_path, "always", crash_at, export=lake.uri, env={"AWS_ENDPOINT_URL": s3_server.endpoint})
    assert len(acks) > 500  # at least one rotation happened before the kill
    before = verify(lake.uri, key="k", storage_options=lake.opts)
    if crash_at == "before_commit":  # the second export's objects are up, its manifest commit is not:
        assert before.ok and before.leftovers, before.problems  # its intent names them: leftovers, not tampering
        assert all("uncommitted leftover of an interrupted export" in f for f in before.leftovers)
    if crash_at == "before_global":  # committed in its manifest, not yet in the lake's one log
        assert any("in no global entry" in p or "newer than the newest global entry" in p
                   for p in before.problems), before.problems
    recovered = AuditLogger(max_events=10**9, auto_export_path=lake.uri, storage_options=lake.opts,
                            wal_path=tmp_path / "wal", hmac_key="k")
    in_memory = recovered.scan(include_archived=False).select("event_id").collect()["event_id"].to_list()
    counts = Counter(in_memory + lake.exported_ids())
    assert not [i for i, c in counts.items() if c > 1], "an event came back twice"
    assert not set(acks) - set(counts), "acknowledged events lost"
    result = verify(lake.uri, key="k", storage_options=lake.opts)
    assert result.ok, result.problems  # an uncommitted object left behind would be 'not listed'
    assert not result.leftovers and not [k for k in lake.keys() if k.startswith(".intents/")]  # nor its intent
    recovered.close()
    ids = lake.exported_ids()
    assert len(ids) == len(set(ids)) and set(acks) <= set(ids)
    assert axon_audit.write.wal.existing_epochs(tmp_path / "wal") == []
    assert verify(lake.uri, key="k", storage_options=lake.opts).ok


@pytest.mark.slow
def test_repair_finishes_the_global_commit_of_a_writer_killed_without_its_wal(s3_server, s3_bucket,
                                                                               tmp_path) -> None:
    """The writer dies with its second manifest up and its global entry not, and its
    write-ahead log is lost, so no recovery finishes the commit: `repair_global_log`
    appends the entry (the lake then verifies), once; over a lake with any other
    problem (here an inserted object) it refuses and appends nothing."""
    import shutil

    from tests.test_wal import run_child

    lake = Lake(s3_server, s3_bucket, "nowal")
    run_child(tmp_path, "always", "before_global", export=lake.uri, env={"AWS_ENDPOINT_URL": s3_server.endpoint})
    shutil.rmtree(tmp_path / "wal")
    before = verify(lake.uri, key="k", storage_options=lake.opts).problems
    assert len(before) == 1 and ("in no global entry" in before[0] or "newer than the newest" in before[0]), before
    entries = [k for k in lake.keys() if k.startswith("global/")]
    lake.write("parquet/date=2025-06-01/part-planted.parquet", lake.read(lake.parts()[0]))
    with pytest.raises(axon_audit.AuditValueError, match=r"problems a repair must not vouch for: .*part-planted"):
        axon_audit.repair_global_log(lake.uri, key="k", storage_options=lake.opts)
    assert [k for k in lake.keys() if k.startswith("global/")] == entries  # nothing appended
    lake.delete("parquet/date=2025-06-01/part-planted.parquet")
    (published,) = axon_audit.repair_global_log(lake.uri, key="k", storage_options=lake.opts)
    assert before[0].startswith(published)
    assert verify(lake.uri, key="k", storage_options=lake.opts).ok
    assert axon_audit.repair_global_log(lake.uri, key="k", storage_options=lake.opts) == []


def test_cli_verify_checks_an_s3_lake(lake: Lake, monkeypatch) -> None:
    """`axon-audit verify s3://…` through the console script, endpoint on the command line."""
    import subprocess
    import sys
    from pathlib import Path

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    script = Path(sys.executable).with_name("axon-audit")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(script), "verify", lake.uri, "--endpoint-url", lake.server.endpoint, *args],
                              capture_output=True, text=True, timeout=120)

    files = len([k for k in lake.keys() if not k.startswith(("manifests/", "global/"))])
    ok = run("--key", KEY)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.endswith(f"intact: {files:,} files, {1_501:,} events checked\n")
    gone = lake.parts()[0]
    lake.delete(gone)
    bad = run("--key", KEY)
    assert bad.returncode == 1
    assert f"PROBLEM {gone}: missing (deleted or renamed)\n" in bad.stdout
    assert bad.stdout.splitlines()[-1].startswith(f"NOT INTACT: {files - 1:,} files, ")


def test_the_wal_records_the_manifest_a_commit_goes_to_across_a_rollover(s3_server, s3_bucket, monkeypatch):
    """Recovery reads the manifest named in the WAL's job record, so that name must be
    the one the commit uploads, also when the commit starts a new segment."""
    monkeypatch.setattr(_integrity, "SEGMENT_ENTRIES", 3)
    lake = Lake(s3_server, s3_bucket, "names")
    m = _integrity.WriterManifest(axon_audit.io.location.resolve(lake.uri, storage_options=lake.opts), key=None)
    entry = {"file": "f", "kind": "json"}
    tree = CompactRange()
    seen = []
    for i in range(7):
        expected = m.commit_name
        tree.append(leaf_hash(b"%d" % i))
        m.commit([dict(entry, file=f"f{i}", leaves=[i, i + 1])], "2025-01-01T00:00:00.000000Z", tree)
        assert m.name == expected and expected.endswith(".json")
        seen.append(expected)
        assert f"f{i}" in _integrity.listed_files(m.root, expected)
        assert m.tree.size == i + 1 and m.tree.root() == tree.root()  # the log goes on in the new segment
    # Each commit adds its file and its tree head: commits 0-1, 2-3, 4-5, 6: four segments.
    assert len(set(seen)) == 4
