"""The compliance report and the statistics on a real Dask cluster over an s3:// lake.

A moto server (tests/conftest.py) holds a lake written by a real AuditLogger:
3 days in each of two months. A LocalCluster of 2 worker processes on
127.0.0.1 reads it from the server directly (the workers inherit the test
credentials from the environment). The Dask engine's results must equal the
local engine's, and a month's report must read only that month's objects.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from axon_audit import AuditLogger, compliance_report
from axon_audit.compliance import distributed as dist
from axon_audit.exceptions import ArchiveError, AuditValueError
from axon_audit.read.sources import open_source
from axon_audit.workload import generate_events

pytest.importorskip("distributed")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning")


@pytest.fixture(scope="module")
def lake(s3_server) -> tuple[str, dict[str, str], str]:
    bucket = s3_server.new_bucket()
    uri, opts = f"s3://{bucket}/audit", {"endpoint_url": s3_server.endpoint}
    with AuditLogger(max_events=400, auto_export_path=uri, storage_options=opts) as audit:
        for start in (datetime(2026, 1, 29, tzinfo=UTC), datetime(2026, 2, 26, tzinfo=UTC)):
            audit.log_batch(generate_events(600, seed=start.month, days=3, start=start))
    return uri, opts, bucket


def _entries(uri: str, opts: dict[str, str]) -> list[str]:
    """Two entry ids the lake's events touch (one each month), for the entry_access section."""
    df = open_source(uri, storage_options=opts).scan().select("timestamp", "entry_ids").explode("entry_ids")
    df = df.drop_nulls().collect()
    return [df.filter(pl.col("timestamp").dt.month() == m)["entry_ids"][0] for m in (1, 2)]


@pytest.fixture(scope="module")
def client(s3_server) -> Iterator[object]:
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def _same_report(a, b) -> None:
    assert a.to_dict() == b.to_dict()
    assert a.frames.keys() == b.frames.keys()
    for name in a.frames:
        assert_frame_equal(a.frames[name], b.frames[name], categorical_as_str=True)
    for name in b.charts:
        assert_frame_equal(a.charts[name], b.charts[name])


@pytest.mark.parametrize("month", ["2026-01", "2026-02", "2026-03"])
def test_dask_report_equals_the_local_one_month_by_month(lake, client, month):
    uri, opts, _ = lake
    wanted = _entries(uri, opts)
    local = compliance_report(open_source(uri, storage_options=opts), month, entry_ids=wanted)
    remote = dist.compliance_report(uri, month, client=client, storage_options=opts, entry_ids=wanted)
    _same_report(remote, local)
    if month == "2026-03":
        assert remote.total_events == 0
    else:
        assert remote.total_events > 100 and remote.frames["entry_access"].height > 0


def test_dask_statistics_equal_get_statistics(lake, client):
    uri, opts, _ = lake
    local = dict(open_source(uri, storage_options=opts).get_statistics())
    remote = dist.lake_statistics(uri, client=client, storage_options=opts)
    assert remote == local
    assert remote["total_events"] == 1_200


def test_a_month_reads_only_its_own_partitions(lake, client, s3_server):
    uri, opts, bucket = lake
    s3_server.reset()
    report = dist.compliance_report(uri, "2026-02", client=client, storage_options=opts)
    got = [k for k in s3_server.object_gets(bucket) if "/parquet/date=" in k]
    days = {k.split("/parquet/date=")[1][:10] for k in got}
    assert days == {"2026-02-26", "2026-02-27", "2026-02-28"}
    assert report.total_events == 600


def test_each_partition_is_one_task_on_the_workers(lake, client):
    uri, opts, _ = lake
    distributed = pytest.importorskip("distributed")
    with distributed.get_task_stream(client) as stream:
        dist.lake_statistics(uri, client=client, storage_options=opts)
    tasks = [t for t in stream.data if "_read_partition" in t["key"]]
    assert len(tasks) == 6  # 2026-01-29 .. 2026-01-31, 2026-02-26 .. 2026-02-28
    assert {t["worker"] for t in tasks} <= set(client.scheduler_info()["workers"])


def test_the_current_client_is_used_when_none_is_given(lake, client):
    uri, opts, _ = lake
    assert dist.lake_statistics(uri, storage_options=opts)["total_events"] == 1_200


def test_a_partition_the_workers_cannot_read_is_an_archive_error(lake, client, s3_server):
    uri, opts, _ = lake
    s3_server.deny = lambda method, path: method == "GET" and "/parquet/date=2026-02-27/" in path
    try:
        with pytest.raises(ArchiveError, match=f"cannot read the events under {uri}"):
            dist.compliance_report(uri, "2026-02", client=client, storage_options=opts)
        assert dist.compliance_report(uri, "2026-01", client=client, storage_options=opts).total_events == 600
    finally:
        s3_server.deny = None


def test_without_a_client_the_error_says_what_to_pass(tmp_path):
    # A fresh interpreter: this one has the fixture's client as its current one.
    code = ("from axon_audit.compliance.distributed import lake_statistics\n"
            "from axon_audit.exceptions import AuditValueError\n"
            f"try:\n    lake_statistics({str(tmp_path)!r})\nexcept AuditValueError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "engine 'dask' needs a Dask client: pass client=, or create one first"


def test_a_bad_engine_is_named(lake):
    uri, opts, _ = lake
    with pytest.raises(AuditValueError, match="engine must be one of 'dask', 'local', got 'spark'"):
        dist.compliance_report(uri, "2026-01", engine="spark", storage_options=opts)
    with pytest.raises(AuditValueError, match="got 'ray'"):
        dist.lake_statistics(uri, engine="ray", storage_options=opts)


def test_local_engine_is_the_local_report(lake):
    uri, opts, _ = lake
    _same_report(dist.compliance_report(uri, "2026-01", engine="local", storage_options=opts),
                 compliance_report(open_source(uri, storage_options=opts), "2026-01"))


def test_a_local_folder_lake_gives_the_same_report(tmp_path, client):
    with AuditLogger(max_events=300, auto_export_path=tmp_path) as audit:
        audit.log_batch(generate_events(500, seed=3, days=2, start=datetime(2026, 5, 30, 20, tzinfo=UTC)))
    archive = open_source(tmp_path)
    for month in ("2026-05", "2026-06"):
        _same_report(dist.compliance_report(archive, month, client=client), compliance_report(archive, month))
    assert dist.lake_statistics(archive, client=client) == dict(archive.get_statistics())
