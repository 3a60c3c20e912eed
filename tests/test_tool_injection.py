"""Audit data and folder names never act on the analyst's tools: SQL is read-only and
isolated per call, exports never write over sealed evidence, folder names are read
literally, and notebook HTML shows data as text."""

from __future__ import annotations

import hashlib
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path

import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from axon_audit import AuditError, AuditLogger, AuditTypeError, AuditValueError, open_archive, prove, scan_lake, verify
from tests.cli_process import env, script


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
    if name == "audit[eu]*?{x}":  # the command line reads it through the same paths
        assert _cli("verify", root).stdout.startswith("intact: ")
        assert _cli("sql", root, "SELECT count(*) AS n FROM events", "-f", "csv").stdout == "n\n25\n"
        assert len(_cli("tail", root, "--no-follow", "-n", "30").stdout.splitlines()) == 25
        assert _cli("prove", root, ids[3]).returncode == 0


def test_many_folders_queried_at_once_each_see_their_own_events(tmp_path):
    """More folders than locked databases kept: one dropped from the cache keeps
    serving the queries that hold its cursors."""
    archives = []
    for i in range(12):
        _fill(tmp_path / f"f{i}", i + 1)
        archives.append(open_archive(tmp_path / f"f{i}"))

    def count(i: int) -> int:
        return archives[i % 12].sql("SELECT count(*) FROM events").item()

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(count, range(96))) == [i % 12 + 1 for i in range(96)]


# --------------------------------------------------------------------------- exports never write over evidence


def _evidence_targets(root: Path) -> list[Path]:
    part = next((root / "parquet").rglob("*.parquet"))
    return [root / "manifest.json", next(root.glob("audit_*.json")), part, part.with_name("new.json"),
            root / "new.json", root / "parquet" / "new.json", root / "sub" / "deeper" / "new.json"]


def test_export_to_file_refuses_every_place_inside_an_export_folder(tmp_path):
    root = tmp_path / "audit"
    _fill(root)
    (tmp_path / "link").symlink_to(root)
    before = _digests(root)
    logger = AuditLogger(auto_export_path=root, max_events=10)
    try:
        for reader in (open_archive(root), logger, AuditLogger()):
            for target in [*_evidence_targets(root), tmp_path / "link" / "manifest.json"]:
                for force in (False, True):
                    with pytest.raises(AuditValueError, match=r"^path: .* lies inside the export folder"):
                        reader.export_to_file(target, force=force)
                    with pytest.raises(AuditValueError, match="lies inside the export folder"):
                        reader.export_events([], str(target), force=force)
    finally:
        logger.close()
    assert _digests(root) == before  # every sealed byte as it was, nothing added
    result = verify(root)
    assert result.ok and result.events_checked == 25, result.problems


def test_a_loggers_own_folder_is_refused_before_it_is_sealed(tmp_path):
    root = tmp_path / "fresh"
    logger = AuditLogger(auto_export_path=root, max_events=10)
    try:
        _ = logger.log("store")
        with pytest.raises(AuditValueError, match="lies inside the export folder"):
            logger.export_to_file(root / "manifest.json")
        assert logger.export_to_file(tmp_path / "fresh.json") == 1  # beside it is fine
    finally:
        logger.close()
    assert verify(root).ok


def test_a_loggers_write_ahead_log_is_never_written_over(tmp_path):
    # force=True replaced the WAL segment: the acknowledged events were gone at recovery.
    logger = AuditLogger(auto_export_path=tmp_path / "exp", wal_path=tmp_path / "wal", max_events=100)
    try:
        _ = [logger.log("store", user_id=f"u{i}") for i in range(5)]
        segment = next(p for p in (tmp_path / "wal").iterdir() if p.name.startswith("wal-"))
        before = segment.read_bytes()
        for force in (False, True):
            with pytest.raises(AuditValueError, match="lies inside"):
                logger.export_to_file(segment, force=force)
        assert segment.read_bytes() == before
    finally:
        logger.close()


def test_other_writers_of_user_paths_never_write_into_an_export_folder(folder, tmp_path):
    import asyncio

    from axon_audit import MemorySystem

    before = _digests(folder)
    memory = MemorySystem(audit_logger=AuditLogger())
    asyncio.run(memory.store("note"))
    with pytest.raises(AuditValueError, match="lies inside the export folder"):
        asyncio.run(memory.export(folder / "manifest.json"))
    # A logger whose folder lies inside another export folder would add files to its evidence.
    with pytest.raises(AuditValueError, match=r"^auto_export_path: .* lies inside the export folder"):
        AuditLogger(auto_export_path=folder / "parquet" / "nested")
    assert _digests(folder) == before
    assert len(asyncio.run(memory.export(tmp_path / "memory.json"))) == 1  # outside it is fine
    assert verify(folder).ok


def test_an_existing_file_is_replaced_only_with_force(tmp_path):
    audit = AuditLogger()
    _ = audit.log("store", user_id="u1")
    target = tmp_path / "trail.json"
    target.write_bytes(b"keep me")
    with pytest.raises(AuditValueError, match=r"^path: .*trail.json' already exists; pass force=True"):
        audit.export_to_file(target)
    with pytest.raises(AuditValueError, match="already exists"):
        audit.export_events(audit.query_events(), target)
    assert target.read_bytes() == b"keep me"
    with pytest.raises(AuditTypeError, match="force must be a bool"):
        audit.export_to_file(target, force="yes")
    assert audit.export_to_file(target, force=True) == 1
    assert open_archive(target).query_events()[0].user_id == "u1"


# --------------------------------------------------------------------------- the command line


HOSTILE = ["[/x]", "[red]admin[/red]", "[link=http://x]y[/link]", "\n2026-01-01 FORGED", "\x1b[2J", "[bold]",
           "x\u202eevil"]  # a bidi override reorders what the terminal shows


def _cli(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([script(), *map(str, args)], capture_output=True, text=True, timeout=120, env=env(),
                          cwd=cwd)


@pytest.fixture(scope="module")
def hostile_folder(tmp_path_factory) -> Path:
    """An export folder whose every text field holds markup, newlines and escape sequences."""
    root = tmp_path_factory.mktemp("hostile") / "audit"
    start = datetime.now(timezone.utc) - timedelta(hours=1)
    with AuditLogger(auto_export_path=root, max_events=4) as audit:
        audit.log_batch([{"operation": "forget" if i % 2 else "store", "user_id": text, "session_id": text,
                          "error_message": text, "entry_ids": [text], "metadata": {"note": text},
                          "status": "failure", "timestamp": start + timedelta(seconds=i)}
                         for i, text in enumerate(HOSTILE * 2)])
    return root


def _shown(text: str) -> str:
    """What a terminal shows of `text` as plain characters (rich's table borders and folds removed)."""
    return re.sub(r"[\s│┃┏┓┗┛┡┩└┘─━┌┐├┤┼╇╈╋┳┻┬┴╭╮╰╯]+", "", text)


_ALL = tuple(HOSTILE)
_SHORT = tuple(t for t in HOSTILE if len(t) < 18)  # what a narrow table column shows unfolded


@pytest.mark.parametrize(("command", "shown"), [
    (["query", "{root}"], _SHORT),
    (["query", "{root}", "--user", "[red]admin[/red]"], ("[red]admin[/red]",)),
    (["stats", "{root}"], ()),
    (["stats", "{root}", "--user", "[/x]"], ("[/x]",)),
    (["sql", "{root}", "SELECT user_id FROM events"], _ALL),
    (["sql", "{root}", "SELECT user_id, session_id, error_message, entry_ids, metadata FROM events"], _SHORT),
    (["sql", "{root}", "PIVOT (SELECT user_id FROM events) ON user_id USING count(*)", "--allow-writes"], ()),
    (["tail", "{root}", "--no-follow", "-n", "20"], _ALL),
    (["report", "{root}", "--month", "{month}"], ()),
    (["alerts", "{root}", "--since", "1d"], ()),
    (["verify", "{root}"], ()),
])
def test_audit_data_reaches_the_terminal_as_text(hostile_folder, command, shown):
    month = datetime.now(timezone.utc).strftime("%Y-%m")
    proc = _cli(*(c.format(root=hostile_folder, month=month) for c in command))
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout and "\x1b" not in proc.stderr
    assert "\u202e" not in proc.stdout and "\u202e" not in proc.stderr
    assert not any(line.lstrip("│ ").startswith("2026-01-01 FORGED") for line in proc.stdout.splitlines())
    for text in shown:  # literally, control characters as \xNN
        shown_as = text.replace("\n", "\\x0a").replace("\x1b", "\\x1b").replace("\u202e", "\\u202e")
        assert _shown(shown_as) in _shown(proc.stdout), (text, proc.stdout)


def test_file_names_cannot_forge_verifys_verdict(tmp_path):
    root = tmp_path / "audit"
    _fill(root, 5)
    (root / "audit_2026_01_01_000000\nintact: 9 files, 9 events checked.json").write_text("{}")
    (root / "audit_2026_01_01_000000\x1b[2J.json").write_text("{}")
    proc = _cli("verify", root)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1].startswith("NOT INTACT") and not any(line.startswith("intact") for line in lines)
    assert "\x1b" not in proc.stdout and "\\x1b[2J" in proc.stdout and "\\x0aintact: 9 files" in proc.stdout


def test_cli_exports_never_write_into_an_export_folder(hostile_folder, tmp_path):
    before = _digests(hostile_folder)
    for target in _evidence_targets(hostile_folder):
        for command in (["export", hostile_folder, "--to", target], ["export", hostile_folder, "--to", target,
                                                                        "--force"],
                        ["query", hostile_folder, "-f", "json", "--output", target, "--force"]):
            proc = _cli(*command)
            assert proc.returncode == 2, proc.stderr
            option = "--to" if command[0] == "export" else "--output"
            assert proc.stderr.startswith(f"axon-audit: error: {option}: ") and "lies inside the export folder" in (
                proc.stderr), proc.stderr
    assert _digests(hostile_folder) == before
    assert _cli("verify", hostile_folder).returncode == 0
    target = tmp_path / "[red]out.json"
    assert _cli("export", hostile_folder, "--to", target).returncode == 0
    again = _cli("export", hostile_folder, "--to", target)
    assert again.returncode == 2 and "already exists; pass --force" in again.stderr
    assert _cli("export", hostile_folder, "--to", target, "--force").returncode == 0
    assert len(orjson.loads(target.read_bytes())["events"]) == len(HOSTILE) * 2


def test_cli_sql_is_read_only(hostile_folder, tmp_path):
    before = _digests(hostile_folder)
    for statement in _hostile_statements(hostile_folder, tmp_path):
        proc = _cli("sql", hostile_folder, statement)
        assert proc.returncode == 2 and proc.stderr.startswith("axon-audit: error: SQL: "), (statement, proc.stderr)
    assert _digests(hostile_folder) == before and list(tmp_path.iterdir()) == []
    out = tmp_path / "trusted.csv"
    proc = _cli("sql", hostile_folder, f"COPY events TO '{out}'", "--allow-writes")
    assert proc.returncode == 0, proc.stderr
    assert out.exists()


def test_data_formats_on_stdout_keep_the_data_exact(hostile_folder):
    """JSON and CSV into a pipe are data, not a terminal: every character as logged
    (JSON escapes control characters itself)."""
    proc = _cli("query", hostile_folder, "-f", "json", "-n", "100")
    assert proc.returncode == 0 and "\x1b" not in proc.stdout
    assert sorted(e["user_id"] for e in orjson.loads(proc.stdout)["events"]) == sorted(HOSTILE * 2)
    csv = _cli("sql", hostile_folder, "SELECT user_id FROM events ORDER BY timestamp", "-f", "csv")
    assert csv.returncode == 0 and "\x1b[2J" in csv.stdout and '"\n2026-01-01 FORGED"' in csv.stdout


# --------------------------------------------------------------------------- notebook HTML


_FRAGMENTS = ["<script>alert(1)</script>", '"', "'", "&", '">', "<img src=x onerror=alert(1)>", "</td></tr>",
              "<!--", "&amp;", "<b>", "' onmouseover='x", "]]>", "javascript:"]
hostile_text = st.lists(st.one_of(st.sampled_from(_FRAGMENTS),
                                  st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00/"),
                                          max_size=8)),
                        min_size=1, max_size=4).map("".join).filter(lambda s: s.strip() not in ("", ".", ".."))


class _Structure(HTMLParser):
    """The elements and attributes of an HTML text, and its text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))

    def handle_endtag(self, tag):
        self.tags.append(("/" + tag, []))

    def handle_data(self, data):
        self.text.append(data)


def _renderings(values: list[str], tmp: Path) -> list[str]:
    """Every kind of `_repr_html_`, each value of `values` in each text field it has."""
    from axon_audit import compliance_report, subject_access_report
    from axon_audit.compliance.erasure import ErasureResult
    from axon_audit.compliance.monitor import Alert, Alerts
    from axon_audit.compliance.retention import RetentionResult
    from axon_audit.integrity.result import VerifyResult

    now = datetime(2026, 1, 15, tzinfo=timezone.utc)
    alerts = Alerts([Alert(v, v, v, now, now, 3, 2.0, (v, v), v) for v in values])
    paths = [Path(v) for v in values]
    audit = AuditLogger()
    audit.log_batch([{"operation": "forget", "user_id": v, "session_id": v, "entry_ids": [v], "metadata": {v: v},
                      "error_message": v, "status": "failure", "timestamp": now} for v in values])
    return [
        *(a._repr_html_() for a in alerts), alerts._repr_html_(),
        RetentionResult(now, True, partitions=paths, json_files=paths, json_rewritten=paths, events=3, bytes=10,
                        manifest=values[0])._repr_html_(),
        ErasureResult(values[0], values[-1], 1, 1, paths, values[0])._repr_html_(),
        compliance_report(audit, "2026-01")._repr_html_(),
        subject_access_report(audit, values[0])._repr_html_(),
        audit._repr_html_(),
        audit.query_events()._repr_html_(),
        *(e._repr_html_() for e in audit.query_events()),
        audit.get_statistics()._repr_html_(),
        audit.get_user_statistics(values[0])._repr_html_(),
        VerifyResult(ok=False, problems=values, notes=values, leftovers=values)._repr_html_(),
    ]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.lists(hostile_text, min_size=1, max_size=3, unique=True))
def test_every_repr_html_shows_data_as_text(tmp_path, values):
    hostile = _renderings(values, tmp_path)
    plain = _renderings([f"value{i}" for i in range(len(values))], tmp_path)
    for got, same_shape in zip(hostile, plain, strict=True):
        # The same elements and attributes as with harmless data: nothing in the data became markup.
        assert _Structure(got).tags == _Structure(same_shape).tags, got
    shown = "".join("".join(_Structure(h).text) for h in hostile)
    for v in values:
        assert v in shown or str(Path(v)) in shown


# --------------------------------------------------------------------------- readers and verify agree


def _planted(doc_events: list[dict]) -> bytes:
    return orjson.dumps({"export_timestamp": "2026-01-01T00:00:00Z", "total_events": len(doc_events),
                         "events": doc_events})


@pytest.mark.parametrize("name", ["notes.json", "audit_2099_01_01_000000.json", "Audit_x.json"])
def test_a_planted_json_file_is_not_served_as_evidence(tmp_path, name):
    root = tmp_path / "audit"
    ids = _fill(root)
    forged = {**orjson.loads(next(root.glob("audit_*.json")).read_bytes())["events"][0],
              "event_id": "evt_forged", "user_id": "forger"}
    (root / name).write_bytes(_planted([forged]))
    archive = open_archive(root, source="json")
    assert sorted(e.event_id for e in archive.query_events()) == sorted(ids)
    assert archive.sql("SELECT count(*) FROM events WHERE user_id = 'forger'").item() == 0
    assert root / name not in archive.files()
    result = verify(root)
    if name.startswith("audit_"):  # a rotation document the manifest does not list: reported
        assert not result.ok and any(name in p for p in result.problems), result.problems
    else:  # not an export file at all: nothing a reader serves, nothing verify vouches for
        assert result.ok, result.problems


def test_a_folder_without_a_manifest_serves_only_its_rotation_documents(tmp_path):
    root = tmp_path / "audit"
    ids = _fill(root)
    (root / "manifest.json").unlink()
    event = orjson.loads(next(root.glob("audit_*.json")).read_bytes())["events"][0]
    (root / "notes.json").write_bytes(_planted([{**event, "event_id": "evt_planted"}]))
    archive = open_archive(root, source="json")
    assert sorted(e.event_id for e in archive.query_events()) == sorted(ids)
