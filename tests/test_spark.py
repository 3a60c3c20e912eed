"""A distributed engine reads the lake as is: Apache Spark (local mode) runs the
monthly compliance aggregation over the lake axon_audit wrote to S3 and gets
exactly axon_audit's numbers (its monthly `compliance_report` over the archive).

Spark reaches S3 only through the hadoop-aws jars, which it would download; CI
has no network for that, so the test syncs the lake down from the S3 server
byte for byte (`pyarrow.fs.copy_files`) and Spark reads that copy through its
local filesystem, with the README's DDL.
"""

from __future__ import annotations

import shutil
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


def test_readme_documents_the_tested_ddl():
    text = README.read_text(encoding="utf-8")
    assert SPARK_DDL.replace("'{location}/parquet'", "'s3a://audit-lake/prod/parquet'") in text
    assert BY_OPERATION in text


def ours(lf: pl.LazyFrame, key: str) -> pl.DataFrame:
    month = pl.col("timestamp").dt.strftime("%Y-%m").alias("month")
    return (lf.group_by(month, pl.col(key).cast(pl.String))
            .agg(pl.len().alias("events"), (pl.col("status") == "FAILURE").sum().alias("failures"))
            .collect())


def normalized(rows) -> list[tuple]:
    """Sortable rows: a missing user_id (None) sorts as ''."""
    return sorted((m, k or "", int(n), int(f)) for m, k, n, f in rows)


@pytest.mark.slow
def test_spark_monthly_compliance_report_equals_ours(s3_server, s3_bucket, tmp_path, monkeypatch):
    if shutil.which("java") is None:
        pytest.skip("Spark needs a Java runtime (java on PATH)")
    from pyspark.sql import SparkSession

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    uri, opts = f"s3://{s3_bucket}/prod", {"endpoint_url": s3_server.endpoint}
    # Two months (Jan 20 - Feb 14), rotated into several objects per day, with
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

    # The lake as written, synced down byte for byte for Spark's local filesystem.
    local = tmp_path / "lake"
    s3 = pafs.S3FileSystem(endpoint_override=s3_server.endpoint)
    pafs.copy_files(f"{s3_bucket}/prod", str(local), source_filesystem=s3,
                    destination_filesystem=pafs.LocalFileSystem())

    spark = (SparkSession.builder.master("local[1]").appName("axon_audit-test")
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.session.timeZone", "UTC")
             .config("spark.sql.shuffle.partitions", "2")
             .config("spark.sql.warehouse.dir", str(tmp_path / "warehouse"))
             .getOrCreate())
    try:
        spark.sparkContext.setLogLevel("ERROR")
        spark.sql(SPARK_DDL.format(location=local.as_uri()))
        spark.sql("MSCK REPAIR TABLE audit_events")
        n_days = spark.sql("SHOW PARTITIONS audit_events").count()
        spark_ops = spark.sql(BY_OPERATION).collect()
        spark_users = spark.sql(BY_USER).collect()
    finally:
        spark.stop()
    assert n_days == len(list((local / "parquet").glob("date=*")))
    assert normalized(tuple(r) for r in spark_ops) == normalized(our_ops)
    assert (sorted((m, u or "", int(n)) for m, u, n, _ in spark_users)
            == sorted((m, u or "", n) for m, u, n in our_users))
    assert normalized(tuple(r) for r in spark_users) == normalized(user_failures.iter_rows())
    assert len(spark_users) > 100  # the comparison covers many users, not a handful
