"""`Snapshot._top_chunks` (the `limit` newest matches from in-memory chunks, the
other columns gathered for the answer's rows only) answers exactly as the
general path: every match sorted newest first, ties the later in source order
(chunk, then row) first, cut at `limit`."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from axon_audit.model.schema import normalize_batch
from axon_audit.query.filters import Filters
from axon_audit.read.snapshot import Snapshot, newest_first
from axon_audit.store.hot import Chunk

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
T0 = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)

event = st.fixed_dictionaries({
    "operation": st.sampled_from(["store", "recall", "forget"]),
    "user_id": st.sampled_from(["u1", "u2", None]),
    "entry_ids": st.lists(st.sampled_from(["e1", "e2", "e3"]), max_size=2),
    "metadata": st.one_of(st.none(), st.fixed_dictionaries({"k": st.integers(0, 2)})),
    "status": st.sampled_from(["success", "failure"]),
    "second": st.integers(0, 3),  # few distinct times: many ties, within and across chunks
})
chunk = st.lists(event, min_size=0, max_size=20)
query = st.fixed_dictionaries({
    "user_id": st.one_of(st.none(), st.sampled_from(["u1", "u2"])),
    "operation": st.one_of(st.none(), st.sampled_from(["store", "recall"])),
    "entry_ids": st.one_of(st.none(), st.lists(st.sampled_from(["e1", "e3", "e9"]), min_size=1, max_size=2)),
    "metadata": st.one_of(st.none(), st.just({"k": 1})),
    "start_time": st.one_of(st.none(), st.integers(0, 3).map(lambda s: T0 + timedelta(seconds=s))),
    "limit": st.integers(1, 30),
})


def _chunk(events: list[dict], n: int, indexed: bool) -> Chunk:
    rows = [{**{k: v for k, v in e.items() if k != "second"}, "timestamp": T0 + timedelta(seconds=e["second"]),
             "event_id": f"evt_c{n}_{i}"} for i, e in enumerate(events)]
    c = Chunk.of(normalize_batch(rows))
    if indexed:
        c.index  # noqa: B018  # derived: id and entry lookups then go through the chunk index
    return c


@SETTINGS
@given(st.lists(chunk, min_size=1, max_size=5), st.lists(st.booleans(), min_size=5, max_size=5), query,
       st.booleans(), st.data())
def test_top_chunks_equal_sorting_every_match(chunks: list, indexed: list, q: dict, by_id: bool,
                                              data: st.DataObject) -> None:
    built = [_chunk(events, n, indexed[n]) for n, events in enumerate(chunks) if events]
    if not built:
        return
    q = {k: v for k, v in q.items() if v is not None}
    if by_id:  # an id lookup: through the index of an indexed chunk
        ids = [i for c in built for i in c.df["event_id"].to_list()]
        q["event_id"] = data.draw(st.lists(st.sampled_from([*ids, "evt_none"]), min_size=1, max_size=3))
    f = Filters.build(**q)
    snap = Snapshot(old=built[:1], live=built[1:])
    got = snap.select(f)
    want = newest_first(snap.lazy(f), f.limit).collect()
    assert got.schema == want.schema
    assert got.equals(want), (got["event_id"].to_list(), want["event_id"].to_list())


def test_ties_across_chunks_put_the_later_chunk_first() -> None:
    a = _chunk([{"operation": "store", "user_id": "u1", "entry_ids": [], "metadata": None, "status": "success",
                 "second": 1}] * 3, 0, False)
    b = _chunk([{"operation": "store", "user_id": "u1", "entry_ids": ["e1"], "metadata": None,
                 "status": "success", "second": s} for s in (1, 0, 1)], 1, False)
    got = Snapshot(live=[a, b]).select(Filters.build(user_id="u1", limit=5))
    assert got["event_id"].to_list() == ["evt_c1_2", "evt_c1_0", "evt_c0_2", "evt_c0_1", "evt_c0_0"]
    assert got["entry_ids"].to_list() == [["e1"], ["e1"], [], [], []]
    assert got.schema == pl.Schema(a.df.schema)
