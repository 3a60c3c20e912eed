"""The incremental statistics of the live store equal the plain polars ones."""

from __future__ import annotations

import math

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import axon_audit.store.statistics as statistics_module
from axon_audit import AuditLogger
from axon_audit.model.schema import normalize_batch
from axon_audit.store.hot import Chunk
from axon_audit.store.statistics import StatsCache, statistics
from axon_audit.workload import generate_events


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], float):
            assert math.isclose(a[k], b[k], rel_tol=1e-9, abs_tol=1e-9), (k, a[k], b[k])
        else:
            assert a[k] == b[k], (k, a[k], b[k])


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(0, 300), min_size=0, max_size=6), seed=st.integers(0, 1000),
       grow=st.integers(0, 3), nulls=st.booleans())
def test_incremental_statistics_equal_polars(sizes, seed, grow, nulls):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(statistics_module, "SMALL_STATS", 0)  # the incremental path, not the small-store row path
        _incremental(sizes, seed, grow, nulls)


def _incremental(sizes, seed, grow, nulls):
    df = normalize_batch(generate_events(sum(sizes) + 50 * grow, seed=seed, n_users=7))
    if nulls:  # some events without duration, user or session
        df = df.with_columns(
            pl.when(pl.int_range(pl.len()) % 3 == 0).then(None).otherwise(pl.col(c)).alias(c)
            for c in ("duration_ms", "user_id", "session_id")
        )
    chunks, start = [], 0
    for n in sizes:
        if n:
            chunks.append(Chunk.of(df.slice(start, n)))
        start += n
    cache = StatsCache()
    # Called as the store grows: the cache merges only the new chunks each time.
    for k in range(1, len(chunks) + 1):
        _same(cache.statistics(chunks[:k]), statistics(pl.concat([c.df for c in chunks[:k]]).lazy()))
    for g in range(grow):  # the last chunk grows (is replaced), and new chunks come
        chunks.append(Chunk.of(df.slice(start, 50 * (g + 1))))
        _same(cache.statistics(chunks), statistics(pl.concat([c.df for c in chunks]).lazy()))
    # A rotation drops the front: the cache starts over.
    if len(chunks) > 2:
        _same(cache.statistics(chunks[2:]), statistics(pl.concat([c.df for c in chunks[2:]]).lazy()))
    if not chunks:
        assert cache.statistics([])["total_events"] == 0


def test_logger_statistics_after_rotation_keep_newest():
    audit = AuditLogger(max_events=1000, flush_size=100)
    audit.log_batch(generate_events(900, seed=1))
    first = audit.get_statistics()
    assert first["total_events"] == 900
    audit.log_batch(generate_events(300, seed=2))  # rotation: keeps the newest 500
    s = audit.get_statistics()
    plain = statistics(audit.scan())
    _same({k: s[k] for k in plain}, plain)
    assert s["total_events"] == 500 and s["dropped_events"] == 700
