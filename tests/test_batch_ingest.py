"""`log_batch`'s fast paths store what the row path stores: a list of dicts, an Arrow
table of the same events and `log` once per event give the same events field by
field (ids in the same format, the same metadata text); the compiled id writer and
metadata splitter give the bytes of their Python/polars fallbacks; a bad row is
refused whole, naming the row and the field, and nothing of the batch (or of
earlier batches) is lost or partly accepted."""

from __future__ import annotations

import enum
import math
import os
import re
import uuid
from datetime import datetime, timezone
from typing import Any

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from axon_audit import AuditError, AuditLogger
from axon_audit.model import batch_ids, metadata_texts
from axon_audit.model.coerce import encode_metadata
from axon_audit.model.ids import ID_MAX_US, ID_MIN_US, make_event_id
from axon_audit.model.schema import normalize_batch, polars_ids, rows_to_frame, to_arrow
from axon_audit.model.timestamps import from_us

needs_native = pytest.mark.skipif(not batch_ids.AVAILABLE, reason="axon_audit._native.ingest was not built")
ID_RE = re.compile(r"^evt_(\d{16}|-\d{15})([0-9a-f]{6})(\d{8})$")


def test_the_compiled_ingest_path_is_built_where_make_test_requires_it() -> None:
    if os.environ.get("AXON_AUDIT_REQUIRE_NATIVE") != "1":
        pytest.skip("AXON_AUDIT_REQUIRE_NATIVE is not set")
    assert batch_ids.AVAILABLE


class Kind(enum.StrEnum):
    A = "a"


class Level(enum.IntEnum):
    LOW = 1


class Sub(str):
    pass


# --------------------------------------------------------------------------- strategies

HOSTILE = ["", "\n", '"', "\\", '\\"', '"},{"x":"', "],[", "null", "{}", "[]", ",", "🦉", "\u2028", "\x00", "é"]
texts = st.one_of(st.sampled_from(HOSTILE), st.text(st.characters(exclude_categories=("Cs",)), max_size=14))
finite = st.floats(allow_nan=False, allow_infinity=False)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), finite, texts)
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.tuples(inner), st.dictionaries(texts, inner, max_size=3)), max_leaves=8)
metadata = st.one_of(st.none(), st.just({}), st.dictionaries(texts, json_values, max_size=4))
times = st.integers(ID_MIN_US, ID_MAX_US)
ops = st.sampled_from(["STORE", "store", " Recall ", "FORGET", "BULK_STORE", "export"])
statuses = st.sampled_from(["SUCCESS", "failure", "PARTIAL"])
opt_text = st.one_of(st.none(), texts)


@st.composite
def events(draw: Any) -> dict[str, Any]:
    e: dict[str, Any] = {"operation": draw(ops)}
    for key, strategy in (("user_id", opt_text), ("session_id", opt_text), ("error_message", opt_text),
                          ("entry_ids", st.one_of(st.none(), st.lists(texts, max_size=3), st.tuples(texts))),
                          ("metadata", metadata), ("status", statuses),
                          ("duration_ms", st.one_of(st.none(), st.floats(0, 1e9), st.integers(0, 2**53)))):
        if draw(st.booleans()):
            e[key] = draw(strategy)
    return e


uniform_batches = st.integers(1, 12).flatmap(
    lambda n: st.fixed_dictionaries({k: st.lists(s, min_size=n, max_size=n) for k, s in
                                     (("operation", ops), ("user_id", opt_text), ("metadata", metadata),
                                      ("entry_ids", st.lists(texts, max_size=2)), ("status", statuses))}))


# --------------------------------------------------------------------------- helpers


def _fields(rows: list[dict[str, Any]]) -> list[bytes]:
    """Every field but the generated ones, as exact bytes (1 and 1.0, -0.0 and 0.0 differ)."""
    return [orjson.dumps({k: v for k, v in r.items() if k not in ("event_id", "timestamp")}) for r in rows]


def _arrow(batch: list[dict[str, Any]]) -> pa.Table:
    """The same events as an Arrow table a user would build: metadata as its JSON text."""
    cols: dict[str, list[Any]] = {k: [e.get(k) for e in batch] for k in
                                  ("timestamp", "operation", "user_id", "session_id", "entry_ids", "metadata",
                                   "status", "error_message", "duration_ms")}
    cols["metadata"] = [None if m is None else orjson.dumps(m).decode() for m in cols["metadata"]]
    cols["entry_ids"] = [None if v is None else list(v) for v in cols["entry_ids"]]
    cols["duration_ms"] = [None if v is None else float(v) for v in cols["duration_ms"]]
    types = {"timestamp": pa.timestamp("us", tz="UTC"), "entry_ids": pa.list_(pa.string()),
             "duration_ms": pa.float64()}
    return pa.table({k: pa.array(v, types.get(k, pa.string())) for k, v in cols.items()})


def _check_ids(frame: pl.DataFrame) -> None:
    """Generated ids: the row path's format, the row's own time, one node, sequence = row."""
    nodes = set()
    for i, (eid, ts) in enumerate(zip(frame["event_id"], frame["timestamp"].dt.epoch("us"), strict=True)):
        m = ID_RE.match(eid)
        assert m, eid
        nodes.add(m.group(2))
        assert eid == make_event_id(ts, i, m.group(2))
    assert len(nodes) == 1


# --------------------------------------------------------------------------- equivalence


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(events(), min_size=1, max_size=10), st.lists(times, min_size=10, max_size=10))
def test_dicts_arrow_and_log_per_row_store_the_same_events(batch: list[dict[str, Any]], us: list[int]) -> None:
    row_path = AuditLogger()
    for e in batch:
        row_path.log(**e)
    timed = [{**e, "timestamp": from_us(t)} for e, t in zip(batch, us, strict=False)]
    by_dicts, by_arrow = normalize_batch(timed), normalize_batch(_arrow(timed))
    for frame in (by_dicts, by_arrow):
        _check_ids(frame)
        assert frame["timestamp"].dt.epoch("us").to_list() == us[:len(batch)]
    assert by_dicts.drop("event_id").equals(by_arrow.drop("event_id"))
    audit = AuditLogger()
    audit.log_batch(timed)
    assert _fields(_in_logging_order(audit)) == _fields(_in_logging_order(row_path))


def _in_logging_order(audit: AuditLogger) -> list[dict[str, Any]]:
    """Events by their ids' sequence numbers (one node each here): the order they were logged in."""
    return sorted((e.to_dict() for e in audit.query_events()), key=lambda d: d["event_id"][-8:])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(uniform_batches)
def test_uniform_dicts_and_their_columns_give_one_frame(cols: dict[str, list[Any]]) -> None:
    """Dicts that all have the same keys take the row-wise C transposition."""
    n = len(cols["operation"])
    batch = [{k: v[i] for k, v in cols.items()} for i in range(n)]
    a, b = normalize_batch(batch), normalize_batch(_arrow(batch).drop(["timestamp"]))
    assert a.drop("event_id", "timestamp").equals(b.drop("event_id", "timestamp"))
    assert a["metadata"].to_list() == [encode_metadata(e["metadata"]) for e in batch]


# --------------------------------------------------------------------------- compiled vs fallback


@needs_native
@settings(max_examples=200, deadline=None)
@given(st.lists(times, min_size=1, max_size=50), st.text("0123456789abcdef", min_size=6, max_size=6))
def test_compiled_ids_are_the_polars_ids_byte_for_byte(us: list[int], node: str) -> None:
    s = pl.Series(us, dtype=pl.Int64)
    native = batch_ids.generated_ids(s, node, polars_ids)
    assert native.to_list() == batch_ids.generated_ids(s, node, polars_ids, native=False).to_list()
    assert native.to_list() == [make_event_id(t, i, node) for i, t in enumerate(us)]


@needs_native
def test_compiled_ids_at_the_ends_of_their_range() -> None:
    us = [ID_MIN_US, -1, 0, 1, ID_MAX_US]
    ids = batch_ids.generated_ids(pl.Series(us), "0a0b0c", polars_ids)
    assert ids.to_list() == [make_event_id(t, i, "0a0b0c") for i, t in enumerate(us)]
    assert ids.to_list() == sorted(ids.to_list())  # ids sort by time across 1970
    with pytest.raises(ValueError, match="outside the range"):
        batch_ids.generated_ids(pl.Series([ID_MAX_US + 1]), "0a0b0c", polars_ids)


@needs_native
@settings(max_examples=200, deadline=None)
@given(st.lists(times, min_size=1, max_size=40), st.integers(-1, 10**9), st.booleans(), st.randoms())
def test_the_flush_s_compiled_ids_and_columns_are_the_python_ones(us: list[int], seq0: int, shuffle: bool,
                                                                   rnd: Any) -> None:
    # rows_to_frame: ids written in C when one logger's sequences run on by one (across the
    # 8-digit wrap too); interleaved or negative sequences are left to the polars expression.
    seqs = list(range(seq0, seq0 + len(us)))
    if shuffle:
        rnd.shuffle(seqs)
    node = "0a0b0c"
    ids = batch_ids.sequential_ids(pl.Series(us, dtype=pl.Int64), pl.Series(seqs, dtype=pl.Int64), node)
    runs_on = seq0 >= 0 and seqs == sorted(seqs)
    assert (ids is not None) == runs_on
    if ids is not None:
        assert ids.to_list() == [make_event_id(t, q, node) for t, q in zip(us, seqs, strict=True)]
    rows = [(t, q, node, "STORE", None, "s", ("e",), None, "SUCCESS", None, 1.0) for t, q in zip(us, seqs, strict=True)]
    cols = batch_ids.row_columns(rows, 11)
    assert cols == [list(c) for c in zip(*rows, strict=True)]
    with pytest.raises(IndexError):  # a short row is never taken for a full one
        batch_ids.row_columns([*rows, rows[0][:10]], 11)
    frame = rows_to_frame(rows)
    assert frame["event_id"].to_list() == [make_event_id(t, q, node) for t, q in zip(us, seqs, strict=True)]


odd_values = st.sampled_from([Kind.A, Level.LOW, uuid.UUID(int=3), orjson.Fragment(b"1"), math.nan, math.inf,
                              -math.inf, np.float64(1.5), np.int64(2), Sub("s"), 2**64, -(2**63) - 1, b"x", {1},
                              datetime(2025, 1, 1), "\ud800", (1, 2), [None], "null"])
any_values = st.recursive(st.one_of(scalars, odd_values), lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.one_of(texts, st.just(Sub("k"))), inner, max_size=3)),
    max_leaves=6)


@needs_native
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.none(), st.just({}), st.dictionaries(texts, any_values, max_size=3)), min_size=1,
                max_size=8))
def test_metadata_texts_are_log_s_texts_or_left_to_it(values: list[Any]) -> None:
    """The one-call path gives `encode_metadata`'s text for every row, or declines
    (None) and leaves the batch to it; it never accepts what `log` refuses."""
    fast = metadata_texts.metadata_texts(values)
    try:
        slow = [encode_metadata(v) for v in values]
    except AuditError:
        assert fast is None
        return
    if fast is not None:
        assert fast.to_list() == slow


@needs_native
def test_metadata_texts_split_strings_that_look_like_json() -> None:
    values = [{"a": '"},{"b":['}, None, {"k": "]"}, {}, {"e": "\\", "f": ['"', {"g": "{"}]}, {"s": "x" * 40}]
    out = metadata_texts.metadata_texts(values)
    assert out is not None and out.to_list() == [encode_metadata(v) for v in values]


@needs_native
def test_metadata_texts_past_the_views_reach_are_cut_into_arrays(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metadata_texts, "_MAX_TEXT", 40)
    values = [{"i": i, "s": "x" * (i % 7)} if i % 3 else None for i in range(25)]
    out = metadata_texts.metadata_texts(values)
    assert out is not None and len(metadata_texts._pieces(values) or []) > 1
    assert out.to_list() == [encode_metadata(v) for v in values]
    monkeypatch.setattr(metadata_texts, "_MAX_TEXT", 5)  # one dict alone too long: the per-row path
    assert metadata_texts.metadata_texts([{"long": "y" * 10}]) is None


def test_dicts_in_blocks_give_the_frame_of_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    from axon_audit.model import dict_columns  # the block size is patched below

    batch: list[dict[str, Any]] = [{"operation": "store", "metadata": {"i": i}} for i in range(10)]
    batch += [{"operation": "recall", "user_id": f"u{i}", "entry_ids": ("a", "b")} for i in range(7)]
    batch += [{"operation": "store", "status": "failure", "duration_ms": 2}]
    for i in (1, 2, 11, 16):  # times in some blocks only, as datetimes and as text
        batch[i]["timestamp"] = from_us(1_700_000_000_000_000 + i) if i % 2 else "2026-01-02T03:04:05.000006Z"
    whole = normalize_batch(batch)
    monkeypatch.setattr(dict_columns, "BLOCK", 3)
    blocks = normalize_batch(batch)
    assert blocks.drop("event_id", "timestamp").equals(whole.drop("event_id", "timestamp"))
    timed = [1, 2, 11, 16]
    assert blocks["timestamp"].gather(timed).equals(whole["timestamp"].gather(timed))
    late = [dict(e) for e in batch] + [{"operation": "store", "timestamp": "10000-01-01T00:00:00Z"}]
    with pytest.raises(AuditError, match=r"row 18: timestamp"):
        normalize_batch(late)
    bad = batch + [{"operation": "store"}] * 5 + [{"operation": "store", "user_id": 7}]
    with pytest.raises(AuditError, match=r"events\[23\]: user_id"):
        normalize_batch(bad)


# --------------------------------------------------------------------------- refusals


BAD_ROWS = [
    ({"operation": "nope"}, "operation"),
    ({"operation": "\ud800"}, "operation"),
    ({"operation": "störe"}, "operation"),
    ({"operation": "store", "status": Kind.A}, "status"),
    ({"operation": "store", "user_id": 5}, "user_id"),
    ({"operation": "store", "session_id": "\ud800"}, "session_id"),
    ({"operation": "store", "error_message": Kind.A}, "error_message"),
    ({"operation": "store", "entry_ids": ["a", None]}, "entry_ids"),
    ({"operation": "store", "entry_ids": "abc"}, "entry_ids"),
    ({"operation": "store", "metadata": {"x": math.nan}}, "metadata"),
    ({"operation": "store", "metadata": {"x": Kind.A}}, "metadata"),
    ({"operation": "store", "metadata": {"x": [uuid.UUID(int=1)]}}, "metadata"),
    ({"operation": "store", "metadata": {"x": {"y": np.float64(1.0)}}}, "metadata"),
    ({"operation": "store", "metadata": [1]}, "metadata"),
    ({"operation": "store", "status": "meh"}, "status"),
    ({"operation": "store", "duration_ms": -1.0}, "duration_ms"),
    ({"operation": "store", "duration_ms": True}, "duration_ms"),
    ({"operation": "store", "nope": 1}, "nope"),
]


GOOD = {"user_id": "u", "session_id": "s", "error_message": "e", "entry_ids": ["a"], "metadata": {"k": [1]},
        "status": "SUCCESS", "duration_ms": 1.5}


@pytest.mark.parametrize("bad, field", BAD_ROWS, ids=[f for _, f in BAD_ROWS])
@pytest.mark.parametrize("uniform", [True, False], ids=["same-keys", "other-keys"])
def test_a_bad_row_refuses_the_whole_batch_naming_row_and_field(bad: dict[str, Any], field: str,
                                                                 uniform: bool) -> None:
    audit = AuditLogger()
    audit.log_batch([{"operation": "store", "user_id": "kept"}] * 3)
    if uniform and field not in GOOD and field != "operation":
        pytest.skip("an unknown key has no good value")
    good = {"operation": "recall", **{k: GOOD[k] for k in bad if k in GOOD}} if uniform else {"operation": "recall"}
    batch = [dict(good) for _ in range(6)]
    batch[4] = bad
    with pytest.raises(AuditError) as err:
        audit.log_batch(batch)
    assert "events[4]" in str(err.value) or "row 4" in str(err.value), err.value
    assert field in str(err.value), err.value
    assert audit.event_count == 3 and {e.user_id for e in audit.query_events()} == {"kept"}
    assert audit.total_events_logged == 3
    with pytest.raises((AuditError, TypeError)):  # the row path refuses the same value (a key: Python does)
        audit.log(**bad)


@pytest.mark.parametrize("parallel", [False, True], ids=["arrow-kernels-in-turn", "arrow-kernels-side-by-side"])
def test_a_large_batch_keeps_every_event_and_its_order(parallel: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    from axon_audit.model import arrow_intake  # its big-batch threshold is patched below
    from axon_audit.workload import generate_events, iter_log_calls  # the benchmark's workload, small

    monkeypatch.setattr(arrow_intake, "_PARALLEL_ROWS", 0 if parallel else 10**12)
    df = generate_events(30_000, seed=3, start=datetime(2026, 1, 1, tzinfo=timezone.utc))
    calls = list(iter_log_calls(df))
    a = normalize_batch(calls)
    b = normalize_batch(df.drop("timestamp").to_arrow())
    views = normalize_batch(df.drop("timestamp").to_arrow(compat_level=pl.CompatLevel.newest()))
    assert a.drop("event_id", "timestamp").equals(b.drop("event_id", "timestamp"))
    assert views.drop("event_id", "timestamp").equals(b.drop("event_id", "timestamp"))
    assert b.schema == views.schema == a.schema
    assert a["metadata"].to_list() == [encode_metadata(c["metadata"]) for c in calls]
    assert a["event_id"].n_unique() == a.height


def test_the_canonical_arrow_form_reads_back_as_the_same_frame() -> None:
    """Dictionary-encoded columns (`ARROW_SCHEMA`, what exports and DuckDB see) take the polars path."""
    from axon_audit.workload import generate_events  # a small workload

    frame = normalize_batch(generate_events(5_000, seed=4, start=datetime(2026, 1, 1, tzinfo=timezone.utc)))
    again = normalize_batch(to_arrow(frame))
    assert again.equals(frame)
    assert normalize_batch(to_arrow(frame).to_batches()[0]).equals(frame.head(to_arrow(frame).to_batches()[0].num_rows))
