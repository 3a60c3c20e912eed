"""The query engine: one filter model, the same rows through polars and SQL, over
live, archived (Parquet and JSON) and both; lookups; pruning; safety."""

from __future__ import annotations

import re
import threading
import time
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import orjson
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from axon_audit import ArchiveError, AuditArchive, AuditLogger, AuditTypeError, AuditValueError, open_archive
from axon_audit.io.parquet import write_parquet_partitions
from axon_audit.query.filters import Filters
from axon_audit.store.hot import CHUNK_ROWS, wait_sealed
from axon_audit.workload import generate_events

UTC = timezone.utc
START = datetime(2026, 3, 1, tzinfo=UTC)
N = 4000


def _with_ids(df: pl.DataFrame, node: str = "abcdef") -> pl.DataFrame:
    """Logger-style ids (time + node + sequence), known to the test's oracle."""
    return df.with_columns(
        pl.format("evt_{}{}{}", pl.col("timestamp").dt.epoch("us").cast(pl.String).str.zfill(16), pl.lit(node),
                  pl.int_range(pl.len()).cast(pl.String).str.zfill(8)).alias("event_id")
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """4000 events over 3 days; rotations at 1500 leave 3000 archived and 1000 live."""
    folder = tmp_path_factory.mktemp("exports")
    df = _with_ids(generate_events(N, seed=7, start=START, days=3.0))
    audit = AuditLogger(max_events=1500, auto_export_path=folder)
    for s in range(0, N, 500):
        audit.log_batch(df.slice(s, 500))
    audit.flush()
    rows = df.with_columns(pl.col("timestamp").dt.epoch("us").alias("ts")).to_dicts()
    for r in rows:
        r["meta"] = orjson.loads(r["metadata"])
    live_ids = set(audit.scan(include_archived=False).select("event_id").collect()["event_id"])
    return audit, folder, rows, live_ids


def _oracle(rows: list[dict], kw: dict) -> list[str]:
    """The filters, evaluated per row in plain Python: newest first."""
    def ok(r: dict) -> bool:
        if "user_id" in kw and r["user_id"] not in _as_set(kw["user_id"]):
            return False
        if "session_id" in kw and r["session_id"] not in _as_set(kw["session_id"]):
            return False
        if "operation" in kw and r["operation"] not in {o.upper() for o in _as_set(kw["operation"])}:
            return False
        if "status" in kw and r["status"] not in {s.upper() for s in _as_set(kw["status"])}:
            return False
        if "start_time" in kw and r["ts"] < _us(kw["start_time"]):
            return False
        if "end_time" in kw and r["ts"] > _us(kw["end_time"]):
            return False
        if "entry_ids" in kw and not set(r["entry_ids"]) & set(kw["entry_ids"]):
            return False
        if "event_id" in kw and r["event_id"] not in _as_set(kw["event_id"]):
            return False
        if "metadata" in kw and any(r["meta"].get(k) != v for k, v in kw["metadata"].items()):
            return False
        if "error_contains" in kw and (r["error_message"] is None or kw["error_contains"] not in r["error_message"]):
            return False
        if "min_duration_ms" in kw and (r["duration_ms"] is None or r["duration_ms"] < kw["min_duration_ms"]):
            return False
        if "max_duration_ms" in kw and (r["duration_ms"] is None or r["duration_ms"] > kw["max_duration_ms"]):
            return False
        return True

    hits = [(r["ts"], i, r["event_id"]) for i, r in enumerate(rows) if ok(r)]
    return [e for _, _, e in sorted(hits, reverse=True)]


def _as_set(v) -> set:
    return {v} if isinstance(v, str) else set(v)


def _us(dt: datetime) -> int:
    return (dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


@st.composite
def filters(draw, rows: list[dict]):
    pick = lambda col: st.sampled_from(sorted({r[col] for r in rows if r[col] is not None}))
    kw: dict = {}
    if draw(st.booleans()):
        kw["user_id"] = draw(st.one_of(pick("user_id"), st.lists(pick("user_id"), min_size=1, max_size=3)))
    if draw(st.integers(0, 4)) == 0:
        kw["session_id"] = draw(pick("session_id"))
    if draw(st.booleans()):
        ops = st.sampled_from(["STORE", "recall", "FORGET", "BULK_STORE", "REINDEX"])
        kw["operation"] = draw(st.one_of(ops, st.lists(ops, min_size=1, max_size=3)))
    if draw(st.integers(0, 3)) == 0:
        kw["status"] = draw(st.sampled_from(["SUCCESS", "failure", "PARTIAL"]))
    span = st.datetimes(min_value=datetime(2026, 2, 28), max_value=datetime(2026, 3, 5), timezones=st.just(UTC))
    if draw(st.booleans()):
        kw["start_time"] = draw(span)
    if draw(st.booleans()):
        kw["end_time"] = draw(span)
    if draw(st.integers(0, 3)) == 0:
        entries = sorted({e for r in rows for e in r["entry_ids"]})
        kw["entry_ids"] = draw(st.lists(st.sampled_from([*entries, "entry_none"]), min_size=1, max_size=3))
    if draw(st.integers(0, 5)) == 0:
        kw["event_id"] = draw(st.lists(pick("event_id"), min_size=1, max_size=2))
    if draw(st.integers(0, 4)) == 0:
        kw["metadata"] = {"source": draw(st.sampled_from(["api", "agent", "batch", "ui", "nope"]))}
    if draw(st.integers(0, 4)) == 0:
        kw["error_contains"] = draw(st.sampled_from(["timeout", "Entry", "503", "zzz"]))
    if draw(st.integers(0, 4)) == 0:
        kw["min_duration_ms"] = draw(st.floats(0, 200))
    if draw(st.integers(0, 4)) == 0:
        kw["max_duration_ms"] = draw(st.floats(0, 2000))
    return kw


def _sql_ids(reader, view: str, kw: dict) -> list[str]:
    where, params = Filters.of(kw).sql()
    q = f'SELECT event_id FROM {view} WHERE {where} ORDER BY "timestamp" DESC, event_id DESC'
    return reader.sql(q, params)["event_id"].to_list()


def _ids(events) -> list[str]:
    return [e.event_id for e in events]


def test_world_is_split_between_memory_and_files(world):
    audit, folder, _rows, live_ids = world
    assert len(live_ids) == 1000
    assert audit.get_statistics(include_archived=True)["total_events"] == N
    assert len(list((folder / "parquet").rglob("*.parquet"))) >= 3


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_filter_gives_the_same_rows_everywhere(world, data):
    audit, folder, rows, live_ids = world
    kw = data.draw(filters(rows))
    expected_all = _oracle(rows, kw)
    expected_live = [e for e in expected_all if e in live_ids]
    expected_archived = [e for e in expected_all if e not in live_ids]
    # Ties on timestamp are broken differently by the engines: compare per timestamp group as sets.
    both = _ids(audit.query_events(**kw, include_archived=True))
    assert sorted(both) == sorted(expected_all)
    assert _ids(audit.query_events(**kw)) == both  # an exporting logger's default: the whole trail
    assert _ids(audit.query_events(**kw, include_archived=False)) == [e for e in both if e in live_ids]
    assert sorted(_ids(audit.query_events(**kw, include_archived=False))) == sorted(expected_live)
    archive = AuditArchive(folder)
    assert sorted(_ids(archive.query_events(**kw))) == sorted(expected_archived)
    # SQL: the same filter compiled to parameters, over each view.
    assert sorted(_sql_ids(audit, "events", kw)) == sorted(expected_live)
    assert sorted(_sql_ids(audit, "archived", kw)) == sorted(expected_archived)
    assert sorted(_sql_ids(audit, "all_events", kw)) == sorted(expected_all)
    assert sorted(_sql_ids(archive, "events", kw)) == sorted(expected_archived)
    # polars LazyFrame and Arrow give the same rows.
    assert sorted(audit.scan(**kw, include_archived=True).collect()["event_id"]) == sorted(expected_all)
    assert sorted(archive.to_arrow(**kw).column("event_id").to_pylist()) == sorted(expected_archived)
    # limit: a prefix of the newest-first answer (stops early over chunks).
    limit = data.draw(st.integers(0, 5))
    got = _ids(audit.query_events(**kw, limit=limit, include_archived=True))
    assert got == both[:limit]
    assert _ids(audit.query_events(**kw, limit=limit)) == _ids(audit.query_events(**kw))[:limit]
    assert (_ids(audit.query_events(**kw, limit=limit, include_archived=False))
            == _ids(audit.query_events(**kw, include_archived=False))[:limit])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_json_exports_answer_like_the_parquet(world, data):
    _audit, folder, rows, _live_ids = world
    kw = data.draw(filters(rows))
    parquet = AuditArchive(folder)
    js = AuditArchive(folder, source="json")
    assert js.source == "json"
    assert sorted(_ids(js.query_events(**kw))) == sorted(_ids(parquet.query_events(**kw)))
    by_id = lambda events: sorted(events, key=lambda e: e.event_id)
    assert by_id(js.query_events(**kw)) == by_id(parquet.query_events(**kw))  # every field, metadata included


def test_one_json_file_is_a_source(world, tmp_path):
    audit, _folder, rows, _live_ids = world
    path = tmp_path / "one.json"
    n = audit.export_to_file(path, operation="STORE", include_archived=True)
    archive = open_archive(path)
    assert archive.source == "json"
    assert archive.get_statistics()["total_events"] == n == archive.get_statistics()["by_operation"]["STORE"]
    assert n == sum(r["operation"] == "STORE" for r in rows)


def test_statistics_include_archived_count_each_event_once(world):
    audit, folder, rows, _live_ids = world
    s_all = audit.get_statistics(include_archived=True)
    s_live = audit.get_statistics(include_archived=False)
    assert audit.get_statistics()["total_events"] == N  # the default covers the whole trail
    s_arch = AuditArchive(folder).get_statistics()
    assert s_all["total_events"] == N == s_live["total_events"] + s_arch["total_events"]
    for op in s_all["by_operation"]:
        assert s_all["by_operation"][op] == sum(r["operation"] == op for r in rows)
    assert s_all["unique_users"] == len({r["user_id"] for r in rows})
    user = rows[0]["user_id"]
    u = audit.get_user_statistics(user, include_archived=True)
    assert u["total_operations"] == sum(r["user_id"] == user for r in rows)
    assert u == audit.get_user_statistics(user)
    assert u["total_operations"] == (audit.get_user_statistics(user, include_archived=False)["total_operations"]
                                     + AuditArchive(folder).get_user_statistics(user)["total_operations"])
    assert audit.sql("SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM all_events").row(0) == (N, N)


def test_get_event_from_the_index_live_and_archived(world):
    audit, folder, rows, live_ids = world
    for r in rows[::397]:
        live = audit.get_event(r["event_id"], include_archived=False)
        assert (live is not None) == (r["event_id"] in live_ids)
        found = audit.get_event(r["event_id"], include_archived=True)
        assert found is not None and found.event_id == r["event_id"] and found.user_id == r["user_id"]
        assert AuditArchive(folder).get_event(r["event_id"]) == (None if live else found)
    assert audit.get_event("evt_0000000000000000abcdef00000000", include_archived=True) is None
    assert audit.get_event("not an id") is None
    with pytest.raises(AuditTypeError, match="event_id"):
        audit.get_event(12)


def test_chunk_index_finds_exactly_the_rows(world):
    audit, _folder, _rows, _live_ids = world
    chunk = audit._snapshot().live[0]
    df = chunk.df
    entry = df["entry_ids"].explode().drop_nulls()[0]
    rows_found = chunk.index.rows_for_entries((entry,)).tolist()
    brute = df.with_row_index().filter(pl.col("entry_ids").list.contains(entry))["index"].to_list()
    assert rows_found == brute
    eid = df["event_id"][17]
    assert chunk.index.rows_for_events((eid,)).tolist() == [17]


def test_partition_pruning_reads_only_the_days_asked(world):
    _audit, folder, rows, live_ids = world
    archive = AuditArchive(folder)
    all_files = archive.files()
    days = {p.parent.name for p in all_files}
    assert len(days) >= 2
    day = sorted(days)[1]
    d = datetime.fromisoformat(day.removeprefix("date=")).replace(tzinfo=UTC)
    kw = dict(start_time=d + timedelta(hours=1), end_time=d + timedelta(hours=20))
    pruned = archive.files(**kw)
    assert pruned and {p.parent.name for p in pruned} == {day} and len(pruned) < len(all_files)
    # The answer is still complete: the pruned files hold every match.
    expected = [e for e in _oracle(rows, kw) if e not in live_ids]
    assert sorted(_ids(archive.query_events(**kw))) == sorted(expected)



def test_plain_duckdb_over_the_exported_parquet(world):
    _audit, folder, rows, live_ids = world
    con = duckdb.connect()
    n, users = con.execute(
        "SELECT count(*), count(DISTINCT user_id) FROM read_parquet(?, hive_partitioning = true) WHERE operation = ?",
        [str(folder / "parquet" / "**" / "*.parquet"), "STORE"],
    ).fetchone()
    archived_rows = [r for r in rows if r["event_id"] not in live_ids]
    assert n == sum(r["operation"] == "STORE" for r in archived_rows)
    assert users == len({r["user_id"] for r in archived_rows if r["operation"] == "STORE"})
    # The README's shape: hive `date` column, grouped by day.
    by_day = dict(con.execute(
        "SELECT date::VARCHAR, count(*) FROM read_parquet(?, hive_partitioning = true) "
        "WHERE date >= DATE '2026-03-02' GROUP BY ALL",
        [str(folder / "parquet" / "**" / "*.parquet")],
    ).fetchall())
    expected: dict[str, int] = {}
    for r in archived_rows:
        day = datetime.fromtimestamp(r["ts"] / 1e6, UTC).date().isoformat()
        if day >= "2026-03-02":
            expected[day] = expected.get(day, 0) + 1
    assert by_day == expected


INJECTIONS = ["x' OR '1'='1", "'; DROP TABLE events; --", "\" OR 1=1 --", "user_0001') OR ('a'='a", "%", "_", "*"]


@pytest.mark.parametrize("value", INJECTIONS)
def test_sql_injection_in_filter_values_is_harmless(world, value):
    audit, _folder, _rows, _live_ids = world
    for kw in ({"user_id": value}, {"session_id": [value, value + "2"]}, {"entry_ids": [value]},
               {"metadata": {"source": value}}, {"error_contains": value}, {"event_id": value}):
        assert _sql_ids(audit, "all_events", kw) == []
        assert audit.query_events(**kw, include_archived=True) == []
    assert audit.sql("SELECT count(*) AS n FROM all_events")["n"][0] == N
    with pytest.raises(AuditValueError, match="metadata keys"):
        audit.query_events(metadata={"source') OR 1=1 --": "x"})


def test_a_value_that_looks_like_sql_is_found_literally(tmp_path):
    audit = AuditLogger()
    evil = "'; DROP TABLE events; --"
    audit.log("store", user_id=evil, metadata={"note": evil}, error_message=evil)
    audit.log("store", user_id="ok")
    for kw in ({"user_id": evil}, {"metadata": {"note": evil}}, {"error_contains": "DROP TABLE"}):
        assert [e.user_id for e in audit.query_events(**kw)] == [evil]
        assert _sql_ids(audit, "events", kw) == [audit.query_events(**kw)[0].event_id]


def test_bad_filters_are_named():
    audit = AuditLogger()
    with pytest.raises(AuditTypeError, match="unknown filter 'usr_id'"):
        audit.scan(usr_id="x")
    with pytest.raises(AuditTypeError, match="min_duration_ms"):
        audit.query_events(min_duration_ms="fast")
    with pytest.raises(AuditTypeError, match=r"metadata\['k'\]"):
        audit.query_events(metadata={"k": 0.5})
    with pytest.raises(AuditTypeError, match="include_archived"):
        audit.query_events(include_archived="yes")
    with pytest.raises(AuditTypeError, match="params"):
        audit.sql("SELECT 1", "oops")
    with pytest.raises(AuditValueError, match="query"):
        audit.sql("SELECT * FROM no_such_view")


# --------------------------------------------------------------------------- corrupt / foreign files


def _small_archive(folder: Path) -> int:
    with AuditLogger(auto_export_path=folder) as audit:
        audit.log_batch(_with_ids(generate_events(300, seed=3, start=START, days=2.0)))
    return 300


def test_corrupt_parquet_is_named_or_skipped_with_a_warning(tmp_path):
    n = _small_archive(tmp_path)
    day_dir = sorted((tmp_path / "parquet").iterdir())[0]
    bad = day_dir / "part-corrupt.parquet"
    bad.write_bytes(b"PAR1 this is not parquet at all")
    # A file the manifest does not list is never served: left out, named in a warning.
    with pytest.warns(UserWarning, match=r"part-corrupt\.parquet is not listed in the manifest"):
        assert len(AuditArchive(tmp_path).query_events(limit=None)) == n
    bad.unlink()
    listed = sorted(day_dir.iterdir())[0]  # a listed part, corrupted: named, or skipped
    listed.write_bytes(b"PAR1 this is not parquet at all")
    with pytest.raises(ArchiveError, match=re.escape(listed.name)):
        AuditArchive(tmp_path).query_events()
    with pytest.warns(UserWarning, match=re.escape(listed.name)):
        got = AuditArchive(tmp_path, on_error="skip").get_statistics()["total_events"]
    assert 0 < got < n


def test_foreign_parquet_and_json_are_named(tmp_path):
    n = _small_archive(tmp_path)
    foreign = tmp_path / "parquet" / "date=2026-03-01" / "other.parquet"
    pl.DataFrame({"a": [1, 2]}).write_parquet(foreign)
    with pytest.warns(UserWarning, match=r"other\.parquet is not listed in the manifest"):
        assert AuditArchive(tmp_path).get_statistics()["total_events"] == n  # unlisted: not served
    (tmp_path / "manifest.json").unlink()  # a folder without a manifest: every file is read, and checked
    with pytest.raises(ArchiveError, match=r"other\.parquet.*missing columns"):
        AuditArchive(tmp_path).get_statistics()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert len(AuditArchive(tmp_path, on_error="skip").query_events()) == n
    assert any("other.parquet" in str(w.message) for w in caught)
    (tmp_path / "notes.json").write_text('{"hello": 1}')  # not in the manifest: not evidence, not read
    assert len(AuditArchive(tmp_path, source="json").query_events()) == n
    listed = next(tmp_path.glob("audit_*.json"))  # a document the manifest lists, made foreign: named
    listed.write_text('{"hello": 1}')
    with pytest.raises(ArchiveError, match=listed.name):
        AuditArchive(tmp_path, source="json").query_events()
    with pytest.warns(UserWarning, match=listed.name):
        assert AuditArchive(tmp_path, source="json", on_error="skip").query_events() == []


def test_archive_arguments_are_checked(tmp_path):
    with pytest.raises(AuditValueError, match="source"):
        AuditArchive(tmp_path, source="csv")
    with pytest.raises(AuditValueError, match="on_error"):
        AuditArchive(tmp_path, on_error="ignore")
    with pytest.raises(AuditValueError, match="does not exist"):
        AuditArchive(tmp_path / "missing")


# --------------------------------------------------------------------------- rotations in flight


def test_a_rotation_being_written_is_counted_once(tmp_path):
    """Hold the writer: the rotated events are only in memory, then partly on disk
    too (a file of the rotation already written), then only on disk."""
    audit = AuditLogger(max_events=200, auto_export_path=tmp_path)
    audit.log_batch(_with_ids(generate_events(200, seed=1, start=START, days=1.0)))  # rotation 1
    audit.flush()
    gate = threading.Event()
    audit._exporter.submit_call(gate.wait)  # the writer thread now waits on the gate
    audit.log_batch(_with_ids(generate_events(200, seed=2, start=START, days=1.0), node="bbbbbb"))  # rotation 2
    _ = audit.log("recall", user_id="live")
    try:
        assert audit.get_stats()["pending_export_events"] == 200

        def counts():
            s = audit.get_statistics(include_archived=True)["total_events"]
            q = len(audit.query_events(include_archived=True))
            n, d = audit.sql("SELECT count(*), count(DISTINCT event_id) FROM all_events").row(0)
            return s, q, n, d

        assert counts() == (401,) * 4
        # The rotation's first file lands while the rest is still being written.
        job = audit._exporter.pending[0]
        early = write_parquet_partitions(job.df.head(50), tmp_path / "parquet")
        with pytest.warns(UserWarning, match="not listed in the manifest"):  # written here without an intent
            assert counts() == (401,) * 4
        for p in early:
            p.unlink()
    finally:
        gate.set()
    audit.flush()
    assert audit.get_stats()["pending_export_events"] == 0
    assert (audit.get_statistics(include_archived=True)["total_events"],
            len(AuditArchive(tmp_path).query_events())) == (401, 400)


@pytest.mark.slow
def test_concurrent_queries_while_logging_and_rotating(tmp_path):
    audit = AuditLogger(max_events=2000, auto_export_path=tmp_path, flush_size=512)
    stop = threading.Event()
    errors: list[BaseException] = []
    seen: list[tuple[int, int, int]] = []
    logged = [0]

    def log():
        try:
            for i in range(30_000):
                if i and i % 7_500 == 0:
                    # Pace the logger: on a loaded machine it could finish before the
                    # readers ran at all; every 7,500 events it waits for one more read (3 in all).
                    want = len(seen) + 1
                    deadline = time.monotonic() + 30
                    while len(seen) < want and not errors and time.monotonic() < deadline:
                        time.sleep(0.001)
                audit.log("store" if i % 3 else "recall", user_id=f"u{i % 7}", entry_ids=[f"e{i % 50}"],
                          duration_ms=1.0)
                logged[0] = i + 1
        except BaseException as exc:  # noqa: BLE001 - a thread's failure is collected, asserted on below
            errors.append(exc)
        finally:
            stop.set()

    def query():
        try:
            while not stop.is_set():
                before = logged[0]
                n = audit.get_statistics(include_archived=True)["total_events"]
                q = len(audit.query_events(user_id="u3", include_archived=True))
                total, distinct = audit.sql("SELECT count(*), count(DISTINCT event_id) FROM all_events").row(0)
                assert total == distinct
                # One log() call may be in flight: its event is readable just before `logged` counts it.
                after = logged[0] + 1
                assert before <= n <= after and before <= total <= after
                seen.append((n, q, total))
        except BaseException as exc:  # noqa: BLE001 - a thread's failure is collected, asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=log)] + [threading.Thread(target=query) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    audit.flush()
    assert audit.get_stats()["rotations"] >= 10 and len(seen) >= 3
    assert audit.get_statistics(include_archived=True)["total_events"] == 30_000
    assert len(audit.query_events(user_id="u3", include_archived=True)) == sum(i % 7 == 3 for i in range(30_000))
    assert AuditArchive(tmp_path).get_statistics()["total_events"] + audit.event_count == 30_000


def test_lookups_through_the_index_of_full_chunks():
    audit = AuditLogger(max_events=10**6, enable_rotation=False)
    df = _with_ids(generate_events(CHUNK_ROWS + 5000, seed=11, start=START, days=2.0))
    audit.log_batch(df)
    wait_sealed()
    chunks = audit._snapshot().live
    assert len(chunks) == 2 and chunks[0].has("index") and chunks[0].height == CHUNK_ROWS
    all_rows = audit.scan().collect()
    entries = all_rows["entry_ids"].explode().drop_nulls()
    for entry in [entries[0], entries[len(entries) // 2], entries[-1], "entry_missing"]:
        brute = all_rows.filter(pl.col("entry_ids").list.contains(entry))["event_id"].to_list()
        got = _ids(audit.query_events(entry_ids=[entry]))
        assert sorted(got) == sorted(brute)
        stores = all_rows.filter(pl.col("entry_ids").list.contains(entry) & (pl.col("operation") == "STORE"))
        assert sorted(_ids(audit.query_events(entry_ids=[entry], operation="STORE"))) == sorted(stores["event_id"])
    for i in (0, 77, CHUNK_ROWS - 1, CHUNK_ROWS, CHUNK_ROWS + 4999):
        eid = all_rows["event_id"][i]
        assert audit.get_event(eid).event_id == eid
        assert _ids(audit.query_events(event_id=[eid, "evt_missing"])) == [eid]


def test_corrupt_parquet_data_is_named_not_read_as_garbage(tmp_path):
    """A file whose footer is fine but whose pages are damaged."""
    import pyarrow.parquet as pq

    n = _small_archive(tmp_path)
    victim = sorted((tmp_path / "parquet").rglob("*.parquet"))[0]
    good = victim.read_bytes()
    for at in range(len(good) // 10, len(good) - 2000, 97):  # find bytes whose damage the decoder notices
        bad = bytearray(good)
        bad[at:at + 64] = b"\xff" * 64
        victim.write_bytes(bytes(bad))
        try:
            pq.read_table(victim)
        except Exception:  # noqa: BLE001 - whatever the decoder raises means it noticed the damage
            break
    else:
        pytest.skip("no damage the decoder notices")
    # query_events reads every column, so the damage is met wherever it is.
    with pytest.raises(ArchiveError, match=victim.name):
        AuditArchive(tmp_path).query_events()
    with pytest.warns(UserWarning, match=victim.name):
        left = len(AuditArchive(tmp_path, on_error="skip").query_events())
    assert left == n - pq.read_metadata(victim).num_rows


def test_ids_that_do_not_embed_their_time_are_still_found():
    """An imported event may carry an id in the logger's form with another time."""
    audit = AuditLogger(enable_rotation=False)
    odd = "evt_0000000000000001abcdef00000001"  # says 1970, logged for 2026
    audit.log_batch([{"event_id": odd, "timestamp": "2026-03-01T10:00:00Z", "operation": "STORE"}])
    audit.log_batch(_with_ids(generate_events(100, seed=5, start=START, days=1.0)))
    chunks = audit._snapshot().live
    assert not chunks[0].ids_timed or len(chunks) == 1
    assert audit.get_event(odd).event_id == odd
    own = audit.query_events(limit=1)[0]
    assert audit.get_event(own.event_id) == own
