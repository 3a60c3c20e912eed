"""Sealed chunks store each distinct text once (`axon_audit.store.compact`): the
values, nulls, order and dtypes never change, and the bytes held go down to what
the distinct values need, whichever way the events came in."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axon_audit import AuditLogger
from axon_audit.store.compact import compact
from axon_audit.store.hot import CHUNK_ROWS, wait_sealed

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.footprint import arrow_buffer_bytes

_texts = st.one_of(st.none(), st.sampled_from(["", "a", "exactly12byte", "x" * 40, "ü" * 9, "\x00\n\"\\"]),
                   st.text(max_size=30))
_lists = st.one_of(st.none(), st.lists(_texts, max_size=4))


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.tuples(_texts, _texts, _lists), min_size=1, max_size=60),
       cut=st.integers(0, 30), keep=st.integers(1, 60))
def test_compact_keeps_every_value_in_place(rows: list, cut: int, keep: int) -> None:
    df = pl.DataFrame(rows, schema={"event_id": pl.String, "metadata": pl.String, "entry_ids": pl.List(pl.String)},
                      orient="row")
    df = df.with_columns(n=pl.int_range(pl.len()))
    part = df.slice(min(cut, df.height - 1), keep)  # sliced: Arrow offsets that do not start at 0
    out = compact(part)
    assert out.schema == part.schema
    assert out.equals(part)
    assert out.to_dicts() == part.to_dicts()


def test_repeated_texts_are_held_once() -> None:
    texts = [f'{{"source":"api","importance":0.{i % 50:02d}}}' for i in range(20_000)]
    entries = [[f"entry_{i % 300:010d}", f"entry_{(i * 7) % 300:010d}"] for i in range(20_000)]
    df = pl.DataFrame({"metadata": texts, "entry_ids": entries})
    out = compact(df)
    assert out.equals(df)
    # 16-byte views (and list offsets) stay; the copies of the repeated texts go.
    assert arrow_buffer_bytes([df]) > 2 * arrow_buffer_bytes([out])
    assert arrow_buffer_bytes([out.select("metadata")]) < 20_000 * 16 + 50 * 40 + 4096


def test_unique_ids_are_kept_as_they_are() -> None:
    ids = pl.DataFrame({"event_id": [f"evt_{i:016d}_{i:08d}" for i in range(50_000)],
                        "session_id": [f"session_{i % 10:08d}" for i in range(50_000)]})
    out = compact(ids)
    assert out.equals(ids)
    assert arrow_buffer_bytes([out.select("event_id")]) == arrow_buffer_bytes([ids.select("event_id")])
    # 16 B of views and 16 B of text per event before; the views and ten texts after.
    sessions = (arrow_buffer_bytes([f.select("session_id")]) for f in (out, ids))
    assert next(sessions) < 50_000 * 16 + 4096 < next(sessions)
    only_ids = ids.select("event_id")
    assert compact(only_ids) is only_ids  # nothing to rewrite: the same frame, no copy made


def _arrow_with_hidden_bytes(n: int) -> pa.Table:
    """Arrow input whose null slots still carry bytes (Arrow allows it): what polars'
    `when/then` gives, read back through `to_arrow`."""
    base = pl.DataFrame({"i": range(n)}).with_columns(
        operation=pl.lit("STORE"), user_id=pl.format("user_{}", pl.col("i") % 40),
        session_id=pl.format("session_{}", pl.col("i") % 700),
        entry_ids=pl.concat_list(pl.format("entry_{}", pl.col("i") % 900)),
        metadata=pl.format('{{"source":"api","n":{}}}', pl.col("i") % 30),
        status=pl.when(pl.col("i") % 10 == 0).then(pl.lit("FAILURE")).otherwise(pl.lit("SUCCESS")),
        error_message=pl.when(pl.col("i") % 10 == 0).then(pl.lit("quota exceeded for the user " * 20)),
        duration_ms=pl.lit(1.5))
    return base.drop("i").to_arrow()


@pytest.mark.parametrize("how", ["arrow", "log"])
def test_sealed_store_holds_what_the_events_need(how: str) -> None:
    n = 2 * CHUNK_ROWS + 1000 if how == "arrow" else CHUNK_ROWS + 1000
    table = _arrow_with_hidden_bytes(n)
    audit = AuditLogger(max_events=1 << 40)
    if how == "arrow":
        audit.log_batch(table)
    else:  # one call per event: the flush builds each value's own copy
        for row in table.slice(0, n).to_pylist():
            audit.log(row["operation"], user_id=row["user_id"], session_id=row["session_id"],
                      entry_ids=row["entry_ids"], metadata=orjson.loads(row["metadata"]), status=row["status"],
                      error_message=row["error_message"], duration_ms=row["duration_ms"])
    audit.flush()
    wait_sealed()
    chunks = audit._hot.store.chunks
    compacted = [c for c in chunks if c.has("compact")]
    assert compacted, "a full chunk is compacted by the sealer"
    per_event = arrow_buffer_bytes([c.df for c in compacted]) / sum(c.height for c in compacted)
    # ids (16 + 34 B), time, duration, codes, and a 16-byte view per text and entry:
    # no per-event copy of the 560-byte error text, the metadata or the entries.
    assert per_event < 150, per_event
    held = pl.concat([c.df for c in chunks]).select(
        pl.col("user_id").cast(pl.String), "session_id", "entry_ids", "error_message", "metadata")
    sent = pl.from_arrow(table).select("user_id", "session_id", "entry_ids", "error_message", "metadata")
    assert held.drop("metadata").equals(sent.drop("metadata"))  # every event, in logging order
    assert [orjson.loads(m) for m in held["metadata"]] == [orjson.loads(m) for m in sent["metadata"]]


def test_texts_already_shared_or_short_are_left_alone() -> None:
    distinct = pl.Series("metadata", [f'{{"source":"api","importance":0.{i:02d}}}' for i in range(50)])
    shared = pl.DataFrame({"metadata": distinct.gather(pl.Series([i % 50 for i in range(20_000)])),
                           "status_text": ["ok"] * 20_000,  # inline in its view: no data buffer to shrink
                           "entry_ids": [["e1", "e22"]] * 20_000})
    assert compact(shared) is shared  # nothing to gain: no rewrite, no check, the same frame
    copied = pl.DataFrame({"metadata": distinct.gather(pl.Series([i % 50 for i in range(20_000)])).to_list()})
    assert compact(copied) is not copied  # the same values, each row its own copy: rewritten
