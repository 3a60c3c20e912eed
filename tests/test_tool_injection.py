"""Audit data and folder names never act on the analyst's tools: SQL is read-only and
isolated per call, exports never write over sealed evidence, folder names are read
literally, and notebook HTML shows data as text."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pytest

from axon_audit import AuditError, AuditLogger, AuditTypeError, AuditValueError, open_archive, prove, scan_lake, verify


def _fill(root: Path, n: int = 25, prefix: str = "u") -> list[str]:
    with AuditLogger(auto_export_path=root, max_events=10) as audit:
        return [audit.log("store", user_id=f"{prefix}{i}", metadata={"i": i}).event_id for i in range(n)]


def _digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "audit"
    _fill(root)
    return root


# --------------------------------------------------------------------------- sql: isolation


def test_a_trusted_calls_macro_view_and_table_never_reach_another_call(folder):
    a, b = AuditLogger(), open_archive(folder)
    _ = a.log("store", user_id="alice")
    # The trusted opt-in may create anything, but only inside its own call.
    setup = ("CREATE MACRO lower(x) AS 'FORGED'; CREATE TABLE evil AS SELECT 1 AS x; "
             "CREATE OR REPLACE TEMP VIEW events AS SELECT * FROM archived WHERE false; ")
    assert a.sql(setup + "SELECT lower('A') AS v", read_only=False).item() == "FORGED"
    assert b.sql(setup + "SELECT count(*) FROM events", read_only=False).item() == 0
    for reader, n in ((a, 1), (b, 25)):
        assert reader.sql("SELECT lower('A') AS v").item() == "a"
        assert reader.sql("SELECT count(*) FROM events").item() == n
        with pytest.raises(AuditValueError, match="evil"):
            reader.sql("SELECT * FROM evil")


@pytest.mark.parametrize("statement", [
    "CREATE MACRO lower(x) AS 'FORGED'",
    "CREATE TEMP VIEW v AS SELECT 1",
    "CREATE TABLE t AS SELECT * FROM events",
    "SELECT 1; CREATE MACRO m() AS 1",
    "DROP VIEW events",
])
def test_read_only_sql_refuses_ddl_naming_the_statement(folder, statement):
    archive = open_archive(folder)
    with pytest.raises(AuditValueError, match=r"query: sql\(\) is read-only .* (CREATE|DROP)"):
        archive.sql(statement)
    assert archive.sql("SELECT lower('A') AS v").item() == "a"


# --------------------------------------------------------------------------- sql: no writes, no files


def _hostile_statements(root: Path, outside: Path) -> list[str]:
    part = next((root / "parquet").rglob("*.parquet"))
    return [
        f"COPY (SELECT 1 AS x) TO '{root}/manifest.json' (FORMAT csv)",
        f"COPY (SELECT * FROM events WHERE false) TO '{part}' (FORMAT parquet, USE_TMP_FILE false)",
        f"COPY events TO '{outside}/out.csv'",
        f"EXPLAIN ANALYZE COPY (SELECT 1 AS x) TO '{root}/manifest.json'",
        f"ATTACH '{outside}/x.duckdb' AS x",
        f"EXPORT DATABASE '{outside}/dump'",
        "SELECT * FROM read_csv('/etc/passwd')",
        f"SELECT * FROM read_text('{root}/manifest.json')",
        f"SELECT * FROM read_blob('{root}/{next(root.glob('audit_*.json')).name}')",
        f"SELECT * FROM read_parquet('{part.parent.parent}/../../elsewhere/*.parquet')",
        "SELECT * FROM glob('/etc/*')",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "SET threads = 1",
        "PRAGMA enable_profiling",
        f"SELECT * FROM query('COPY (SELECT 1) TO ''{outside}/q.csv''')",
    ]


def test_read_only_sql_refuses_every_write_and_file_access_and_changes_nothing(tmp_path):
    root, outside = tmp_path / "audit", tmp_path / "elsewhere"
    _fill(root)
    outside.mkdir()
    before = _digests(root)
    logger = AuditLogger(auto_export_path=root, max_events=10)
    try:
        for reader in (open_archive(root), logger):
            for statement in _hostile_statements(root, outside):
                with pytest.raises(AuditValueError) as caught:
                    reader.sql(statement)
                assert isinstance(caught.value, AuditError) and str(caught.value).startswith("query"), statement
                with pytest.raises(AuditValueError):
                    reader.sql_arrow(statement)
    finally:
        logger.close()
    assert _digests(root) == before
    assert list(outside.iterdir()) == []
    result = verify(root)
    assert result.ok and result.events_checked == 25, result.problems


def test_trusted_sql_is_an_explicit_opt_in(folder, tmp_path):
    out = tmp_path / "out.csv"
    with pytest.raises(AuditTypeError, match="read_only must be a bool"):
        open_archive(folder).sql("SELECT 1", read_only="no")  # type: ignore[arg-type]
    open_archive(folder).sql(f"COPY events TO '{out}' (HEADER)", read_only=False)
    assert len(out.read_text().splitlines()) == 26


def test_types_polars_cannot_hold_come_back_as_text_or_arrow(folder):
    archive = open_archive(folder)
    q = ("SELECT INTERVAL 90 MINUTE AS i, [INTERVAL 1 DAY] AS li, {'a': INTERVAL 2 HOUR} AS s, "
         "union_value(k := 1) AS u, max(timestamp) - min(timestamp) AS span, count(*) AS n FROM events")
    df = archive.sql(q)
    assert df.row(0)[:4] == ("01:30:00", "[1 day]", "{'a': '02:00:00'}", "1")
    assert df.schema["n"].is_integer() and df["n"].item() == 25
    table = archive.sql_arrow(q)
    assert pa.types.is_interval(table.schema.field("i").type)
    assert table.column("n").to_pylist() == [25]


# --------------------------------------------------------------------------- folder names


@pytest.mark.parametrize("name", ["audit[eu]", "audit*?{x}", "audit[eu]*?{x}", "a[!x]"])
def test_folder_names_with_glob_characters_are_read_as_folders(tmp_path, name):
    root = tmp_path / name
    ids = _fill(root)
    # Decoys a glob of the name would match instead.
    for decoy in ("audite", "auditu", "audit", "auditXY{x}", "ab", "a!"):
        _fill(tmp_path / decoy, 3, prefix="decoy")
    archive = open_archive(root)
    assert sorted(e.event_id for e in archive.query_events()) == sorted(ids)
    assert archive.get_statistics()["total_events"] == 25
    assert archive.sql("SELECT count(*) FROM events WHERE user_id LIKE 'decoy%'").item() == 0
    assert archive.sql("SELECT count(*) FROM all_events").item() == 25
    assert scan_lake(root).collect().height == 25
    logger = AuditLogger(auto_export_path=root, max_events=10)  # a new process: nothing in memory
    try:
        assert len(logger.query_events(include_archived=True)) == 25
        assert logger.sql("SELECT count(DISTINCT event_id) FROM all_events").item() == 25
    finally:
        logger.close()
    result = verify(root)
    assert result.ok and result.events_checked == 25, result.problems
    assert prove(root, ids[7])["leaf_index"] == 7
