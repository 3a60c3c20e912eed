"""Object-storage lake: rotation into S3, a one-day query over a year of data, and
the integrity manifest's cost there (a commit as a writer's manifest grows, and
`verify` of the year).

Runs against moto's S3 server on 127.0.0.1, so the figures are those of a local
S3-compatible server: they show the requests and bytes a query costs, not a real
S3's latency. Queries go to a server in a thread of this process (it counts the
requests); rotation timings go to a `moto_server` process (no GIL shared with
the writer), with uploads one by one and side by side.

    .venv/bin/python benchmarks/bench_lake.py [events_per_day]
    .venv/bin/python benchmarks/bench_lake.py global        # the global log's commit latency only
    .venv/bin/python benchmarks/bench_lake.py maintenance   # erasure and retention on a lake only
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                  AWS_EC2_METADATA_DISABLED="true")
logging.getLogger("werkzeug").setLevel(logging.WARNING)

import polars as pl  # noqa: E402 - the AWS environment is set first
import pyarrow.fs as pafs  # noqa: E402 - the AWS environment is set first
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app  # noqa: E402 - the AWS environment is set first
from werkzeug.serving import make_server  # noqa: E402 - the AWS environment is set first

from axon_audit import AuditLogger, SigningKey, VerifyResult, scan_lake, verify  # noqa: E402 - the AWS environment is set first
from axon_audit.integrity import manifest as _integrity  # noqa: E402 - the AWS environment is set first
from axon_audit.io import location as _fs  # noqa: E402 - the AWS environment is set first
from axon_audit.workload import generate_events  # noqa: E402 - the AWS environment is set first

UTC = timezone.utc
requests: list[tuple[str, str, str]] = []


def serve() -> str:
    app = DomainDispatcherApplication(create_backend_app)

    def counting(environ, start_response):  # type: ignore[no-untyped-def]
        requests.append((environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""), environ.get("HTTP_RANGE", "")))
        return app(environ, start_response)

    httpd = make_server("127.0.0.1", 0, counting, threaded=True, request_handler=MotoRequestHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{httpd.server_address[1]}"


@contextlib.contextmanager
def moto_process(bucket: str) -> Iterator[dict[str, str]]:
    """A moto_server process on a free loopback port, with `bucket` made; yields the
    storage options that reach it (a separate process: no GIL shared with the writers)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "moto_server"), "-H", "127.0.0.1",
                               "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        opts = {"endpoint_url": f"http://127.0.0.1:{port}"}
        for _ in range(100):
            try:
                pafs.S3FileSystem(endpoint_override=opts["endpoint_url"], allow_bucket_creation=True).create_dir(bucket)
                break
            except OSError:
                time.sleep(0.1)
        yield opts
    finally:
        server.terminate()
        server.wait()


def fetched() -> tuple[int, int, int]:
    """(requests, objects read, bytes read) since the last clear."""
    gets = [(p, r) for m, p, r in requests if m == "GET" and p.count("/") > 1]
    nbytes = 0
    for _, r in gets:
        a, _, b = r.removeprefix("bytes=").partition("-")
        if a and b:
            nbytes += int(b) - int(a) + 1
        elif b:  # a suffix range: the last b bytes
            nbytes += int(b)
    return len(requests), len({p for p, _ in gets}), nbytes


def main() -> None:
    per_day = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000
    endpoint = serve()
    pafs.S3FileSystem(endpoint_override=endpoint, allow_bucket_creation=True).create_dir("bench-lake")
    opts = {"endpoint_url": endpoint}
    df = generate_events(per_day * 365, seed=1, days=365, start=datetime(2025, 1, 1, tzinfo=UTC))
    print(f"{df.height:,} events over 365 days ({per_day:,}/day)")

    with moto_process("rotation") as out_opts:  # uploads to a server in its own process
        for name, target, opt, workers in (
            ("local folder", tempfile.mkdtemp(), None, 1),
            ("moto_server, uploads one by one", "s3://rotation/seq", out_opts, 1),
            (f"moto_server, {_fs.UPLOAD_WORKERS} uploads side by side", "s3://rotation/par", out_opts,
             _fs.UPLOAD_WORKERS),
        ):
            saved, _fs.UPLOAD_WORKERS = _fs.UPLOAD_WORKERS, workers
            t = time.perf_counter()
            with AuditLogger(max_events=df.height + 1, auto_export_path=target, storage_options=opt) as audit:
                audit.log_batch(df)
            dt = time.perf_counter() - t
            _fs.UPLOAD_WORKERS = saved
            print(f"rotation (JSON + 365 Parquet partitions) to {name}: {dt:.2f} s, "
                  f"{df.height / dt / 1e6:.3f} M events/s")
        commit_costs(out_opts)
        global_log_costs(out_opts)
        maintenance_costs(out_opts)
        verify_cost("s3://rotation/par", out_opts)
    with AuditLogger(max_events=df.height + 1, auto_export_path="s3://bench-lake/year", storage_options=opts) as audit:
        audit.log_batch(df)  # the lake the queries below read (in-process server: requests counted)

    day = datetime(2025, 7, 14, tzinfo=UTC)
    q = dict(start_time=day, end_time=day + timedelta(days=1) - timedelta(microseconds=1), operation="recall")
    for label, lf in (
        ("one day, scan_lake (pruned + pushdown)",
         lambda: scan_lake("s3://bench-lake/year", storage_options=opts, **q)),
        ("one day, baseline: polars scan_parquet of the glob, same filters", lambda: pl.scan_parquet(
            "s3://bench-lake/year/parquet/**/*.parquet", hive_partitioning=True,
            storage_options={"aws_endpoint_url": endpoint, "aws_allow_http": "true", "aws_region": "us-east-1"},
        ).filter(pl.col("timestamp").is_between(q["start_time"], q["end_time"]),
                 pl.col("operation").cast(pl.String) == "RECALL")),
        ("whole year, scan_lake", lambda: scan_lake("s3://bench-lake/year", storage_options=opts)),
    ):
        best = float("inf")
        for _ in range(3):
            requests.clear()
            t = time.perf_counter()
            n = lf().select(pl.len()).collect().item()
            best = min(best, time.perf_counter() - t)
        reqs, objects, nbytes = fetched()
        print(f"{label}: {n:,} events, best of 3 {best * 1000:.0f} ms, {reqs} requests, "
              f"{objects} objects read, {nbytes / 1e6:.2f} MB fetched")
    dask_costs("s3://bench-lake/year", opts)


def dask_costs(uri: str, opts: dict, month: str = "2025-07") -> None:
    """One month's compliance report of the year's lake: the local engine against a Dask
    cluster of 2 worker processes on 127.0.0.1 reading the objects directly (same report),
    best of 3 each after a warm-up, with the objects each one fetched."""
    import distributed  # here: the dask extra, only for this figure

    from axon_audit.compliance.distributed import compliance_report

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None)
    with distributed.Client(cluster) as client:
        reports = {}
        for engine in ("local", "dask"):
            best = float("inf")
            compliance_report(uri, month, engine=engine, client=client, storage_options=opts)  # warm-up
            for _ in range(3):
                requests.clear()
                t = time.perf_counter()
                reports[engine] = compliance_report(uri, month, engine=engine, client=client,
                                                    storage_options=opts)
                best = min(best, time.perf_counter() - t)
            reqs, objects, nbytes = fetched()
            print(f"compliance report of {month}, engine={engine}"
                  f"{' (2 worker processes)' if engine == 'dask' else ''}: best of 3 {best:.2f} s, {reqs} requests, "
                  f"{objects} objects read, {nbytes / 1e6:.1f} MB fetched")
        assert reports["local"].to_dict() == reports["dask"].to_dict()
    cluster.close()


def verify_cost(uri: str, opts: dict) -> None:
    """`verify` of the year's lake against a plain download of the same objects."""
    root = _fs.resolve(uri, storage_options=opts)
    t = time.perf_counter()
    nbytes = 0
    for info in root.files():
        with root.fs.open_input_stream(info.path) as fh:
            nbytes += len(fh.read())
    plain = time.perf_counter() - t
    t = time.perf_counter()
    result = verify(uri, storage_options=opts)
    dt = time.perf_counter() - t
    assert result.ok, result.problems
    print(f"verify of the year ({result.files_checked} objects, {nbytes / 1e6:.0f} MB, "
          f"{result.events_checked:,} events replayed into the Merkle log): {dt:.1f} s; a plain download of "
          f"the same objects one by one: {plain:.1f} s (ratio {dt / plain:.2f})")


def commit_costs(opts: dict) -> None:
    """One writer manifest's commit (one PUT of the whole document) as it grows to a
    full segment: two entries a commit, as a one-day rotation adds (JSON + Parquet)."""
    root = _fs.resolve("s3://rotation/manifest-cost", storage_options=opts)
    m = _integrity.WriterManifest(root, key=b"bench")
    entry = {"file": "parquet/date=2025-01-01/part-x.parquet", "kind": "parquet", "sha256": "0" * 64, "bytes": 1,
             "rows": 1, "first_event_id": "evt_" + "0" * 30, "last_event_id": "evt_" + "0" * 30,
             "first_time": "2025-01-01T00:00:00.000000Z", "last_time": "2025-01-01T00:00:00.000000Z",
             "leaves": [0, 1]}
    times: list[tuple[int, float, int]] = []
    for _ in range(_integrity.SEGMENT_ENTRIES // 2 + 1):
        n = len(m.doc["entries"])
        t = time.perf_counter()
        m.commit([dict(entry, kind="json"), entry], "2025-01-01T00:00:00.000000Z", m.tree)
        times.append((n, time.perf_counter() - t, len(_integrity.manifest_bytes(m.doc))))
    for at in (0, _integrity.SEGMENT_ENTRIES // 2, _integrity.SEGMENT_ENTRIES - 2, _integrity.SEGMENT_ENTRIES):
        near = sorted(dt for n, dt, _ in times if abs(n - at) <= 8)
        size = max(b for n, _, b in times if abs(n - at) <= 8)
        print(f"manifest commit with ~{at} entries before it (to moto_server): median "
              f"{near[len(near) // 2] * 1000:.1f} ms, document {size / 1024:.0f} KB")


def global_log_costs(opts: dict, writers: int = 3, commits: int = 40) -> None:
    """The global log's commit (integrity/global_log.py: one conditional PUT, and on a
    conflict a listing, a read and a jittered retry) as `writers` threads commit at once."""
    import threading  # here: only this figure runs writers side by side

    from axon_audit.integrity.global_log import GlobalLog

    root = _fs.resolve(f"s3://rotation/global-cost-{time.time_ns()}", storage_options=opts)
    logs = [GlobalLog(root, key=b"bench") for _ in range(writers)]
    times: list[float] = []
    start = threading.Barrier(writers)

    def run(g: GlobalLog, w: int) -> None:
        start.wait()
        for i in range(commits):
            t = time.perf_counter()
            g.commit(f"w{w}", f"manifests/w{w}-000001.json", {"entries": i + 1, "hash": "0" * 64}, ("0" * 64, 1))
            times.append(time.perf_counter() - t)

    threads = [threading.Thread(target=run, args=(g, w)) for w, g in enumerate(logs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    times.sort()
    print(f"global log commit, {writers} concurrent writers x {commits} commits (to moto_server): median "
          f"{times[len(times) // 2] * 1000:.1f} ms, p95 {times[int(len(times) * 0.95)] * 1000:.1f} ms per commit, "
          f"{sum(g.conflicts for g in logs)} conflicts retried, {sum(g.failures for g in logs)} given up")


def _verified(uri: str, opts: dict, key: SigningKey) -> tuple[VerifyResult, float]:
    """`verify` of the lake with the public key, and its seconds (it must pass)."""
    t = time.perf_counter()
    checked = verify(uri, key="bench", public_key=key.verifier(), storage_options=opts)
    assert checked.ok, checked.problems
    return checked, time.perf_counter() - t


def maintenance_costs(opts: dict, per_day: int = 2_000, days: int = 90) -> None:
    """Erasure of one user and retention of two months on a lake of two signed writers
    (compliance/lake_maintenance.py, compliance/lake_retention.py), each followed by
    `verify` with the public key; against the floor of the same work: a plain download and
    re-upload of the objects erasure rewrote."""
    from axon_audit import apply_retention, erase_subject
    key = SigningKey.generate("bench.example/lake")
    uri = f"s3://rotation/maintenance-{time.time_ns()}"
    df = generate_events(per_day * days, seed=2, days=days, start=datetime(2025, 1, 1, tzinfo=UTC))
    half = df.height // 2
    for part in (df.slice(0, half), df.slice(half)):  # two writers, each its own manifest
        with AuditLogger(max_events=per_day * 10, auto_export_path=uri, storage_options=opts, hmac_key="bench",
                         signing_key=key) as audit:
            audit.log_batch(part)
    user = df["user_id"].value_counts(sort=True)["user_id"][0]
    events = df.filter(pl.col("user_id") == user).height
    t = time.perf_counter()
    result = erase_subject(uri, user, hmac_key="bench", signing_key=key, storage_options=opts)
    erase_s = time.perf_counter() - t
    root = _fs.resolve(uri, storage_options=opts)
    t = time.perf_counter()
    for obj in result.files_rewritten:  # the floor: the same objects fetched and put back as they are
        assert isinstance(obj, _fs.Location)
        data = obj.read_bytes()
        (root / root.relative(obj.path)).put(lambda fh, data=data: fh.write(data))
    floor_s = time.perf_counter() - t
    checked, verify_s = _verified(uri, opts, key)
    print(f"erase_subject on a {df.height:,}-event lake (2 writers, {days} days): the busiest user's {events:,} "
          f"events, {len(result.files_rewritten)} objects rewritten, {erase_s:.2f} s; fetching and re-uploading "
          f"those objects alone: {floor_s:.2f} s (ratio {erase_s / floor_s:.1f}); verify after: {verify_s:.2f} s")
    t = time.perf_counter()
    kept = apply_retention(uri, 30, now=datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=days), hmac_key="bench",
                           signing_key=key, storage_options=opts)
    retention_s = time.perf_counter() - t
    checked, verify_s = _verified(uri, opts, key)
    print(f"apply_retention keeping 30 days: {len(kept.partitions)} partitions ({kept.events:,} events) deleted, "
          f"{len(kept.json_rewritten)} JSON documents rewritten, {len(kept.json_files)} deleted, "
          f"{retention_s:.2f} s; verify after: {verify_s:.2f} s ({checked.events_checked:,} events)")


def global_only() -> None:
    """`python benchmarks/bench_lake.py global`: only the global log's commit latency."""
    with moto_process("rotation") as opts:
        global_log_costs(opts)


def maintenance_only() -> None:
    """`python benchmarks/bench_lake.py maintenance`: only erasure and retention on a lake."""
    with moto_process("rotation") as opts:
        maintenance_costs(opts)


if __name__ == "__main__":
    if sys.argv[1:] == ["global"]:
        global_only()
    elif sys.argv[1:] == ["maintenance"]:
        maintenance_only()
    else:
        main()
