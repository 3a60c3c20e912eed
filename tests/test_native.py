"""The compiled path of the Merkle log (axon_audit._native.leafhash through
axon_audit.integrity.native) against the polars path and the Python reference,
byte for byte; and its refusal of malformed buffers (an error, never a crash)."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from axon_audit.integrity import digest, leaf, native
from axon_audit.integrity.leaf import event_leaf_hash, leaf_hashes, objects_and_leaves
from axon_audit.io.json_export import event_objects, write_json_stream
from axon_audit.model.schema import normalize_batch
from axon_audit.workload import generate_events

needs_native = pytest.mark.skipif(not native.AVAILABLE, reason="axon_audit._native.leafhash was not built")


def test_the_compiled_path_is_built_where_make_test_requires_it() -> None:
    """`make test` (and so CI) sets AXON_AUDIT_REQUIRE_NATIVE: the figures in the README
    are the compiled path's, so a build that silently fell back must fail here."""
    if os.environ.get("AXON_AUDIT_REQUIRE_NATIVE") != "1":
        pytest.skip("AXON_AUDIT_REQUIRE_NATIVE is not set")
    assert native.AVAILABLE


def _polars(fn, *args):  # the same call with the compiled path switched off
    saved = native.AVAILABLE
    native.AVAILABLE = False
    try:
        return fn(*args)
    finally:
        native.AVAILABLE = saved


def _both(df: pl.DataFrame) -> tuple[np.ndarray, list[str]]:
    buffers = native.EventBuffers(df, leaf._metadata(df["metadata"]), leaf._numbers(df["duration_ms"]), export=True)
    return buffers.leaves(), buffers.objects().to_list()


# Every control character, quotes, backslashes, DEL, non-ASCII up to astral planes.
hostile = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=10) \
    | st.sampled_from(["", '"', "\\", "\x00", "\x1f\x7f", "é\u2028😀", "\n\r\t\b\f"])
rows = st.fixed_dictionaries(
    {"operation": st.sampled_from(["STORE", "RECALL", "FORGET", "BULK_STORE"]),
     "event_id": st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12),
     "timestamp": st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999),
                               timezones=st.just(timezone.utc)),
     "status": st.sampled_from(["SUCCESS", "FAILURE", "PARTIAL"])},
    optional={"user_id": hostile | st.none(), "session_id": hostile | st.none(),
              "entry_ids": st.lists(hostile, max_size=4) | st.none(),
              "metadata": st.dictionaries(hostile, hostile | st.integers(-10**6, 10**6) | st.floats(
                  allow_nan=False, allow_infinity=False), max_size=3) | st.none(),
              "error_message": hostile | st.none(),
              "duration_ms": st.floats(0, allow_nan=False, allow_infinity=False) | st.none()})


@needs_native
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(rows, min_size=1, max_size=10, unique_by=lambda r: r["event_id"]), st.integers(0, 3),
       st.integers(0, 3))
def test_leaves_and_export_objects_equal_the_polars_path_and_the_reference(batch: list[dict], head: int,
                                                                           tail: int) -> None:
    columns = {key for row in batch for key in row}
    df = normalize_batch([{key: row.get(key) for key in columns} for row in batch])
    df = df.slice(min(head, df.height - 1), max(1, df.height - head - tail))  # Arrow offsets != 0
    leaves, objects = _both(df)
    assert objects == _polars(lambda: event_objects(df).to_list())
    assert [bytes(r) for r in leaves] == [bytes(r) for r in _polars(leaf_hashes, df)]
    assert [bytes(r) for r in leaves] == [event_leaf_hash(json.loads(t)) for t in objects]


@needs_native
def test_a_frame_of_many_chunks_and_the_workload() -> None:
    parts = [normalize_batch(generate_events(3000, seed=s)) for s in range(3)]
    df = pl.concat(parts, rechunk=False)
    assert df.n_chunks("all") != [1] * df.width
    leaves, objects = _both(df)
    assert objects == _polars(lambda: event_objects(df).to_list())
    assert (leaves == _polars(leaf_hashes, df)).all()
    ids = [json.loads(t)["event_id"] for t in objects[::997]]
    assert ids == df["event_id"].gather_every(997).to_list()


@needs_native
def test_objects_and_leaves_write_the_same_document_as_the_polars_path(tmp_path) -> None:
    import io

    df = normalize_batch(generate_events(70_000, seed=4))  # more than two native pieces
    objects, _ = objects_and_leaves(df)
    assert not isinstance(objects, pl.Series)
    ours, theirs = io.BytesIO(), io.BytesIO()
    write_json_stream(ours, df, exported_at_us=0, objects=objects)
    write_json_stream(theirs, df, exported_at_us=0)
    assert ours.getvalue() == theirs.getvalue()
    assert json.loads(ours.getvalue())["total_events"] == 70_000


@needs_native
def test_timestamps_at_the_ends_of_the_range_and_around_the_epoch() -> None:
    times = ["0001-01-01T00:00:00Z", "1969-12-31T23:59:59.999999Z", "1970-01-01T00:00:00Z",
             "1900-02-28T12:00:00.5Z", "2000-02-29T00:00:00.000001Z", "9999-12-31T23:59:59.999999Z"]
    df = normalize_batch([{"event_id": f"e{i}", "timestamp": t, "operation": "store"} for i, t in enumerate(times)])
    _, objects = _both(df)
    assert [json.loads(o)["timestamp"] for o in objects] == \
        df["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_list()


@needs_native
@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=40), st.binary(max_size=3))
def test_sha256_values_and_rows_equal_hashlib(values: list[bytes], prefix: bytes) -> None:
    arr = pa.array(values, pa.binary()).slice(min(1, len(values)))
    got = native.sha256_values(arr, prefix)
    assert [bytes(r) for r in got] == [hashlib.sha256(prefix + v).digest() for v in arr.to_pylist()]
    rows = np.frombuffer(b"".join(v.ljust(300, b"x") for v in values), np.uint8).reshape(-1, 300)
    assert [bytes(r) for r in native.sha256_rows(rows, prefix)] == \
        [hashlib.sha256(prefix + bytes(r)).digest() for r in rows]
    assert [bytes(r) for r in digest.sha256_rows(rows, prefix)] == [bytes(r) for r in _polars(digest.sha256_rows,
                                                                                                  rows, prefix)]


@needs_native
def test_malformed_buffers_are_refused_not_read() -> None:
    from axon_audit._native import leafhash  # the raw entry points: what native.py must never pass

    offsets = np.array([0, 5, 10**9], np.int64).tobytes()  # the second value ends far past the data
    with pytest.raises(ValueError, match="out of range"):
        leafhash.leaves(2, ((0, None, offsets, b"abcde", 0),), ((b'{"a":', 0),), 1)
    with pytest.raises(ValueError, match="offsets"):
        leafhash.leaves(5, ((0, None, np.zeros(2, np.int64).tobytes(), b"", 0),), ((b'{"a":', 0),), 1)
    with pytest.raises(ValueError, match="names no field"):
        leafhash.leaves(0, ((0, None, np.zeros(1, np.int64).tobytes(), b"", 0),), ((b'{"a":', 3),), 1)
    dict_offsets = np.array([0, 1], np.int64).tobytes()
    with pytest.raises(ValueError, match="index is out of range"):
        leafhash.lines(1, ((4, None, bytes([7]), 1, dict_offsets, b"x", 0, 0, 1),), ((b'{"a":', 0),), b",")
    with pytest.raises(ValueError, match="do not split"):
        leafhash.sha256_rows(b"abc", 2, b"", 1)
