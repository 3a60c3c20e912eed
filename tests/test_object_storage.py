"""Exports to object storage, against a real S3-compatible server on 127.0.0.1
(moto's server mode, see conftest.py): rotation, many writer processes at once,
whole-file reads, date-partition pruning counted in fetched objects."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from axon_audit import (
    AuditArchive,
    AuditEvent,
    AuditLogger,
    AuditTypeError,
    AuditValueError,
    EventStatus,
    ExportError,
    OperationType,
    scan_lake,
    verify,
)
from axon_audit.io.location import resolve
from axon_audit.model.schema import frame_to_events
from axon_audit.query.filters import Filters
from axon_audit.read.lake import lake_dataset, lake_files
from axon_audit.workload import generate_events

UTC = timezone.utc
JSON_KEY = re.compile(r"audit_\d{4}_\d\d_\d\d_\d{6}_[0-9a-f]{12}\.json")
PART_KEY = re.compile(r"parquet/date=(\d{4}-\d\d-\d\d)/part-[^/]+\.parquet")


def s3fs(server) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(endpoint_override=server.endpoint)


def keys(server, bucket: str, prefix: str) -> list[str]:
    infos = s3fs(server).get_file_info(pafs.FileSelector(f"{bucket}/{prefix}", recursive=True))
    return sorted(i.path[len(bucket) + len(prefix) + 2:] for i in infos if i.type == pafs.FileType.File)


def read_lake_directly(server, bucket: str, prefix: str) -> pl.DataFrame:
    """Every Parquet object under the prefix, read with plain pyarrow (not our reader)."""
    fs = s3fs(server)
    frames = [pl.from_arrow(pq.read_table(f"{bucket}/{prefix}/{k}", filesystem=fs))
              for k in keys(server, bucket, prefix) if k.endswith(".parquet")]
    return pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()


def read_json_exports(server, bucket: str, prefix: str) -> list[dict]:
    fs = s3fs(server)
    docs = []
    for k in keys(server, bucket, prefix):
        if k.endswith(".json") and not k.startswith(("manifests/", "global/")):
            with fs.open_input_stream(f"{bucket}/{prefix}/{k}") as fh:
                docs.append(json.loads(fh.read()))
    return docs


@pytest.fixture
def no_endpoint_env(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)


def test_rotation_writes_whole_partitioned_objects_to_s3(s3_server, s3_bucket, no_endpoint_env):
    uri = f"s3://{s3_bucket}/audit"
    batch = generate_events(3_500, seed=11, days=3, start=datetime(2025, 3, 30, tzinfo=UTC))
    audit = AuditLogger(max_events=1_000, auto_export_path=uri,
                        storage_options={"endpoint_url": s3_server.endpoint})
    assert audit.auto_export_path == uri
    audit.log_batch(batch)  # reaches max_events: one rotation of the whole batch
    singles = [audit.log("recall", user_id=f"user_{i % 5}", duration_ms=float(i)) for i in range(1_200)]
    audit.close()  # a second rotation (at 1000) and the rest at close

    stats = audit.get_stats()
    assert stats["rotations"] == 2
    assert stats["exported_events"] == 3_500 + 1_200 and stats["pending_export_events"] == 0

    names = keys(s3_server, s3_bucket, "audit")
    jsons = [k for k in names if k.startswith("audit_")]
    parts = [k for k in names if k.startswith("parquet/")]
    manifests = [k for k in names if k.startswith("manifests/")]
    assert len(jsons) == 3  # one document per export: two rotations + close
    assert all(JSON_KEY.fullmatch(k) for k in jsons), jsons
    assert all(PART_KEY.fullmatch(k) for k in parts), parts
    assert len(manifests) == 1  # this writer's own integrity manifest
    assert len(names) == len(jsons) + len(parts) + 1 + 3  # + one global entry per commit; no temporary objects
    # The manifest lists exactly the objects, and every event's leaf replays into its tree heads.
    listed = [e["file"] for e in json.loads(s3fs(s3_server).open_input_stream(
        f"{s3_bucket}/audit/{manifests[0]}").read())["entries"] if "file" in e]
    assert sorted(listed) == sorted(jsons + parts)
    result = verify(uri, storage_options={"endpoint_url": s3_server.endpoint})
    assert result.ok, result.problems
    assert (result.files_checked, result.events_checked, result.tree_size) == (len(names) - 1 - 3, 4_700, 4_700)

    lake = read_lake_directly(s3_server, s3_bucket, "audit")
    expected_ids = set(batch["event_id"]) if "event_id" in batch.columns else None
    assert lake.height == 4_700 and lake["event_id"].n_unique() == 4_700
    if expected_ids is not None:
        assert expected_ids <= set(lake["event_id"])
    assert {e.event_id for e in singles} <= set(lake["event_id"])
    # Each object sits in the partition of its events' UTC date.
    for k in parts:
        day = PART_KEY.fullmatch(k).group(1)
        t = pq.read_table(f"{s3_bucket}/audit/{k}", filesystem=s3fs(s3_server), columns=["timestamp"])
        dates = {d.isoformat() for d in pl.from_arrow(t)["timestamp"].dt.date().unique()}
        assert dates == {day}
    # The batch's content round-trips through S3 column by column.
    got = lake.filter(pl.col("user_id").cast(pl.String).is_in(batch["user_id"].unique().to_list())
                      & pl.col("timestamp").is_in(batch["timestamp"].to_list()))
    cols = ["timestamp", "operation", "user_id", "session_id", "status", "duration_ms", "error_message"]
    assert_same_rows(got.select(cols), batch.select(cols))

    docs = read_json_exports(s3_server, s3_bucket, "audit")
    assert sum(d["total_events"] for d in docs) == 4_700
    assert {e["event_id"] for d in docs for e in d["events"]} == set(lake["event_id"])


def assert_same_rows(a: pl.DataFrame, b: pl.DataFrame) -> None:
    norm = lambda df: df.select(pl.all().cast(pl.String)).sort(pl.all())
    assert norm(a).equals(norm(b))


texts = st.text(max_size=12).filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | texts, lambda c: st.lists(c, max_size=3) | st.dictionaries(texts, c, max_size=3), max_leaves=6)
event_args = st.fixed_dictionaries({
    "operation": st.sampled_from(list(OperationType)),
    "user_id": st.none() | texts,
    "session_id": st.none() | texts,
    "entry_ids": st.lists(texts, max_size=3),
    "metadata": st.dictionaries(texts, json_values, max_size=3),
    "status": st.sampled_from(list(EventStatus)),
    "error_message": st.none() | texts,
    "duration_ms": st.none() | st.floats(min_value=0, allow_infinity=False),
})


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls=st.lists(event_args, min_size=1, max_size=8), max_events=st.integers(1, 5))
def test_any_events_round_trip_through_s3(s3_server, calls, max_events):
    bucket = s3_server.new_bucket()
    opts = {"endpoint_url": s3_server.endpoint}
    with AuditLogger(max_events=max_events, auto_export_path=f"s3://{bucket}/rt", storage_options=opts) as audit:
        logged = [audit.log(**c) for c in calls]
    back = frame_to_events(scan_lake(f"s3://{bucket}/rt", storage_options=opts).collect().sort("event_id"))
    assert back == sorted(logged, key=lambda e: e.event_id)
    from_json = [AuditEvent.from_dict(e) for d in read_json_exports(s3_server, bucket, "rt") for e in d["events"]]
    assert sorted(from_json, key=lambda e: e.event_id) == back


def test_empty_or_missing_lake_reads_as_no_events(s3_server, s3_bucket):
    opts = {"endpoint_url": s3_server.endpoint}
    assert scan_lake(f"s3://{s3_bucket}/nothing-here", storage_options=opts).collect().height == 0
    assert lake_files(f"s3://{s3_bucket}/nothing-here", storage_options=opts) == []


def test_polars_style_storage_options_serve_both_readers(s3_server, s3_bucket, no_endpoint_env):
    opts = {"aws_endpoint_url": s3_server.endpoint, "aws_allow_http": "true", "aws_region": "us-east-1",
            "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    with AuditLogger(auto_export_path=f"s3://{s3_bucket}/pl", storage_options=opts) as audit:
        audit.log("store", user_id="u1")
    ours = scan_lake(f"s3://{s3_bucket}/pl", storage_options=opts).collect()
    theirs = pl.scan_parquet(f"s3://{s3_bucket}/pl/parquet/**/*.parquet", storage_options=opts).collect()
    assert ours["event_id"].to_list() == theirs["event_id"].to_list() and ours.height == 1


def test_aws_endpoint_url_environment_variable_is_honoured(s3_server, s3_bucket, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    with AuditLogger(auto_export_path=f"s3://{s3_bucket}/env") as audit:
        audit.log("store", user_id="u1", entry_ids=["e1"])
    assert scan_lake(f"s3://{s3_bucket}/env").collect()["user_id"].to_list() == ["u1"]


def test_export_to_file_on_s3_uri(s3_server, s3_bucket, no_endpoint_env):
    opts = {"endpoint_url": s3_server.endpoint}
    audit = AuditLogger(storage_options=opts)
    audit.log("store", user_id="user_123")
    audit.log("forget", user_id="user_456")
    assert audit.export_to_file(f"s3://{s3_bucket}/trails/user_123.json", user_id="user_123") == 1
    (doc,) = read_json_exports(s3_server, s3_bucket, "trails")
    assert [e["user_id"] for e in doc["events"]] == ["user_123"] and doc["total_events"] == 1


def test_failed_upload_keeps_events_and_a_retry_writes_each_once(s3_server, no_endpoint_env):
    bucket = "not-yet-created-" + os.urandom(3).hex()
    audit = AuditLogger(max_events=100, auto_export_path=f"s3://{bucket}/audit",
                        storage_options={"endpoint_url": s3_server.endpoint})
    ids = [audit.log("store", user_id=f"u{i}").event_id for i in range(250)]
    with pytest.raises(ExportError, match="250 events could not be exported"):
        audit.close()
    assert audit.get_stats()["pending_export_events"] == 250  # nothing lost
    pafs.S3FileSystem(endpoint_override=s3_server.endpoint, allow_bucket_creation=True).create_dir(bucket)
    audit.close()
    lake = read_lake_directly(s3_server, bucket, "audit")
    assert sorted(lake["event_id"]) == sorted(ids)
    assert sum(d["total_events"] for d in read_json_exports(s3_server, bucket, "audit")) == 250


def test_an_upload_denied_midway_leaves_no_object_and_the_retry_writes_each_event_once(s3_server, s3_bucket):
    opts = {"endpoint_url": s3_server.endpoint}
    df = generate_events(900, seed=4, days=3, start=datetime(2025, 5, 1, tzinfo=UTC))
    audit = AuditLogger(max_events=10_000, auto_export_path=f"s3://{s3_bucket}/deny", storage_options=opts)
    audit.log_batch(df)
    # The JSON document and the first day's Parquet go up; the second day's is refused.
    s3_server.deny = lambda method, path: method in ("PUT", "POST") and "/date=2025-05-02/" in path
    s3_server.reset()
    try:
        with pytest.raises(ExportError, match="900 events could not be exported"):
            audit.close()
        # Uploaded side by side: the JSON document and whichever other days went up are taken back.
        deleted = sorted(p.split("/deny/")[1] for m, p, q, r in s3_server.requests if m == "DELETE")
        intents = [k for k in deleted if k.startswith(".intents/")]  # the export's intent goes with them
        deleted = [k for k in deleted if k not in intents]
        assert len(intents) == 1 and deleted[0].startswith("audit_") and len(deleted) >= 2
        assert all("date=2025-05-02/" not in k for k in deleted[1:])
        assert keys(s3_server, s3_bucket, "deny") == []  # what had gone up was taken back
        assert audit.get_stats()["pending_export_events"] == 900
    finally:
        s3_server.deny = None
    audit.close()
    lake = scan_lake(f"s3://{s3_bucket}/deny", storage_options=opts).collect()
    assert lake.height == 900 and lake["event_id"].n_unique() == 900
    assert len(read_json_exports(s3_server, s3_bucket, "deny")) == 1


def test_bad_locations_are_refused_with_the_argument_named():
    with pytest.raises(AuditValueError, match="auto_export_path: unsupported URI scheme 'gs'"):
        AuditLogger(auto_export_path="gs://bucket/x")
    with pytest.raises(AuditValueError, match="storage_options: unknown key 'endpoint'"):
        AuditLogger(auto_export_path="s3://bucket/x", storage_options={"endpoint": "http://127.0.0.1:1"})
    with pytest.raises(AuditValueError, match="names no bucket"):
        AuditLogger(auto_export_path="s3:///x")
    with pytest.raises(AuditValueError, match="endpoint_url must look like"):
        AuditLogger(auto_export_path="s3://b/x", storage_options={"endpoint_url": "ftp://127.0.0.1:1"})
    with pytest.raises(AuditTypeError, match="auto_export_path must be"):
        AuditLogger(auto_export_path=42)  # type: ignore[arg-type]


def test_file_uri_is_a_local_folder(tmp_path):
    with AuditLogger(auto_export_path=tmp_path.as_uri()) as audit:
        audit.log("store", user_id="u1")
    assert audit.auto_export_path == tmp_path
    assert len(list(tmp_path.glob("parquet/date=*/*.parquet"))) == 1
    assert scan_lake(tmp_path.as_uri()).collect()["user_id"].to_list() == ["u1"]
    assert AuditArchive(tmp_path.as_uri()).query_events()[0].user_id == "u1"


# --------------------------------------------------------------------------- many writers

WRITER = textwrap.dedent("""
    import json, sys, time
    from axon_audit import AuditLogger
    w, n, go = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    audit = AuditLogger(max_events=400, auto_export_path=sys.argv[4])  # endpoint: AWS_ENDPOINT_URL
    while time.time() < go:  # start together: rotations of the three writers overlap
        time.sleep(0.005)
    ids = [audit.log("store" if i % 3 else "recall", user_id=f"w{w}-u{i % 7}", metadata={"seq": i},
                     status="failure" if i % 11 == 0 else "success").event_id for i in range(n)]
    audit.close()
    json.dump(ids, sys.stdout)
""")


LOCAL_JSON_KEY = re.compile(r"audit_\d{4}_\d\d_\d\d_\d{6}(_\d+)?\.json")


@pytest.mark.slow
@pytest.mark.parametrize("where", ["s3", "file"])
def test_three_writer_processes_share_one_lake(s3_server, s3_bucket, tmp_path, where):
    """No coordination between the writers: unique names, nothing overwritten,
    every event exactly once; a reader during the writes sees whole files only."""
    uri = f"s3://{s3_bucket}/shared" if where == "s3" else (tmp_path / "shared").as_uri()
    env = {**os.environ, "AWS_ENDPOINT_URL": s3_server.endpoint}
    env.pop("AWS_ENDPOINT_URL_S3", None)
    n = 3_000
    go = time.time() + 3.0  # after the three interpreters have imported axon_audit
    logs = [open(tmp_path / f"writer{w}.{s}", "w+") for w in range(3) for s in ("out", "err")]
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(w), str(n), str(go), uri],
                              stdout=logs[2 * w], stderr=logs[2 * w + 1], env=env, text=True)
             for w in range(3)]
    # Read while they write: every listing is a set of whole, readable files.
    loc = resolve(uri, storage_options={"endpoint_url": s3_server.endpoint} if where == "s3" else None)
    reads = []
    while any(p.poll() is None for p in procs):
        reads.append(sum(pq.read_metadata(f.path, filesystem=loc.fs).num_rows for f in lake_files(loc)))
        time.sleep(0.2)
    for p in procs:
        p.wait(timeout=120)
    for fh in logs:
        fh.seek(0)
    outs = [(logs[2 * w].read(), logs[2 * w + 1].read()) for w in range(3)]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    ids = [json.loads(out) for out, _ in outs]
    logged = {i for w in ids for i in w}
    assert len(logged) == 3 * n  # event ids unique across processes

    root = loc.path.rstrip("/") + "/"
    every = [f.path[len(root):] for f in loc.files()]
    manifests = [k for k in every if k == "manifest.json" or k.startswith("manifests/")]
    global_log = [k for k in every if k.startswith("global/")]
    names = [k for k in every if k not in manifests and k not in global_log]
    # The integrity manifest: a local folder keeps one (three writers, one log, under a lock);
    # on object storage each writer keeps its own (no coordination), and verify checks them all.
    assert len(manifests) == (1 if where == "file" else 3), manifests
    result = verify(uri, storage_options={"endpoint_url": s3_server.endpoint} if where == "s3" else None)
    assert result.ok and result.events_checked == 3 * n == result.tree_size, result.problems  # each event once
    assert result.files_checked == len(names)
    json_key = JSON_KEY if where == "s3" else LOCAL_JSON_KEY
    assert all(json_key.fullmatch(k) or PART_KEY.fullmatch(k) for k in names), names
    jsons = [k for k in names if k.endswith(".json")]
    assert len(jsons) >= 3 * (n // 400)

    archive = AuditArchive(uri, storage_options={"endpoint_url": s3_server.endpoint} if where == "s3" else None)
    counted = archive.sql("SELECT count(*) AS n, count(DISTINCT event_id) AS ids FROM archived")
    assert (counted["n"][0], counted["ids"][0]) == (3 * n, 3 * n)  # each event exactly once
    assert archive.get_statistics()["by_operation"]["RECALL"] == 3 * len(range(0, n, 3))
    lf = scan_lake(loc)
    lake = lf.collect()
    assert lake.height == 3 * n and set(lake["event_id"]) == logged
    counts = lf.group_by("user_id").agg(pl.len()).collect()
    assert dict(zip(counts["user_id"].cast(pl.String), counts["len"], strict=True)) == {
        f"w{w}-u{u}": len(range(u, n, 7)) for w in range(3) for u in range(7)}
    docs = [json.loads((loc / k).read_bytes()) for k in jsons]
    assert sorted(e["event_id"] for d in docs for e in d["events"]) == sorted(logged)
    assert reads == sorted(reads) and (not reads or reads[-1] <= 3 * n)  # grows by whole files only
    if where == "s3":  # one global log across the three writers: each commit in it exactly once
        entries = [json.loads(loc.join(k).read_bytes()) for k in global_log]
        assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
        commits = sum(1 for m in manifests for e in json.loads(loc.join(m).read_bytes())["entries"]
                      if e["kind"] == "tree")
        assert len(entries) == commits == len({(e["manifest"], e["head"]["hash"]) for e in entries})
        assert len({e["writer"] for e in entries}) == 3
        # Deleting one writer's whole output (its manifest and every file it lists) is detected and named.
        victim = manifests[1]
        for e in json.loads(loc.join(victim).read_bytes())["entries"]:
            if "file" in e:
                loc.join(e["file"]).unlink(missing_ok=True)
        loc.join(victim).unlink()
        found = verify(uri, storage_options={"endpoint_url": s3_server.endpoint}).problems
        assert found and found[0].startswith(f"{victim}: named by global/"), found
        assert "that writer's output (or its manifest) was deleted" in found[0]


# --------------------------------------------------------------------------- pruning and pushdown


@pytest.fixture
def month_lake(s3_server, s3_bucket, no_endpoint_env):
    """30 days of events in the lake, one object per day."""
    df = generate_events(30_000, seed=5, days=30, start=datetime(2025, 1, 1, tzinfo=UTC))
    uri = f"s3://{s3_bucket}/lake"
    opts = {"endpoint_url": s3_server.endpoint}
    with AuditLogger(max_events=100_000, auto_export_path=uri, storage_options=opts) as audit:
        audit.log_batch(df)
    return uri, opts, df


def test_one_day_query_fetches_only_that_days_objects(s3_server, s3_bucket, month_lake):
    uri, opts, df = month_lake
    all_parts = [k for k in keys(s3_server, s3_bucket, "lake") if k.startswith("parquet/")]
    assert len(all_parts) == 30
    day = datetime(2025, 1, 17, tzinfo=UTC)
    start, end = day, day + timedelta(days=1) - timedelta(microseconds=1)

    s3_server.reset()
    got = scan_lake(uri, storage_options=opts, start_time=start, end_time=end, operation="store").collect()
    fetched = set(s3_server.object_gets(s3_bucket))
    expected = df.filter(pl.col("timestamp").is_between(start, end), pl.col("operation") == "STORE")
    assert got.height == expected.height > 0
    assert sorted(got["timestamp"]) == sorted(expected["timestamp"])
    day_parts = {f"lake/{k}" for k in all_parts if "date=2025-01-17/" in k}
    assert fetched == day_parts  # one object of thirty, and nothing else read

    # The same day through DuckDB over the pruned pyarrow dataset.
    s3_server.reset()
    con = duckdb.connect()
    con.register("dataset", lake_dataset(uri, Filters.build(start_time=start, end_time=end), storage_options=opts))
    n = con.sql("SELECT count(*) FROM dataset WHERE status = 'FAILURE'").fetchall()[0][0]
    assert n == df.filter(pl.col("timestamp").is_between(start, end), pl.col("status") == "FAILURE").height
    assert set(s3_server.object_gets(s3_bucket)) == day_parts


def test_projection_reads_a_fraction_of_the_object(s3_server, s3_bucket, no_endpoint_env):
    day = datetime(2025, 1, 9, tzinfo=UTC)
    df = generate_events(60_000, seed=9, days=1, start=day)
    uri, opts = f"s3://{s3_bucket}/big", {"endpoint_url": s3_server.endpoint}
    with AuditLogger(max_events=200_000, auto_export_path=uri, storage_options=opts) as audit:
        audit.log_batch(df)
    (part,) = lake_files(uri, storage_options=opts)
    s3_server.reset()
    ops = scan_lake(uri, storage_options=opts).select("operation").collect()
    assert ops["operation"].value_counts().sort("operation").equals(
        df["operation"].cast(ops.schema["operation"]).value_counts().sort("operation"))
    ranges = [r for m, p, q, r in s3_server.requests if m == "GET" and p == f"/{part.path}"]
    assert ranges and all(r.startswith("bytes=") for r in ranges)  # ranged reads, never the whole object
    fetched = sum(int(b) - int(a) + 1 for r in ranges for a, b in [r[6:].split("-")])
    assert fetched < part.size / 4, (fetched, part.size)


def test_a_process_exiting_without_close_still_exports_to_s3(s3_server, s3_bucket):
    # pyarrow finalizes its S3 client at exit; the logger's own exit hook must run first.
    script = textwrap.dedent("""
        import sys
        from axon_audit import AuditLogger
        audit = AuditLogger(max_events=400, auto_export_path=sys.argv[1])
        for i in range(1_000):
            audit.log("store", user_id=f"u{i % 7}")
    """)
    env = {**os.environ, "AWS_ENDPOINT_URL": s3_server.endpoint}
    done = subprocess.run([sys.executable, "-c", script, f"s3://{s3_bucket}/atexit"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "failed" not in done.stderr
    lake = scan_lake(f"s3://{s3_bucket}/atexit", storage_options={"endpoint_url": s3_server.endpoint}).collect()
    assert lake.height == 1_000 and lake["event_id"].n_unique() == 1_000
# --------------------------------------------------------------------------- the archive on object storage


def test_archive_over_s3_counts_prunes_and_runs_sql(s3_server, s3_bucket, month_lake):
    uri, opts, df = month_lake
    archive = AuditArchive(uri, storage_options=opts)
    assert archive.source == "parquet"
    assert archive.get_statistics()["total_events"] == df.height
    assert archive.sql("SELECT count(*) AS n FROM archived")["n"][0] == df.height
    day = datetime(2025, 1, 17, tzinfo=UTC)
    start, end = day, day + timedelta(days=1) - timedelta(microseconds=1)
    s3_server.reset()
    got = archive.query_events(start_time=start, end_time=end, status="failure")
    expected = df.filter(pl.col("timestamp").is_between(start, end), pl.col("status") == "FAILURE")
    assert sorted(e.timestamp for e in got) == sorted(expected["timestamp"].to_list())
    assert {k.split("/parquet/")[1].split("/")[0] for k in s3_server.object_gets(s3_bucket)} == {"date=2025-01-17"}
    assert [f.split("/parquet/")[1].split("/")[0] for f in archive.files(start_time=start, end_time=end)] == [
        "date=2025-01-17"]


def test_archive_of_json_exports_on_s3_and_the_loggers_archived_reads(s3_server, s3_bucket, no_endpoint_env):
    opts = {"endpoint_url": s3_server.endpoint}
    uri = f"s3://{s3_bucket}/mixed"
    audit = AuditLogger(max_events=50, auto_export_path=uri, storage_options=opts)
    ids = [audit.log("store", user_id=f"u{i % 3}").event_id for i in range(120)]
    audit.flush()
    assert len(audit.query_events(include_archived=True)) == 120  # memory + the objects on S3
    audit.close()
    by_json = AuditArchive(uri, source="json", storage_options=opts)
    assert sorted(e.event_id for e in by_json.query_events()) == sorted(ids)
    assert by_json.get_user_statistics("u1")["total_operations"] == 40


def test_cli_reads_an_s3_lake(s3_server, s3_bucket, no_endpoint_env):
    """The console script's PATH takes an s3:// URI (endpoint from AWS_ENDPOINT_URL)."""
    opts = {"endpoint_url": s3_server.endpoint}
    uri = f"s3://{s3_bucket}/cli"
    with AuditLogger(auto_export_path=uri, storage_options=opts) as audit:
        for i in range(30):
            audit.log("store" if i % 3 else "recall", user_id=f"u{i % 2}")
    script = Path(sys.executable).with_name("axon-audit")
    env = {**os.environ, "AWS_ENDPOINT_URL": s3_server.endpoint}
    done = subprocess.run([str(script), "sql", uri, "SELECT operation, count(*) AS n FROM events GROUP BY 1 ORDER BY 1",
                           "--format", "csv"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["operation,n", "RECALL,10", "STORE,20"]


def _lake_for_cli(s3_server, bucket: str, prefix: str) -> tuple[str, list]:
    uri = f"s3://{bucket}/{prefix}"
    with AuditLogger(auto_export_path=uri, storage_options={"endpoint_url": s3_server.endpoint}) as audit:
        events = [audit.log(("store", "recall", "forget")[i % 3], user_id=f"u{i % 4}") for i in range(40)]
    return uri, events


@pytest.mark.parametrize("how", [
    ["--endpoint-url", "{endpoint}"],
    ["-O", "endpoint_url={endpoint}"],
    # polars' spellings, as a user copies them from a polars storage_options dict
    ["--storage-option", "aws_endpoint_url={endpoint}", "-O", "aws_allow_http=true", "-O", "aws_region=us-east-1"],
], ids=["--endpoint-url", "-O endpoint_url", "aws_ spellings"])
def test_cli_storage_options_name_the_endpoint(s3_server, s3_bucket, no_endpoint_env, how):
    """With AWS_ENDPOINT_URL unset, the endpoint given on the command line is the one used."""
    assert "AWS_ENDPOINT_URL" not in os.environ  # the subprocess inherits this environment
    uri, events = _lake_for_cli(s3_server, s3_bucket, "opts")
    script = Path(sys.executable).with_name("axon-audit")
    args = [a.format(endpoint=s3_server.endpoint) for a in how]
    done = subprocess.run([str(script), "query", uri, "-u", "u1", "-o", "recall", "-f", "json", *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    expected = [e for e in events if e.user_id == "u1" and e.operation == OperationType.RECALL]
    assert doc["total_events"] == len(expected) > 0
    assert [e["event_id"] for e in doc["events"]] == [e.event_id for e in reversed(expected)]  # newest first


def test_an_upload_cut_off_before_its_commit_is_a_leftover_not_an_inserted_object(s3_server, s3_bucket):
    # Without a WAL: the writer dies after uploading its second export's objects, before the
    # commit. Its intent names them, so verify lists them as leftovers and stays intact.
    script = textwrap.dedent("""
        import os, sys
        from axon_audit import AuditLogger
        from axon_audit.integrity import manifest
        commit, calls = manifest.WriterManifest.commit, []
        def dying(self, *args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                os._exit(9)  # killed between the uploads and the commit
            return commit(self, *args, **kwargs)
        manifest.WriterManifest.commit = dying
        audit = AuditLogger(max_events=100, auto_export_path=sys.argv[1])
        for i in range(250):
            audit.log("store", user_id=f"u{i % 3}")
        audit.close()
    """)
    uri = f"s3://{s3_bucket}/cutoff"
    env = {**os.environ, "AWS_ENDPOINT_URL": s3_server.endpoint}
    done = subprocess.run([sys.executable, "-c", script, uri], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 9, done.stderr
    names = keys(s3_server, s3_bucket, "cutoff")
    assert [k for k in names if k.startswith(".intents/")], names  # the cut-off export's intent stayed
    options = {"endpoint_url": s3_server.endpoint}
    check = verify(uri, storage_options=options)
    assert check.ok, check.problems
    assert check.events_checked == 100 and len(check.leftovers) == 2  # its JSON document and one part
    planted = s3fs(s3_server)
    with planted.open_output_stream(f"{s3_bucket}/cutoff/audit_2099_01_01_000000_aaaaaaaaaaaa.json") as fh:
        fh.write(b"{}")
    check = verify(uri, storage_options=options)  # a file no intent names is still a finding
    assert not check.ok and any("inserted" in p for p in check.problems), check.problems


def test_a_committed_export_leaves_no_intent_on_s3(s3_server, s3_bucket, no_endpoint_env):
    uri = f"s3://{s3_bucket}/clean"
    with AuditLogger(max_events=50, auto_export_path=uri, storage_options={"endpoint_url": s3_server.endpoint}) as a:
        for _ in range(120):
            a.log("recall", user_id="u")
    assert not [k for k in keys(s3_server, s3_bucket, "clean") if k.startswith(".intents/")]
