"""The Delta Lake format (``lake_format="delta"``): rotations as Delta commits, locally
and on a real S3 server (moto's server mode on 127.0.0.1, see conftest.py).

Writers are real AuditLoggers, in real processes; the table is read back through
`AuditArchive` (polars.scan_delta) and through delta-rs itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest

pytest.importorskip("deltalake")

from deltalake import DeltaTable

from axon_audit import AuditArchive, AuditLogger
from axon_audit.exceptions import AuditError, AuditTypeError, AuditValueError
from axon_audit.integrity.checkpoint import SigningKey, open_checkpoint
from axon_audit.integrity.leaf import leaf_hashes
from axon_audit.integrity.merkle import CompactRange
from axon_audit.io.delta import TREE_KEY, commit_info, delta_options, tree_head_of
from axon_audit.io.location import resolve
from axon_audit.model.schema import COLUMNS, FRAME_SCHEMA

REPO = Path(__file__).resolve().parents[1]

WRITER = textwrap.dedent("""
    import sys
    from datetime import datetime, timedelta, timezone
    from axon_audit import AuditLogger
    root, endpoint, tag, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    opts = {"endpoint_url": endpoint} if endpoint else None
    t0 = datetime(2025, 3, 1, tzinfo=timezone.utc)
    with AuditLogger(max_events=50, auto_export_path=root, lake_format="delta", storage_options=opts) as audit:
        for i in range(n):  # spans several days, so each commit holds several date partitions
            audit.log_batch([{"operation": "store", "user_id": tag, "entry_ids": [f"{tag}-{i}"],
                              "timestamp": t0 + timedelta(hours=7 * i)}])
        audit.flush()
        stats = audit.get_stats()
        assert stats["pending_export_events"] == 0, stats
    print("conflicts", getattr(audit._exporter.target, "conflicts", 0))
""")


def _version_events(root: str, version: int, opts: dict[str, str] | None) -> pl.DataFrame:
    """The events commit `version` added (its files, in partition order), via delta-rs."""
    uri = root

    def files(v: int) -> set[str]:
        if v < 0:
            return set()
        dt = DeltaTable(uri, version=v, storage_options=opts)
        return set(pa.table(dt.get_add_actions()).column("path").to_pylist())

    added = sorted(files(version) - files(version - 1))  # date=YYYY-MM-DD/... sorts by day
    dt = DeltaTable(uri, version=version, storage_options=opts)
    frames = [pl.read_parquet(f"{uri.rstrip('/')}/{rel}", storage_options=opts) for rel in added]
    assert dt.version() == version
    return pl.concat(frames).select(COLUMNS).cast(dict(FRAME_SCHEMA))  # type: ignore[arg-type]


def _check_heads(root: str, loc: Any, opts: dict[str, str] | None) -> int:
    """Every commit's tree head equals the tree recomputed from the events of the
    commits up to it; returns the final size."""
    latest = DeltaTable(root, storage_options=opts).version()
    tree = CompactRange()
    for v in range(latest + 1):
        tree.extend(leaf_hashes(_version_events(root, v, opts)))
        head = tree_head_of(commit_info(loc, v))
        assert head is not None, v
        assert (head["size"], head["root"]) == (tree.size, tree.root().hex()), f"version {v}"
    return tree.size


def _run_writers(root: str, endpoint: str, n: int) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, root, endpoint, f"w{k}", str(n)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in range(3)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outs.append(out)
    return outs


@pytest.mark.slow
@pytest.mark.parametrize("where", ["local", "s3"])
def test_three_processes_commit_every_event_exactly_once(where: str, tmp_path: Path, request: Any) -> None:
    if where == "s3":
        server = request.getfixturevalue("s3_server")
        root, endpoint = f"s3://{server.new_bucket()}/audit", server.endpoint
        loc: Any = resolve(root, storage_options={"endpoint_url": endpoint})
    else:
        root, endpoint = str(tmp_path / "lake"), ""
        loc = tmp_path / "lake"
    n = 400
    outs = _run_writers(root, endpoint, n)
    opts = delta_options(loc, {"endpoint_url": endpoint} if endpoint else None)
    archive = AuditArchive(root, storage_options={"endpoint_url": endpoint} if endpoint else None)
    df = archive.scan().collect()
    assert df.height == 3 * n
    assert df["event_id"].n_unique() == 3 * n
    got = sorted(df.explode("entry_ids")["entry_ids"].to_list())
    assert got == sorted(f"w{k}-{i}" for k in range(3) for i in range(n))  # each event exactly once
    assert pl.scan_delta(root, storage_options=opts).collect().height == 3 * n  # any Delta reader agrees
    dt = DeltaTable(root, storage_options=opts)
    assert dt.version() + 1 == 3 * (n // 50)  # one commit per rotation, no more
    # Each writer prints its conflict count; whether three processes collide at all is up to the
    # scheduler, so exactly-once is what is asserted, not that a conflict happened.
    assert len(outs) == 3
    assert _check_heads(root, loc, opts) == 3 * n


def _logged(root: Path, batches: int, per: int = 10, **kw: Any) -> list[list[str]]:
    """`batches` rotations of `per` events each; returns the entry ids of each version."""
    out = []
    with AuditLogger(max_events=per, auto_export_path=root, lake_format="delta", **kw) as audit:
        for b in range(batches):
            ids = [f"b{b}-{i}" for i in range(per)]
            for e in ids:
                audit.log("store", user_id="u", entry_ids=[e])
            audit.flush()
            out.append(ids)
            time.sleep(0.01)
    return out


def test_as_of_reads_exactly_an_earlier_version(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    versions = _logged(root, 4)
    assert DeltaTable(str(root)).version() == 3
    for v in range(4):
        df = AuditArchive(root, as_of=v).scan().collect()
        want = sorted(e for ids in versions[: v + 1] for e in ids)
        assert sorted(df.explode("entry_ids")["entry_ids"].to_list()) == want
        assert AuditArchive(root, as_of=v).sql("SELECT count(*) AS n FROM archived")["n"][0] == len(want)
    # by time: the version current at each commit's time, then between commits
    times = [datetime.fromtimestamp(h["timestamp"] / 1000, timezone.utc) for h in
             sorted(DeltaTable(str(root)).history(), key=lambda h: h["version"])]
    a = AuditArchive(root, as_of=times[1] + timedelta(microseconds=500))
    assert a.get_statistics()["total_events"] == 20
    assert AuditArchive(root).get_statistics()["total_events"] == 40  # newest by default


def test_commit_metadata_holds_the_tree_head_and_signed_checkpoint(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    key = SigningKey.generate("audit.example/delta")
    _logged(root, 3, signing_key=key)
    assert _check_heads(str(root), root, None) == 30
    for v in range(3):
        info = commit_info(root, v)
        assert info is not None and TREE_KEY in info
        head = tree_head_of(info)
        assert head is not None
        cp = open_checkpoint(head["checkpoint"].encode(), [key.verifier()])
        assert (cp.size, cp.root.hex()) == (head["size"], head["root"])
        assert cp.extensions == (f"axon_audit.delta {v}",)
    # the history delta-rs gives shows it too (Spark: DESCRIBE HISTORY, userMetadata-like key)
    hist = {h["version"]: h for h in DeltaTable(str(root)).history()}
    assert tree_head_of(hist[2])["size"] == 30  # type: ignore[index]


@pytest.mark.parametrize("as_of, error, text", [
    (-1, AuditValueError, "as_of must be a Delta version >= 0"),
    (True, AuditTypeError, "as_of must be a Delta version (int) or a datetime, got bool"),
    ("1", AuditTypeError, "as_of must be a Delta version (int) or a datetime, got str"),
    (2.0, AuditTypeError, "got float"),
    (datetime(2025, 1, 1), AuditValueError, "as_of must be a timezone-aware datetime"),
    (7, AuditValueError, "as_of: version 7 does not exist yet"),
    (datetime(2001, 1, 1, tzinfo=timezone.utc), AuditValueError, "as_of: "),
])
def test_wrong_as_of_is_a_clear_error(tmp_path: Path, as_of: Any, error: type, text: str) -> None:
    root = tmp_path / "lake"
    _logged(root, 2)
    with pytest.raises(error) as exc:
        AuditArchive(root, as_of=as_of)
    assert text in str(exc.value)


def test_as_of_on_a_parquet_lake_and_bad_lake_format(tmp_path: Path) -> None:
    with AuditLogger(max_events=5, auto_export_path=tmp_path / "plain") as audit:
        for _ in range(6):
            audit.log("store", user_id="u")
    with pytest.raises(AuditValueError, match=r"as_of: .* is not a Delta lake"):
        AuditArchive(tmp_path / "plain", as_of=0)
    with pytest.raises(AuditValueError, match="lake_format must be one of"):
        AuditLogger(auto_export_path=tmp_path / "x", lake_format="iceberg")  # type: ignore[arg-type]
    with pytest.raises(AuditValueError, match="lake_format='delta' needs auto_export_path"):
        AuditLogger(lake_format="delta")
    with pytest.raises(AuditValueError, match="wal_path is not supported with lake_format='delta'"):
        AuditLogger(auto_export_path=tmp_path / "y", wal_path=tmp_path / "wal", lake_format="delta")
    assert issubclass(AuditValueError, AuditError)


FAILING_WRITER = textwrap.dedent("""
    import sys
    from axon_audit import AuditLogger
    from axon_audit.exceptions import ExportError
    from axon_audit.workload import generate_events
    root, endpoint = sys.argv[1], sys.argv[2]
    audit = AuditLogger(max_events=10_000, auto_export_path=root, lake_format="delta",
                        storage_options={"endpoint_url": endpoint})
    audit.log_batch(generate_events(200, seed=3, days=2))
    try:
        audit.close()
        print("closed", flush=True)
    except ExportError as exc:
        print("failed", audit.get_stats()["pending_export_events"], "|", str(exc).replace("\\n", " "), flush=True)
    sys.stdin.readline()  # the parent lets the commits through again
    audit.close()
    print("ok", audit.get_stats()["pending_export_events"], flush=True)
""")


@pytest.mark.parametrize("refused", ["the commit", "everything"])
def test_a_refused_delta_commit_keeps_the_events_and_the_retry_commits_them_once(s3_server, refused) -> None:
    """The store refuses every `_delta_log` write, or every request, even the listing
    (403, as a bucket policy would): the export fails as a storage error (not as bad
    data), its 200 events stay pending, and once the store answers again one commit
    lands them exactly once. The writer runs in a
    process of its own: deltalake holds the GIL while it waits on the store, so a
    writer in this process would keep the test's in-process S3 server from answering."""
    bucket = s3_server.new_bucket()
    root = f"s3://{bucket}/delta"
    s3_server.deny = ((lambda method, path: method in ("PUT", "POST") and "/_delta_log/" in path)
                      if refused == "the commit" else (lambda method, path: path.startswith(f"/{bucket}")))
    child = subprocess.Popen([sys.executable, "-c", FAILING_WRITER, root, s3_server.endpoint], cwd=REPO,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert child.stdout is not None and child.stdin is not None
        line = child.stdout.readline()
        assert line.startswith("failed 200 | 200 events could not be exported"), (line, child.stderr.read()
                                                                                   if not line else "")
        assert f"(last error: ExportError: Delta commit to {root} failed: " in line  # the storage's failure, named
        s3_server.deny = None
        child.stdin.write("go\n")
        child.stdin.flush()
        rest = [child.stdout.readline() for _ in range(50)]  # the error's message runs over several lines
        assert "ok 0\n" in rest, rest
        assert child.wait(timeout=120) == 0
    finally:
        s3_server.deny = None
        if child.poll() is None:
            child.kill()
    df = AuditArchive(root, storage_options={"endpoint_url": s3_server.endpoint}).scan().collect()
    assert df.height == 200 and df["event_id"].n_unique() == 200
    opts = delta_options(resolve(root, storage_options={"endpoint_url": s3_server.endpoint}))
    assert DeltaTable(root, storage_options=opts).version() == 0  # one commit, the retry's
