"""The sealer-built statistics summaries (running `StatsCache`, per-chunk
`UserSummary`) give exactly what the plain polars `statistics` /
`user_statistics` give over the same events: in and out of time order, with
nulls, across many chunks, after a trim, a clear and a rewrite."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import axon_audit.store.hot as hot
import axon_audit.store.index as index
import axon_audit.store.statistics as statistics_module
import axon_audit.store.user_summary as user_summary
from axon_audit import AuditLogger
from axon_audit.model.schema import normalize_batch
from axon_audit.store.hot import Chunk, wait_sealed
from axon_audit.store.row_statistics import ROW_TUPLES, RowColumns, SmallAnswers, row_statistics, row_user_statistics
from axon_audit.store.sorted_runs import compact, quantile
from axon_audit.store.statistics import StatsCache, statistics, user_statistics
from axon_audit.store.user_summary import UserSummary
from axon_audit.workload import generate_events
from tests.test_fast_statistics import _same


def _events(n: int, seed: int, nulls: bool, shuffled: bool, users: int) -> pl.DataFrame:
    df = generate_events(n, seed=seed, n_users=users)
    if shuffled and n:  # logged out of time order
        df = df.sample(fraction=1.0, shuffle=True, seed=seed)
    if nulls:
        df = df.with_columns(
            pl.when(pl.int_range(pl.len()) % 3 == k).then(None).otherwise(pl.col(c)).alias(c)
            for k, c in enumerate(("duration_ms", "user_id", "session_id"))
        )
    return df


def _check(audit: AuditLogger) -> None:
    lf = audit.scan()
    s = audit.get_statistics()
    plain = statistics(lf)
    _same({k: s[k] for k in plain}, plain)
    users = lf.select(pl.col("user_id").cast(pl.String).drop_nulls().unique()).collect()["user_id"].to_list()
    for u in [*users[:6], "nobody"]:
        _same(dict(audit.get_user_statistics(u)), user_statistics(lf, u))


@contextmanager
def _small_chunks(hashed: bool = False) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hot, "CHUNK_ROWS", 64)  # many chunks from few events
        mp.setattr(statistics_module, "SMALL_STATS", 0)  # the sealed summaries, not the small-store row path
        if hashed:  # users found by hash instead of by the name dict
            mp.setattr(user_summary, "_DICT_USERS", 0)
        yield


@settings(max_examples=30, deadline=None)
@given(batches=st.lists(st.integers(0, 200), min_size=1, max_size=5), seed=st.integers(0, 10_000),
       nulls=st.booleans(), shuffled=st.booleans(), users=st.integers(1, 40), seal=st.booleans(),
       hashed=st.booleans(), singles=st.integers(0, 30))
def test_summaries_equal_polars(batches, seed, nulls, shuffled, users, seal, hashed, singles):
    with _small_chunks(hashed):
        _log_and_check(batches, seed, nulls, shuffled, users, seal, singles)


def _log_and_check(batches, seed, nulls, shuffled, users, seal, singles):
    audit = AuditLogger(max_events=1 << 30)
    df = _events(sum(batches) + singles, seed, nulls, shuffled, users)
    start = 0
    for n in batches:
        audit.log_batch(df.slice(start, n))
        start += n
        if seal:
            wait_sealed()  # the sealer has merged every sealed chunk
        _check(audit)
    for row in df.slice(start).iter_rows(named=True):  # log() rows, merged into the growing chunk
        audit.log(row["operation"], user_id=row["user_id"], session_id=row["session_id"],
                  duration_ms=row["duration_ms"], status=row["status"])
    _check(audit)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), keep=st.integers(50, 300), nulls=st.booleans(), shuffled=st.booleans())
def test_summaries_after_trim_and_rewrite(seed, keep, nulls, shuffled):
    with _small_chunks():
        _trim_and_check(seed, keep, nulls, shuffled)


def _trim_and_check(seed, keep, nulls, shuffled):
    audit = AuditLogger(max_events=keep, flush_size=32)
    df = _events(3 * keep, seed, nulls, shuffled, 9)
    for start in range(0, df.height, 70):  # rotations without an export folder: the newest half is kept
        audit.log_batch(df.slice(start, 70))
        _check(audit)
    wait_sealed()  # the sealer's rebuild after the trim has run
    _check(audit)
    assert audit.get_statistics()["dropped_events"] > 0
    audit._hot.rewrite_locked(lambda f: f)  # new chunk objects, same rows
    _check(audit)


async def test_summaries_after_clear(monkeypatch):
    monkeypatch.setattr(hot, "CHUNK_ROWS", 64)
    monkeypatch.setattr(statistics_module, "SMALL_STATS", 0)
    audit = AuditLogger(max_events=1 << 30)
    audit.log_batch(generate_events(500, seed=3, n_users=5))
    wait_sealed()
    _check(audit)
    await audit.clear()
    assert audit.get_statistics()["total_events"] == 0
    audit.log_batch(generate_events(130, seed=4, n_users=5))
    _check(audit)


def test_stats_cache_answers_an_older_snapshot_than_it_holds(monkeypatch):
    monkeypatch.setattr(statistics_module, "SMALL_STATS", 0)
    df = normalize_batch(generate_events(600, seed=5, n_users=4))
    chunks = [Chunk.of(df.slice(s, 100)) for s in range(0, 600, 100)]
    cache = StatsCache()
    cache.advance(chunks[:5])  # the sealer went ahead of a read's snapshot
    for k in (6, 3, 5, 1, 6, 4):
        _same(cache.statistics(chunks[:k]), statistics(pl.concat([c.df for c in chunks[:k]]).lazy()))
    cache.advance(chunks[:2])  # a stale prefix from the sealer changes nothing
    _same(cache.statistics(chunks), statistics(pl.concat([c.df for c in chunks]).lazy()))
    # With a way to take a newer snapshot, an overtaken read answers for that one.
    cache, whole = StatsCache(), statistics(pl.concat([c.df for c in chunks]).lazy())
    cache.advance(chunks[:5])
    _same(cache.statistics(chunks[:3], lambda: chunks), whole)


def test_repeated_answers_are_copies():
    audit = AuditLogger()
    audit.log_batch(generate_events(50, seed=1))
    s = audit.get_statistics()
    s["by_operation"]["STORE"] = -1
    assert audit.get_statistics()["by_operation"]["STORE"] >= 0


@settings(max_examples=60, deadline=None)
@given(runs=st.lists(st.lists(st.floats(-1e6, 1e6), max_size=40), max_size=8),
       q=st.sampled_from([0.0, 0.01, 0.5, 0.95, 0.99, 1.0]))
def test_quantile_over_runs_is_exact(runs, q):
    arrays: list[np.ndarray] = []
    for r in runs:  # as the sealer adds chunks: one run at a time
        arrays = compact([*arrays, np.sort(np.array(r, np.float64))])
    assert all(len(a) >= 2 * len(b) for a, b in pairwise(arrays))
    flat = [x for r in runs for x in r]
    want = pl.Series(flat, dtype=pl.Float64).quantile(q, "linear") if flat else 0.0
    assert quantile(arrays, q) == pytest.approx(want, rel=1e-12, abs=1e-9)


@settings(max_examples=80, deadline=None)
@given(sizes=st.lists(st.integers(0, 40), min_size=0, max_size=4), seed=st.integers(0, 10_000),
       nulls=st.booleans(), shuffled=st.booleans(), users=st.integers(1, 6))
def test_row_statistics_equal_polars(sizes, seed, nulls, shuffled, users):
    # Small stores (empty, one event, a few chunks) answered in plain Python.
    df = normalize_batch(_events(sum(sizes), seed, nulls, shuffled, users))
    chunks, start = [], 0
    for n in sizes:
        chunks.append(df.slice(start, n))
        start += n
    cols = [RowColumns(c) for c in chunks]
    lf = df.lazy()
    _same(row_statistics(cols), statistics(lf))
    for u in [*df["user_id"].drop_nulls().unique().to_list(), "nobody"]:
        _same(row_user_statistics(cols, u), user_statistics(lf, u))


def test_small_and_large_paths_meet(monkeypatch):
    # The same events through the row path and through the sealed summaries.
    monkeypatch.setattr(hot, "CHUNK_ROWS", 64)
    df = _events(300, 7, True, True, 5)
    answers = []
    for small in (10_000, 0):
        monkeypatch.setattr(statistics_module, "SMALL_STATS", small)
        audit = AuditLogger()
        audit.log_batch(df)
        wait_sealed()
        answers.append((audit.get_statistics(), audit.get_user_statistics("user_00001")))
    (s1, u1), (s2, u2) = answers
    _same(dict(s1), dict(s2))
    _same(dict(u1), dict(u2))
    assert u1["total_operations"] > 0


def test_users_with_one_hash_are_told_apart(monkeypatch):
    # A coarse hash makes users collide: rows are matched by name, answers stay exact.
    monkeypatch.setattr(user_summary, "key_hashes", lambda s: index.key_hashes(s) % np.uint64(3))
    monkeypatch.setattr(user_summary, "hashes_of", lambda keys: index.hashes_of(keys) % np.uint64(3))
    with _small_chunks(hashed=True):
        audit = AuditLogger()
        df = _events(400, 11, True, True, 12)
        audit.log_batch(df)
        lf = audit.scan()
        for u in [f"user_{i:05d}" for i in range(12)] + ["nobody"]:
            got, want = dict(audit.get_user_statistics(u)), user_statistics(lf, u)
            del got["unique_sessions"], want["unique_sessions"]  # sessions' hashes collide too: undercounted
            _same(got, want)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 300), seed=st.integers(0, 10_000), nulls=st.booleans(), users=st.integers(1, 5))
def test_buffered_rows_statistics_equal_polars(n, seed, nulls, users):
    # log() rows not sealed yet (at most ROW_TUPLES of them): answered from the row tuples.
    audit = AuditLogger(flush_size=10_000)
    df = _events(n, seed, nulls, False, users)
    for row in df.iter_rows(named=True):  # log() stamps the time itself
        audit.log(row["operation"], user_id=row["user_id"], session_id=row["session_id"],
                  duration_ms=row["duration_ms"], status=row["status"])
    names = [*df["user_id"].drop_nulls().unique().to_list()[:4], "nobody"]
    got = dict(audit.get_statistics())
    got_users = [dict(audit.get_user_statistics(u)) for u in names]
    assert audit._hot.store.chunks == [] or n > ROW_TUPLES  # nothing was sealed for these reads
    lf = audit.scan()  # seals the rows
    plain = statistics(lf)
    _same({k: got[k] for k in plain}, plain)
    for u, g in zip(names, got_users, strict=True):
        _same(g, user_statistics(lf, u))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 300), seed=st.integers(0, 10_000), nulls=st.booleans(), shuffled=st.booleans(),
       users=st.integers(1, 8))
def test_small_answers_equal_polars(n, seed, nulls, shuffled, users):
    # A small chunk's answers, made by the sealer once for every user at once.
    df = normalize_batch(_events(n, seed, nulls, shuffled, users))
    answers, lf = SmallAnswers(RowColumns(df)), df.lazy()
    _same(answers.stats, statistics(lf))
    for u in [*df["user_id"].drop_nulls().unique().to_list(), "nobody"]:
        _same(answers.user(u), user_statistics(lf, u))


def test_first_read_takes_the_sealers_answers(monkeypatch):
    audit = AuditLogger()
    df = _events(200, 3, True, True, 6)
    audit.log_batch(df)
    wait_sealed()
    (chunk,) = audit._hot.store.chunks
    assert chunk.has("small")  # made off the logging path, right after the append

    def fail(*args: object) -> None:
        raise AssertionError("computed again at the read")

    for name in ("row_statistics", "row_user_statistics"):
        monkeypatch.setattr(statistics_module, name, fail)
    lf = audit.scan()
    s = audit.get_statistics()
    _same({k: s[k] for k in statistics(lf)}, statistics(lf))
    _same(dict(audit.get_user_statistics("user_00001")), user_statistics(lf, "user_00001"))
    s["by_operation"]["STORE"] = -1  # answers are the caller's own copies
    audit.get_user_statistics("user_00001")["by_status"]["SUCCESS"] = -1
    assert audit.get_statistics()["by_operation"]["STORE"] >= 0
    assert audit.get_user_statistics("user_00001")["by_status"]["SUCCESS"] >= 0


def test_a_reads_flush_makes_no_answers_in_the_background():
    # The read that seals the buffer derives what it needs itself: no second copy of that work.
    audit = AuditLogger(flush_size=10_000)
    for i in range(ROW_TUPLES + 5):  # more than the buffered-rows path answers
        audit.log("store", user_id=f"u{i % 3}", duration_ms=float(i))
    assert audit.get_statistics()["total_events"] == ROW_TUPLES + 5  # from the rows
    assert audit.get_statistics()["total_events"] == ROW_TUPLES + 5  # asked again: sealed by this read
    wait_sealed()
    assert not audit._hot.store.chunks[-1].has("small")
    audit.log_batch(generate_events(10, seed=2))  # a batch: its chunk gets them
    wait_sealed()
    assert audit._hot.store.chunks[-1].has("small")


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 400), seed=st.integers(0, 10_000), nulls=st.booleans(), shuffled=st.booleans())
def test_one_users_columns_path_equals_polars(n, seed, nulls, shuffled):
    # The growing last chunk asked for one user with many rows: numpy over its columns, no plan.
    df = normalize_batch(_events(n, seed, nulls, shuffled, 2))
    lf = df.lazy()
    for u in df["user_id"].drop_nulls().unique().to_list():
        rows = df.filter(pl.col("user_id") == u)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(user_summary, "SMALL_STATS", 0)
            many = user_summary.one_user(rows, u)
        _same(user_summary.user_statistics_of([many], u), user_statistics(lf, u))
        _same(user_summary.user_statistics_of([many, UserSummary.of(df)], u),
              user_statistics(pl.concat([df, df]).lazy(), u))


def test_many_buffered_rows_sealed_when_asked_again():
    # Above ROW_TUPLES buffered rows: answered from the rows once; asked again of the same
    # rows, they are sealed (the summaries answer repeated reads); same answers either way.
    audit = AuditLogger(flush_size=10_000)
    df = _events(ROW_TUPLES + 300, 5, True, False, 4)

    def log(rows: pl.DataFrame) -> None:
        for row in rows.iter_rows(named=True):
            audit.log(row["operation"], user_id=row["user_id"], session_id=row["session_id"],
                      duration_ms=row["duration_ms"], status=row["status"])

    log(df.head(ROW_TUPLES + 100))
    first = dict(audit.get_statistics())
    assert audit._hot.store.chunks == []  # the first read: from the rows
    log(df.slice(ROW_TUPLES + 100))  # new rows: a new question, from the rows again
    user = dict(audit.get_user_statistics("user_00001"))
    assert audit._hot.store.chunks == []
    again = dict(audit.get_statistics())  # the same rows asked again: sealed
    assert audit._hot.store.count == df.height and len(audit._hot.rows) == 0
    lf = audit.scan()
    plain, head = statistics(lf), statistics(lf.head(ROW_TUPLES + 100))
    _same({k: again[k] for k in plain}, plain)
    _same({k: first[k] for k in head}, head)
    _same(user, user_statistics(lf, "user_00001"))
    assert user["total_operations"] > 0
