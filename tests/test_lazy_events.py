"""Query answers' events are made column-lazily (`axon_audit.model.frame_rows`):
they must read, compare, hash, pickle and print exactly as events built eagerly
from the same frame, whatever field is read first and whichever thread reads."""

from __future__ import annotations

import copy
import pickle
import threading
from itertools import repeat

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from axon_audit import AuditEvent, AuditLogger, EventStatus, OperationType
from axon_audit.model.frame_rows import FrameRows, frame_events
from axon_audit.model.ids import ID_MAX_US, ID_MIN_US
from axon_audit.model.schema import events_to_frame, frame_to_events, normalize_batch

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FIELDS = ("event_id", "timestamp", "timestamp_us", "operation", "user_id", "session_id", "entry_ids",
          "metadata", "status", "error_message", "duration_ms")

text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8)
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
                      st.floats(allow_nan=False, allow_infinity=False), text)
metadata = st.one_of(st.none(), st.dictionaries(
    text, st.recursive(json_leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(text, c, max_size=3),
                       max_leaves=5), max_size=3))
row_dicts = st.fixed_dictionaries({
    "operation": st.sampled_from([*OperationType, "store", "recall"]),
    "user_id": st.one_of(st.none(), st.sampled_from(["alice", "bob", "ünï", ""])),
    "session_id": st.one_of(st.none(), text),
    "entry_ids": st.one_of(st.none(), st.lists(st.sampled_from(["e1", "e2", "e3", ""]), max_size=3)),
    "metadata": metadata,
    "status": st.one_of(st.none(), st.sampled_from(list(EventStatus))),
    "error_message": st.one_of(st.none(), text),
    "duration_ms": st.one_of(st.none(), st.floats(min_value=0, max_value=1e9, allow_nan=False)),
    "timestamp": st.one_of(st.none(), st.integers(ID_MIN_US, ID_MAX_US)),
})


def _frame(rows: list[dict], explicit_ids: bool, null_entries: list[bool]) -> pl.DataFrame:
    data = []
    for i, r in enumerate(rows):
        d = {k: v for k, v in r.items() if k != "timestamp"}
        if r["timestamp"] is not None:
            d["timestamp"] = pl.Series([r["timestamp"]]).cast(pl.Datetime("us", "UTC"))[0]
        if explicit_ids:
            d["event_id"] = f"evt_given_{i}"
        data.append(d)
    df = normalize_batch(data)
    if df.height and any(null_entries):  # the hot frame never has null lists; Parquet read back may
        mask = pl.Series((null_entries * df.height)[: df.height])
        df = df.with_columns(entry_ids=pl.when(mask).then(None).otherwise(pl.col("entry_ids")))
    return df


frames = st.builds(_frame, st.lists(row_dicts, max_size=25), st.booleans(),
                   st.lists(st.booleans(), min_size=1, max_size=3))


def eager_events(df: pl.DataFrame) -> list[AuditEvent]:
    """The answer's events as main built them (rows hold the enums' values): every row tuple at once."""
    entries = df["entry_ids"].fill_null([])
    ops = map(tuple(m.value for m in OperationType).__getitem__, df["operation"].to_physical().to_list())
    statuses = map(tuple(m.value for m in EventStatus).__getitem__, df["status"].to_physical().to_list())
    n = df.height
    rows = zip(df["timestamp"].dt.epoch("us").to_list(), repeat(-1, n), repeat("", n), ops,
               df["user_id"].cast(pl.String).to_list(), df["session_id"].to_list(), entries.to_list(),
               df["metadata"].to_list(), statuses, df["error_message"].to_list(), df["duration_ms"].to_list(),
               strict=True)
    return list(map(AuditEvent._from_row, rows, df["event_id"].to_list()))


def same(lazy: AuditEvent, eager: AuditEvent) -> None:
    for name in FIELDS:
        got, want = getattr(lazy, name), getattr(eager, name)
        assert got == want and type(got) is type(want), name
    assert lazy.operation is eager.operation and lazy.status is eager.status
    assert lazy.to_dict() == eager.to_dict() and list(lazy.to_dict()) == list(eager.to_dict())
    assert lazy.model_dump() == eager.model_dump() and lazy.model_dump_json() == eager.model_dump_json()
    assert repr(lazy) == repr(eager) and lazy._repr_html_() == eager._repr_html_()
    assert lazy == eager and hash(lazy) == hash(eager)


@SETTINGS
@given(frames, st.data())
def test_lazy_events_read_as_eager_ones_whatever_is_read_first(df: pl.DataFrame, data: st.DataObject) -> None:
    lazy, eager = frame_to_events(df), eager_events(df)
    assert type(lazy) is list and len(lazy) == len(eager) == df.height
    assert all(type(e) is AuditEvent for e in lazy)
    # Each event's first read picks its path: id alone, a row field, or a whole-event method.
    for ev, want in zip(lazy, eager, strict=True):
        first = data.draw(st.sampled_from([*FIELDS, "hash", "eq", "repr", "to_dict", "pickle"]))
        if first == "hash":
            assert hash(ev) == hash(want)
        elif first == "eq":
            assert ev == want
        elif first == "repr":
            assert repr(ev) == repr(want)
        elif first == "to_dict":
            assert ev.to_dict() == want.to_dict()
        elif first == "pickle":
            assert pickle.loads(pickle.dumps(ev)) == want
        else:
            assert getattr(ev, first) == getattr(want, first)
    for ev, want in zip(lazy, eager, strict=True):
        same(ev, want)
        assert ev._row == want._row and list(map(type, ev._row)) == list(map(type, want._row))  # one layout


@SETTINGS
@given(frames)
def test_lazy_events_copy_pickle_and_go_back_to_the_same_frame(df: pl.DataFrame) -> None:
    lazy = frame_to_events(df)
    for ev, want in zip(frame_to_events(df), eager_events(df), strict=True):  # untouched events too
        back = pickle.loads(pickle.dumps(ev))
        same(back, want)
        same(copy.copy(ev), want)
        same(copy.deepcopy(ev), want)
    if lazy:
        frame = events_to_frame(lazy)
        assert frame.equals(df.with_columns(entry_ids=pl.col("entry_ids").fill_null([])))


def test_an_answer_keeps_its_columns_only_while_needed() -> None:
    df = normalize_batch([{"operation": "store", "user_id": f"u{i}", "entry_ids": [f"e{i}"]} for i in range(5)])
    events = frame_events(df)
    store = events[0]._store
    assert isinstance(store, FrameRows) and all(e._store is store for e in events) and not store.built
    assert store.events is events
    assert events[3].event_id == df["event_id"][3]  # the id alone: every event has its id, no rows built
    assert not store.built and all(e._store is store for e in events)
    assert [object.__getattribute__(e, "_id") for e in events] == df["event_id"].to_list()
    assert events[3].user_id == "u3"  # a row field: every event its row, the frame and events let go
    assert store.built and store._df is None and store.events is None
    assert all(e._store is None for e in events) and events[1].entry_ids == ["e1"]


def test_an_unread_answer_is_freed() -> None:
    import gc  # only here: the collector frees the unread answer's event <-> store cycle
    import weakref

    events = frame_events(normalize_batch([{"operation": "store"} for _ in range(50)]))
    frame = weakref.ref(events[0]._store._df)
    del events
    gc.collect()
    assert frame() is None


def test_unknown_attributes_fail_as_before() -> None:
    df = normalize_batch([{"operation": "store"}])
    for ev in (frame_to_events(df)[0], AuditEvent(operation="store")):
        with pytest.raises(AttributeError, match=r"^'AuditEvent' object has no attribute 'nope'$"):
            ev.nope  # noqa: B018
        assert not hasattr(ev, "_ipython_display_")
        with pytest.raises(AttributeError):
            ev.user_id = "x"  # type: ignore[misc]


def _read_all(events: list[AuditEvent], fields: tuple[str, ...], start: threading.Barrier, out: dict) -> None:
    start.wait()
    out[fields] = [tuple(getattr(e, f) for f in fields) for e in events]


def test_threads_reading_one_answer_see_the_same_events() -> None:
    df = normalize_batch([{"operation": "recall", "user_id": f"u{i % 7}", "metadata": {"i": i},
                           "entry_ids": [f"e{i}"] * (i % 3)} for i in range(3000)])
    eager = eager_events(df)
    reads = [("event_id",), ("user_id", "event_id"), ("metadata",), ("entry_ids", "status")]
    for _ in range(5):
        events = frame_to_events(df)
        got: dict[tuple[str, ...], list] = {}
        start = threading.Barrier(len(reads))
        threads = [threading.Thread(target=_read_all, args=(events, fs, start, got)) for fs in reads]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for fs in reads:
            assert got[fs] == [tuple(getattr(e, f) for f in fs) for e in eager]
        assert events == eager and all(e._store is None for e in events)


def test_query_answers_are_lazy_lists_equal_to_the_logged_events() -> None:
    audit = AuditLogger()
    logged = [audit.log("store", user_id=f"u{i % 3}", entry_ids=[f"e{i}"], metadata={"i": i} if i % 2 else None)
              for i in range(5000)]
    audit.flush()
    answer = audit.query_events(user_id="u1", limit=100)
    assert isinstance(answer, list) and answer[0]._store is not None  # nothing read yet
    # newest first, ties: the later logged first
    want = sorted(reversed([e for e in logged if e.user_id == "u1"]), key=lambda e: e.timestamp_us, reverse=True)
    want = want[:100]
    assert [e.to_dict() for e in answer] == [e.to_dict() for e in want]
    assert answer == want and set(answer) == set(want)
