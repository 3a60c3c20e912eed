"""The filter compilers: every filter reaches every backend, a missing visitor fails
loudly, and polars, DuckDB, the pyarrow pushdown (+ polars) and the row compiler
(the small-logger path) select the same events."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime, timedelta, timezone

import duckdb
import orjson
import polars as pl
import pyarrow.dataset as pads
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axon_audit.model.enums import EventStatus, OperationType
from axon_audit.model.schema import frame_to_events, from_arrow, normalize_batch, to_arrow
from axon_audit.model.timestamps import from_us
from axon_audit.query.arrow_compiler import ArrowCompiler
from axon_audit.query.compiler import Compiler
from axon_audit.query.filters import FILTER_NAMES, Filters
from axon_audit.query.polars_compiler import PolarsCompiler
from axon_audit.query.predicates import FIELDS, KINDS
from axon_audit.query.row_compiler import RowCompiler
from axon_audit.query.sql_compiler import SqlCompiler
from axon_audit.workload import generate_events

UTC = timezone.utc
T = datetime(2026, 3, 1, 12, tzinfo=UTC)
COMPILERS = (PolarsCompiler, SqlCompiler, ArrowCompiler, RowCompiler)

# Three events: A matches every sample filter below and each sample leaves out B
# (a day earlier), C (a day later) or both.
THREE = normalize_batch([
    {"event_id": "evt_A", "timestamp": T, "operation": "STORE", "user_id": "u1", "session_id": "s1",
     "entry_ids": ["e1", "e2"], "metadata": {"source": "api", "flag": True, "n": 3}, "status": "FAILURE",
     "error_message": "timeout after 5s", "duration_ms": 50.0},
    {"event_id": "evt_B", "timestamp": T - timedelta(days=1), "operation": "RECALL", "user_id": "u2",
     "session_id": "s2", "entry_ids": ["e3"], "metadata": {"source": "ui", "flag": False, "n": 4},
     "status": "SUCCESS", "error_message": None, "duration_ms": 5.0},
    {"event_id": "evt_C", "timestamp": T + timedelta(days=1), "operation": "FORGET", "user_id": None,
     "session_id": None, "entry_ids": [], "metadata": None, "status": "PARTIAL",
     "error_message": "quota", "duration_ms": 500.0},
])

#: One sample value per `Filters` field (other than limit), as stored after `build`.
FIELD_SAMPLES = {
    "user_ids": ("u1",),
    "session_ids": ("s1", "s9"),
    "operations": (OperationType.STORE,),
    "statuses": (EventStatus.FAILURE, EventStatus.PARTIAL),
    "start_us": int(T.timestamp() * 1_000_000),
    "end_us": int(T.timestamp() * 1_000_000),
    "entry_ids": ("e2", "e9"),
    "event_ids": ("evt_A",),
    "metadata": (("flag", "true"), ("n", "3")),
    "error_contains": "timeout",
    "min_duration_ms": 10.0,
    "max_duration_ms": 100.0,
}

#: One sample value per query keyword (other than limit), as a caller gives it.
KEYWORD_SAMPLES = {
    "user_id": "u1",
    "session_id": ["s1", "s9"],
    "operation": "store",
    "status": ["failure", "partial"],
    "start_time": T,
    "end_time": T,
    "entry_ids": ["e2", "e9"],
    "event_id": "evt_A",
    "metadata": {"source": "api", "flag": True, "n": 3},
    "error_contains": "timeout",
    "min_duration_ms": 10,
    "max_duration_ms": 100,
}


def _polars_ids(df: pl.DataFrame, f: Filters) -> set[str]:
    expr = f.expr()
    return set((df.filter(expr) if expr is not None else df)["event_id"])


def _duckdb_ids(df: pl.DataFrame, f: Filters) -> set[str]:
    where, params = f.sql()
    with duckdb.connect() as con:
        con.register("events", to_arrow(df))
        return {r[0] for r in con.execute(f"SELECT event_id FROM events WHERE {where}", params).fetchall()}


def _arrow_ids(df: pl.DataFrame, f: Filters) -> tuple[set[str], set[str]]:
    """(what the pyarrow pushdown alone keeps, that followed by the exact polars filter)."""
    push = ArrowCompiler().compile(f)
    table = pads.dataset(to_arrow(df)).to_table(filter=push)
    return set(table.column("event_id").to_pylist()), _polars_ids(from_arrow(table), f)


def _row_ids(df: pl.DataFrame, f: Filters) -> set[str]:
    """What the row compiler keeps of the frame's rows, as `AuditEvent` rows (the
    ids come from the frame: these rows were not made by a logger)."""
    events = frame_to_events(df)
    ids = {id(e._row): e.event_id for e in events}
    test = RowCompiler(event_id=lambda row: ids[id(row)]).compile(f)
    return {e.event_id for e in events if test is None or test(e._row)}


def _assert_filters_something(f: Filters) -> None:
    kinds = {p.kind for p in f.predicates()}
    for compiler in COMPILERS:
        compiled = compiler().compile(f)
        if kinds <= set(compiler.left_out):
            assert compiled is None, f"{compiler.__name__} compiled kinds it declares left out"
        else:
            assert compiled is not None, compiler.__name__
            if isinstance(compiled, tuple):  # SQL text: TRUE and FALSE would be "nothing filtered" too
                assert compiled[0] not in ("TRUE", "FALSE") and compiled[1]
    # Filters' own compilers are those backends' ...
    assert f.sql() == SqlCompiler().compile(f)
    assert f.expr().meta.eq(PolarsCompiler().compile(f))
    # ... and each one actually filters, to the same events.
    everything = set(THREE["event_id"])
    by_polars = _polars_ids(THREE, f)
    assert by_polars and by_polars < everything
    assert _duckdb_ids(THREE, f) == by_polars
    assert _row_ids(THREE, f) == by_polars
    pushed, exact = _arrow_ids(THREE, f)
    assert exact == by_polars
    if ArrowCompiler().compile(f) is not None:
        assert by_polars <= pushed < everything
    else:
        assert pushed == everything


def test_the_field_table_covers_every_filter_once():
    names = [f.name for f in fields(Filters) if f.name != "limit"]
    assert sorted(f.name for f in FIELDS) == sorted(names)
    assert sorted(f.keyword for f in FIELDS) == sorted(n for n in FILTER_NAMES if n != "limit")
    assert set(FIELD_SAMPLES) == set(names) and set(KEYWORD_SAMPLES) == set(FILTER_NAMES) - {"limit"}
    assert {f.kind.kind for f in FIELDS} == set(KINDS)


@pytest.mark.parametrize("name", [f.name for f in fields(Filters) if f.name != "limit"])
def test_every_field_is_compiled_by_every_backend(name):
    f = Filters(**{name: FIELD_SAMPLES[name]})
    (field,) = [x for x in FIELDS if x.name == name]
    assert {p.kind for p in f.predicates()} == {field.kind.kind}
    _assert_filters_something(f)


@pytest.mark.parametrize("keyword", [n for n in FILTER_NAMES if n != "limit"])
def test_every_keyword_is_compiled_by_every_backend(keyword):
    _assert_filters_something(Filters.build(**{keyword: KEYWORD_SAMPLES[keyword]}))


def test_limit_is_no_predicate():
    f = Filters.build(limit=5)
    assert list(f.predicates()) == [] and f.expr() is None and f.sql() == ("TRUE", [])
    assert ArrowCompiler().compile(f) is None


def test_every_compiler_handles_every_kind():
    for compiler in COMPILERS:
        assert compiler.missing() == [], compiler.__name__
    assert set(PolarsCompiler.left_out) == set(SqlCompiler.left_out) == set()  # the exact backends


@pytest.mark.parametrize("compiler", COMPILERS, ids=lambda c: c.__name__)
def test_a_missing_visitor_fails_loudly_naming_the_kind(compiler):
    visited = [k for k in KINDS if k not in compiler.left_out]
    assert visited
    for kind in visited:
        gap = type(f"Without_{kind}", (compiler,), {f"visit_{kind}": None})
        assert gap.missing() == [kind]
        field = next(x for x in FIELDS if x.kind.kind == kind)
        f = Filters(**{field.name: FIELD_SAMPLES[field.name]})
        with pytest.raises(NotImplementedError, match=rf"Without_{kind} has no visit_{kind}.*'{kind}'"):
            gap().compile(f)
        # The other kinds still compile: only the gap fails.
        other = next(x for x in FIELDS if x.kind.kind != kind and x.kind.kind in visited)
        assert gap().compile(Filters(**{other.name: FIELD_SAMPLES[other.name]})) is not None


def test_left_out_kinds_must_be_real_and_not_also_visited():
    with pytest.raises(TypeError, match=r"unknown predicate kinds.*'no_such_kind'"):
        type("Bad", (ArrowCompiler,), {"left_out": {"no_such_kind": "?"}})
    with pytest.raises(TypeError, match=r"both visits and leaves out \['one_of'\]"):
        type("Bad", (PolarsCompiler,), {"left_out": {"one_of": "?"}})


def test_base_compiler_without_combine_says_so():
    class Lonely(Compiler[str]):
        def visit_one_of(self, node):
            return node.column

    with pytest.raises(NotImplementedError, match="Lonely has no combine"):
        Lonely().compile(Filters.build(user_id="u1"))


def test_sql_text_holds_no_caller_value():
    def where_of(text: str) -> tuple[str, list]:
        return Filters.build(user_id=[text, "u1"], session_id=text, error_contains=text, entry_ids=[text],
                             metadata={"source": text}, event_id=text).sql()

    nasty = "x'); DROP TABLE events; --"
    where, params = where_of(nasty)
    # The text depends on which filters are set, never on their values.
    assert where == where_of("plain")[0] and "DROP" not in where
    assert where.count("?") == len(params) and params.count(nasty) == 5 and [nasty] in params
    assert _duckdb_ids(THREE, Filters.build(user_id=nasty)) == set()


# ------------------------------------------------------------------ the backends agree

# Rows the generator never makes: null user/session/metadata/duration, a boolean
# and an int in metadata, no entries.
EDGE_ROWS = [
    {"timestamp": T, "operation": "EXPORT", "user_id": None, "session_id": None, "entry_ids": [],
     "metadata": {"source": "api", "flag": True, "n": 3}, "status": "FAILURE",
     "error_message": "Timeout (retry)", "duration_ms": None},
    {"timestamp": T + timedelta(hours=1), "operation": "STORE", "user_id": "user_00000", "metadata": None,
     "status": "SUCCESS", "duration_ms": 0.0},
]


@st.composite
def frames(draw) -> pl.DataFrame:
    n = draw(st.integers(0, 40) | st.integers(8, 40))
    generated = generate_events(n, seed=draw(st.integers(0, 2**16)), start=T - timedelta(hours=6),
                                days=draw(st.sampled_from([0.05, 0.5, 2.0])), n_users=draw(st.integers(1, 6)),
                                failure_rate=0.3, partial_rate=0.1)
    parts = [normalize_batch(generated)] if n else []
    edges = [r for r in EDGE_ROWS if draw(st.booleans())]
    if edges:
        parts.append(normalize_batch(edges))
    df = pl.concat(parts) if parts else normalize_batch([EDGE_ROWS[0]])
    # Generated ids depend on the logger's running sequence: fixed ones keep examples reproducible.
    return df.with_columns(event_id=pl.format("evt_{}", pl.int_range(pl.len()).cast(pl.String).str.zfill(3)))


def _one_or_more(draw, own, pool: list, missing: str | None, anchored: bool):
    """`own` alone or with other present values and a missing one; unless anchored,
    sometimes only the others (maybe none at all)."""
    pool = sorted({v for v in pool if v is not None}) + ([missing] if missing else [])
    extra = draw(st.lists(st.sampled_from(pool), max_size=2)) if pool else []
    if not anchored and draw(st.integers(0, 3)) == 0:
        return extra
    return own if draw(st.booleans()) else [own, *extra]


@st.composite
def filters_for(draw, df: pl.DataFrame) -> tuple[Filters, str | None]:
    """Up to four filters with values taken from one anchor event, so that bounds
    often sit exactly on an event. Anchored filters must select the anchor (its id
    is returned); free ones also draw values that miss it."""
    row = df.row(draw(st.integers(0, df.height - 1)), named=True)
    anchored = draw(st.booleans())
    present = lambda name: df[name].cast(pl.String).unique(maintain_order=True).to_list()
    us = int(row["timestamp"].timestamp() * 1_000_000)
    near = st.sampled_from([0, 0, 1, 3_600_000_000] if anchored else [0, 0, -1, 1, -3_600_000_000, 3_600_000_000])
    slack = st.sampled_from([0.0, 0.0, 0.5] if anchored else [0.0, 0.0, -0.5, 0.5])
    meta = orjson.loads(row["metadata"] or "{}")
    kw: dict = {}
    for name in draw(st.lists(st.sampled_from([n for n in FILTER_NAMES if n != "limit"]), unique=True, max_size=4)):
        own = row.get(name)
        if name in ("user_id", "session_id", "event_id") and own is not None:
            kw[name] = _one_or_more(draw, own, present(name), f"{name}_missing", anchored)
        elif name in ("operation", "status"):
            choices = [v.value.lower() for v in (OperationType if name == "operation" else EventStatus)]
            kw[name] = _one_or_more(draw, own.lower(), choices, None, anchored)
        elif name == "start_time":
            kw[name] = from_us(us - draw(near))
        elif name == "end_time":
            kw[name] = from_us(us + draw(near))
        elif name == "entry_ids" and row["entry_ids"]:
            entries = df["entry_ids"].explode().unique(maintain_order=True).to_list()
            chosen = _one_or_more(draw, draw(st.sampled_from(row["entry_ids"])), entries, "entry_missing", anchored)
            kw[name] = [chosen] if isinstance(chosen, str) else chosen
        elif name == "metadata" and meta:
            key = draw(st.sampled_from(sorted(meta) if anchored else [*sorted(meta), "absent"]))
            # Floats and lists are matched as their JSON text, which both engines must spell alike.
            value = meta.get(key, "api")
            text = value if isinstance(value, (str, bool, int)) else orjson.dumps(value).decode()
            kw[name] = {key: text if anchored or draw(st.booleans()) else draw(st.sampled_from(["api", True, 3]))}
        elif name == "error_contains" and row["error_message"]:
            text = row["error_message"]
            i = draw(st.integers(0, len(text)))
            part = text[i:draw(st.integers(i, len(text)))]
            # contains is case-sensitive: a case-swapped part must not match the anchor.
            kw[name] = part.swapcase() if not anchored and draw(st.booleans()) else part
        elif name == "min_duration_ms" and row["duration_ms"] is not None:
            kw[name] = row["duration_ms"] - draw(slack)
        elif name == "max_duration_ms" and row["duration_ms"] is not None:
            kw[name] = row["duration_ms"] + draw(slack)
    return Filters.build(**kw), row["event_id"] if anchored else None


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_polars_duckdb_arrow_pushdown_and_rows_select_the_same_events(data):
    df = data.draw(frames())
    f, anchor = data.draw(filters_for(df))
    by_polars = _polars_ids(df, f)
    if anchor is not None:
        assert anchor in by_polars  # every filter was drawn to hold for the anchor event
    assert _duckdb_ids(df, f) == by_polars
    assert _row_ids(df, f) == by_polars
    pushed, exact = _arrow_ids(df, f)
    assert by_polars <= pushed  # the pushdown never drops a match ...
    assert exact == by_polars  # ... and the exact filter after it removes the rest
