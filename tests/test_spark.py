"""A distributed engine reads the lake as is: Apache Spark (local mode) reads
the lake axon_audit wrote to S3 over `s3a://` (a moto S3 server) with the
README's DDL, runs the monthly compliance aggregation and gets exactly
axon_audit's numbers (its monthly `compliance_report` over the archive).

Spark reaches S3 through the `hadoop-aws` and `aws-java-sdk-bundle` jars. CI
has no Maven access, so a session fixture takes them from the PyPI package
`sagemaker-pyspark` (pinned, installed once with `pip --no-deps --target` into
a cache folder and reused); the test fails, not skips, when pip cannot get it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import pyarrow.fs as pafs
import pytest

from axon_audit import AuditArchive, AuditLogger, compliance_report, scan_lake
from axon_audit.workload import generate_events

UTC = timezone.utc
README = Path(__file__).resolve().parent.parent / "README.md"

# The Spark SQL DDL of the README's "Scaling out" section ({location} filled in).
SPARK_DDL = """CREATE TABLE audit_events (
  event_id STRING, timestamp TIMESTAMP, operation STRING, user_id STRING,
  session_id STRING, entry_ids ARRAY<STRING>, metadata STRING, status STRING,
  error_message STRING, duration_ms DOUBLE, date DATE)
USING PARQUET PARTITIONED BY (date)
LOCATION '{location}/parquet'"""

BY_OPERATION = """SELECT date_format(date, 'yyyy-MM') AS month, operation,
       count(*) AS events, count_if(status = 'FAILURE') AS failures
FROM audit_events GROUP BY 1, 2"""

BY_USER = """SELECT date_format(date, 'yyyy-MM') AS month, user_id,
       count(*) AS events, count_if(status = 'FAILURE') AS failures
FROM audit_events GROUP BY 1, 2"""


# Where the s3a jars come from: sagemaker-pyspark ships hadoop-aws and the AWS
# SDK bundle as plain files (pinned: another release may ship other jars).
JARS_PACKAGE = "sagemaker-pyspark==1.4.5"
S3A_JARS = ("hadoop-aws-3.3.1.jar", "aws-java-sdk-bundle-1.11.901.jar")

# hadoop-aws 3.3 reads these with getLong/getInt; Spark 4's Hadoop defaults
# them to durations ("60s"), a NumberFormatException, so they are plain
# numbers here (milliseconds or seconds, as hadoop-aws 3.3 reads each).
S3A_TIME_OPTIONS = {
    "connection.timeout": "200000",
    "connection.establish.timeout": "5000",
    "connection.ttl": "300000",
    "threads.keepalivetime": "60",
    "multipart.purge.age": "86400",
    "retry.interval": "500",
    "retry.throttle.interval": "100",
    "assumed.role.session.duration": "1800",
}


def jars_cache() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "axon_audit" / "spark-jars" / JARS_PACKAGE.replace("==", "-")


@pytest.fixture(scope="session")
def s3a_jars() -> list[Path]:
    """The s3a jars, pip-installed once (no dependencies) into a cache folder
    and reused; a failure to get them fails the test: it is the point of it."""
    if shutil.which("java") is None:
        pytest.skip("Spark needs a Java runtime (java on PATH)")
    target = jars_cache()
    jars = [target / "sagemaker_pyspark" / "jars" / name for name in S3A_JARS]
    if not all(j.is_file() for j in jars):
        # Installed next to the cache and renamed into place: a run cut short
        # or a concurrent run never leaves a half-filled cache behind.
        staging = target.with_name(f"{target.name}.tmp{os.getpid()}")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                              "--no-deps", "--target", str(staging), JARS_PACKAGE],
                             capture_output=True, text=True, check=False)
        if pip.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            pytest.fail(f"pip could not install {JARS_PACKAGE} (Spark's s3a jars):\n{pip.stderr}", pytrace=False)
        if all(j.is_file() for j in jars):  # a concurrent run filled the cache meanwhile
            shutil.rmtree(staging)
        else:
            shutil.rmtree(target, ignore_errors=True)  # a cache missing jars is redone
            staging.rename(target)
    missing = [str(j) for j in jars if not j.is_file()]
    if missing:
        pytest.fail(f"{JARS_PACKAGE} does not hold {missing}", pytrace=False)
    return jars


def test_readme_documents_the_tested_ddl():
    text = README.read_text(encoding="utf-8")
    assert SPARK_DDL.replace("'{location}/parquet'", "'s3a://audit-lake/prod/parquet'") in text
    assert BY_OPERATION in text
    # The s3a lines the README gives are the ones this test runs with.
    assert f"pip install --no-deps --target ~/.cache/axon_audit/spark-jars/{jars_cache().name} {JARS_PACKAGE}" in text
    assert f"--jars $J/{S3A_JARS[0]},$J/{S3A_JARS[1]}" in text
    for key, value in S3A_TIME_OPTIONS.items():
        assert any(f"--conf spark.hadoop.fs.s3a.{key}={value}{end}" in text for end in " \n"), key


def ours(lf: pl.LazyFrame, key: str) -> pl.DataFrame:
    month = pl.col("timestamp").dt.strftime("%Y-%m").alias("month")
    return (lf.group_by(month, pl.col(key).cast(pl.String))
            .agg(pl.len().alias("events"), (pl.col("status") == "FAILURE").sum().alias("failures"))
            .collect())


def normalized(rows) -> list[tuple]:
    """Sortable rows: a missing user_id (None) sorts as ''."""
    return sorted((m, k or "", int(n), int(f)) for m, k, n, f in rows)


@pytest.mark.slow
def test_spark_monthly_compliance_report_equals_ours(s3a_jars, s3_server, s3_bucket, tmp_path, monkeypatch):
    from pyspark.sql import SparkSession

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    uri, opts = f"s3://{s3_bucket}/prod", {"endpoint_url": s3_server.endpoint}
    # Two months (Jan 20 - Feb 14), exported in several rotations, with
    # single events (failures, users without a session) besides the bulk.
    df = generate_events(24_000, seed=21, days=25, start=datetime(2025, 1, 20, tzinfo=UTC))
    with AuditLogger(max_events=7_000, auto_export_path=uri, storage_options=opts) as audit:
        audit.log_batch(df)
        for i in range(300):
            audit.log("forget", user_id=f"auditor_{i % 3}", status="failure" if i % 4 else "success")

    # axon_audit's own numbers: the monthly compliance report over the archive on S3.
    archive = AuditArchive(uri, storage_options=opts)
    our_ops, our_users = [], []
    lake = scan_lake(uri, storage_options=opts)
    months = sorted(lake.select(pl.col("timestamp").dt.strftime("%Y-%m").unique()).collect().to_series())
    assert months[:2] == ["2025-01", "2025-02"] and len(months) >= 3  # + the month(s) of the singles
    for month in months:
        r = compliance_report(archive, month)
        failures = {op: v["failures"] for op, v in r["failures_by_operation"].items()}
        our_ops += [(month, op, n, failures[op]) for op, n in r["operations"].items()]
        our_users += [(month, u, v["total"]) for u, v in r["user_activity"].items()]
    assert sum(n for _, _, n, _ in our_ops) == 24_000 + 300
    # Failures per user are not a report section: polars over the lake gives them.
    user_failures = ours(lake, "user_id")

    # Spark reads the lake where axon_audit wrote it, over s3a://.
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")
    builder = (SparkSession.builder.master("local[1]").appName("axon_audit-test")
               .config("spark.jars", ",".join(map(str, s3a_jars)))
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.sql.warehouse.dir", str(tmp_path / "warehouse")))
    s3a = {"endpoint": s3_server.endpoint, "path.style.access": "true",
           "connection.ssl.enabled": "false", "access.key": "testing", "secret.key": "testing",
           "aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
           **S3A_TIME_OPTIONS}
    for key, value in s3a.items():
        builder = builder.config(f"spark.hadoop.fs.s3a.{key}", value)
    before = len(s3_server.requests)
    spark = builder.getOrCreate()
    try:
        spark.sparkContext.setLogLevel("ERROR")
        spark.sql(SPARK_DDL.format(location=f"s3a://{s3_bucket}/prod"))
        spark.sql("MSCK REPAIR TABLE audit_events")
        n_days = spark.sql("SHOW PARTITIONS audit_events").count()
        spark_ops = spark.sql(BY_OPERATION).collect()
        spark_users = spark.sql(BY_USER).collect()
    finally:
        spark.stop()
    s3 = pafs.S3FileSystem(endpoint_override=s3_server.endpoint)
    days = [i for i in s3.get_file_info(pafs.FileSelector(f"{s3_bucket}/prod/parquet"))
            if i.type == pafs.FileType.Directory and i.base_name.startswith("date=")]
    assert n_days == len(days) >= 26  # 25 days from Jan 20, + the day(s) of the singles
    # Spark read every object of the lake from the S3 server itself.
    listing = s3.get_file_info(pafs.FileSelector(f"{s3_bucket}/prod/parquet", recursive=True))
    objects = {f"/{i.path}" for i in listing if i.type == pafs.FileType.File and i.path.endswith(".parquet")}
    read = {path for method, path, _, _ in s3_server.requests[before:] if method == "GET"}
    assert len(objects) >= len(days) and objects <= read
    assert normalized(tuple(r) for r in spark_ops) == normalized(our_ops)
    assert (sorted((m, u or "", int(n)) for m, u, n, _ in spark_users)
            == sorted((m, u or "", n) for m, u, n in our_users))
    assert normalized(tuple(r) for r in spark_users) == normalized(user_failures.iter_rows())
    assert len(spark_users) > 100  # the comparison covers many users, not a handful
