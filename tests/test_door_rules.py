"""One set of rules at the door: `log` and `log_batch` (a list of dicts, a polars
frame, an Arrow table) accept and refuse the same values, and what they accept
reads back unaltered through memory, the JSON export, the Parquet export, an
opened archive and `verify`."""

from __future__ import annotations

import enum
import json
import math
import tempfile
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import axon_audit
from axon_audit import AuditError, AuditEvent, AuditLogger, AuditTypeError, AuditValueError, OperationType
from axon_audit.model.timestamps import MAX_US, MIN_US, format_us

FIELDS = ("user_id", "session_id", "entry_ids", "metadata", "status", "error_message", "duration_ms")


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    LOW = 1


class Kind(enum.StrEnum):
    A = "a"


class Text(str):
    pass


# --------------------------------------------------------------------------- strategies


def pick(values: list[Any]) -> st.SearchStrategy[Any]:
    """`sampled_from` by index: hypothesis records a str-subclass member (StrEnum) as a
    string choice and then fails to replay it."""
    return st.integers(0, len(values) - 1).map(values.__getitem__)


HOSTILE_TEXT = ["", "\n", "\r\n", "\x00", "\x1b[2J", '"},"x":"', "\u2028\u2029", "null", "NaN", "\ud800", "a\udfffb",
                "[/x]", "🦉", "\ufeff", " STORE "]
texts = st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(st.characters(exclude_categories=()), max_size=12))
BIG_INTS = [2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**400, -(10**30)]
ints = st.one_of(st.sampled_from(BIG_INTS), st.integers(-(2**70), 2**70))
floats = st.one_of(st.sampled_from([-0.0, 0.0, 5e-324, 1e308, 1e16, math.nan, math.inf, -math.inf]), st.floats())
scalars = st.one_of(st.none(), st.booleans(), ints, floats, texts)
odd = pick([Color.RED, Level.LOW, Kind.A, uuid.UUID(int=5), orjson.Fragment(b"1"), b"x", Decimal("1.5"),
                       {1, 2}, datetime(2025, 1, 1), np.float64(1.5), np.int64(3), np.str_("np"), Text("sub")])
json_values = st.recursive(
    st.one_of(scalars, odd),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.tuples(inner),
                            st.dictionaries(texts, inner, max_size=3)),
    max_leaves=6,
)
metadata = st.one_of(st.none(), st.dictionaries(st.one_of(texts, pick([1, Kind.A])), json_values,
                                                max_size=3), pick([[1], "{}", {}]))
text_field = st.one_of(st.none(), texts, pick([5, b"u", ["u"], Kind.A, Color.RED, Text("sub"), np.str_("n")]))
entry_ids = st.one_of(
    st.none(), st.lists(texts, max_size=3), st.tuples(texts),
    pick(["abc", {"a": 1}, {"a"}, ["a", None], [1], [b"x"], [Kind.A], [Text("t")], 5]),
)
durations = st.one_of(st.none(), floats, ints, pick([True, False, "5", Decimal("1"), np.float64(2.5),
                                                                np.int64(3), [1.0]]))
operations = pick(["store", " Recall ", "FORGET", "forget", "nope", "", 3, OperationType.STORE, b"STORE",
                              Kind.A])
statuses = pick(["success", "FAILURE", " partial ", "meh", 1, axon_audit.EventStatus.FAILURE])
calls = st.fixed_dictionaries(
    {"operation": operations},
    optional={"user_id": text_field, "session_id": text_field, "entry_ids": entry_ids, "metadata": metadata,
              "status": statuses, "error_message": text_field, "duration_ms": durations},
)


# --------------------------------------------------------------------------- the three doors


def _by_log(kwargs: dict[str, Any]) -> AuditLogger:
    audit = AuditLogger()
    args = dict(kwargs)
    audit.log(args.pop("operation"), **args)
    return audit


def _by_dicts(kwargs: dict[str, Any]) -> AuditLogger:
    audit = AuditLogger()
    audit.log_batch([kwargs])
    return audit


def _frame_of(kwargs: dict[str, Any]) -> pl.DataFrame | None:
    """The same event as a one-row polars frame with the column types a user would
    build (metadata as JSON text, the export format's form), or None if the values
    have no column form (polars itself refuses them)."""
    cols = []
    for k, v in kwargs.items():
        if not (_plain(v) or type(v) is bytes):
            return None  # polars would build a column of the Enum's or subclass's value: another input
        if k == "metadata" and isinstance(v, str):
            return None  # a frame's text column is JSON text: not the str log() was given
        if k == "metadata" and not _plain(v):
            return None  # JSON text cannot say "Enum" or "UUID": json.dumps would write their values
        if k == "metadata" and isinstance(v, dict):
            try:
                v = json.dumps(v)  # NaN, huge ints and all: the strict reader must refuse what log() refuses
            except (TypeError, ValueError):
                return None
        try:
            dtype = pl.String if isinstance(v, str) else None
            cols.append(pl.Series(k, [v], dtype=dtype, strict=True))
        except Exception:  # noqa: BLE001 - polars' own refusals: no frame to test
            return None
    return pl.DataFrame(cols)


def _plain(v: Any) -> bool:
    if type(v) in (str, int, float, bool) or v is None:
        return True
    if type(v) in (list, tuple):
        return all(map(_plain, v))
    return type(v) is dict and all(type(k) is str and _plain(x) for k, x in v.items())


def _outcome(door: Any, kwargs: dict[str, Any]) -> tuple[str, Any]:
    try:
        audit = door(kwargs)
    except AuditError as exc:
        return "refused", exc
    (event,) = audit.query_events()
    d = event.to_dict()
    del d["event_id"], d["timestamp"]
    return "stored", orjson.dumps(d)  # bytes: -0.0 and 0.0, 1 and 1.0 differ


def _named(exc: Exception, kwargs: dict[str, Any]) -> bool:
    return any(k in str(exc) for k in kwargs)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calls)
def test_log_and_log_batch_accept_and_refuse_the_same_values(kwargs: dict[str, Any]) -> None:
    kind, got = _outcome(_by_log, kwargs)
    kind_b, got_b = _outcome(_by_dicts, kwargs)
    assert kind == kind_b, (kwargs, got, got_b)
    frame = _frame_of(kwargs)
    if kind == "refused":
        assert isinstance(got, (AuditValueError, AuditTypeError)) and _named(got, kwargs), got
        assert _named(got_b, kwargs), got_b
        if frame is not None:
            kind_f, got_f = _outcome(lambda _: _by_dicts_frame(frame), kwargs)
            assert kind_f == "refused" and _named(got_f, kwargs), (kwargs, got_f)
        return
    assert got == got_b, kwargs
    if frame is not None:
        assert _outcome(lambda _: _by_dicts_frame(frame), kwargs) == ("stored", got), kwargs
    # Nothing altered: what was given is what reads back.
    d = orjson.loads(got)
    for k in ("user_id", "session_id", "error_message"):
        if kwargs.get(k) is not None:
            assert d[k] == kwargs[k] and type(d[k]) is str
    if kwargs.get("entry_ids") is not None:
        assert d["entry_ids"] == list(kwargs["entry_ids"])
    if kwargs.get("metadata"):
        assert orjson.dumps(d["metadata"]) == orjson.dumps(kwargs["metadata"])
    if kwargs.get("duration_ms") is not None:
        given_ms = kwargs["duration_ms"]
        assert d["duration_ms"] == given_ms and math.copysign(1, d["duration_ms"]) == math.copysign(1, given_ms)


def _by_dicts_frame(frame: pl.DataFrame) -> AuditLogger:
    audit = AuditLogger()
    audit.log_batch(frame)
    return audit


def test_a_refused_batch_stores_nothing_and_the_logger_goes_on(tmp_path: Path) -> None:
    audit = AuditLogger(auto_export_path=tmp_path / "exp")
    audit.log("store", user_id="before")
    for bad in ([{"operation": "store"}, {"operation": "store", "duration_ms": True}],
                [{"operation": "store"}, {"operation": "store", "timestamp": "10000-01-01T00:00:00Z"}],
                pl.DataFrame({"operation": ["store", "store"], "metadata": ['{"a":1}', '{"a":1,"a":2}']})):
        with pytest.raises(AuditValueError if not isinstance(bad, list) or "timestamp" in bad[1] else AuditTypeError,
                           match=r"events(\[1\]|: row 1)"):
            audit.log_batch(bad)
    assert audit.event_count == 1
    audit.close()
    assert axon_audit.verify(tmp_path / "exp").ok


# --------------------------------------------------------------------------- hostile values round-trip through exports


accepted_calls = calls.filter(lambda kw: _outcome(_by_log, kw)[0] == "stored")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.lists(accepted_calls, min_size=1, max_size=4))
def test_accepted_values_read_back_identical_through_every_export(batch: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "exp"
        audit = AuditLogger(auto_export_path=root)
        logged = []
        for kwargs in batch:
            args = dict(kwargs)
            logged.append(audit.log(args.pop("operation"), **args).to_dict())
        n = audit.log_batch([dict(kw, event_id=f"d{i}") for i, kw in enumerate(batch)])
        frames = [f.with_columns(event_id=pl.lit(f"f{i}")) for i, kw in enumerate(batch)
                  if (f := _frame_of(kw)) is not None]
        for f in frames:
            audit.log_batch(f)
        assert n == len(batch)
        memory = {e.event_id: orjson.dumps(e.to_dict()) for e in audit.query_events()}
        audit.close()
        result = axon_audit.verify(root)
        assert result.ok, result.problems
        archive = {e.event_id: orjson.dumps(e.to_dict()) for e in axon_audit.open_archive(root).query_events()}
        (doc,) = list(root.glob("audit_*.json"))
        from_json = {d["event_id"]: orjson.dumps(d) for d in orjson.loads(doc.read_bytes())["events"]}
        assert len(doc.read_bytes().splitlines()) == len(memory) + 2  # one line per event: no raw newline inside
        parquet = pl.concat([pl.read_parquet(p) for p in (root / "parquet").rglob("*.parquet")])
        assert memory == archive == from_json
        assert parquet["event_id"].sort().to_list() == sorted(memory)
        for d in logged:
            assert orjson.dumps(d) == memory[d["event_id"]]
        for i, d in enumerate(logged):  # the batch's copy: same fields, its own id and time
            copy = orjson.loads(memory[f"d{i}"])
            assert {k: v for k, v in copy.items() if k not in ("event_id", "timestamp")} == \
                {k: v for k, v in d.items() if k not in ("event_id", "timestamp")}
        for row in parquet.iter_rows(named=True):
            d = orjson.loads(memory[row["event_id"]])
            assert (orjson.loads(row["metadata"]) if row["metadata"] else {}) == d["metadata"]
            assert row["user_id"] == d["user_id"] and (row["entry_ids"] or []) == d["entry_ids"]
            assert orjson.dumps(row["duration_ms"]) == orjson.dumps(d["duration_ms"])


# --------------------------------------------------------------------------- timestamps


def _iso(us: int) -> str:
    """The ISO text of `us`, with a year past 9999 (or before 1) where it is outside the range."""
    if MIN_US <= us <= MAX_US:
        return format_us(us)
    year = 1970 + us // 31_556_952_000_000  # mean Gregorian year
    return f"{'+' if year > 0 else '-'}{abs(year):04d}-01-01T00:00:00Z"


def _timestamp_inputs(us: int) -> dict[str, Any]:
    """One instant in every form a batch can bring it."""
    forms: dict[str, Any] = {
        "polars us": pl.Series("timestamp", [us], dtype=pl.Int64).cast(pl.Datetime("us", "UTC")),
        "polars ms": pl.Series("timestamp", [us // 1000], dtype=pl.Int64).cast(pl.Datetime("ms")),
        "arrow s": pa.array([us // 1_000_000], pa.timestamp("s", tz="Europe/Paris")),
        "arrow us": pa.array([us], pa.timestamp("us")),
    }
    if MIN_US <= us <= MAX_US:
        dt = datetime(1, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=us - MIN_US)
        forms["dict datetime"] = dt
        forms["dict iso"] = format_us(us)
        forms["dict iso offset"] = dt.isoformat()
    else:
        forms["dict iso"] = _iso(us)
    return forms


def _log_one(audit: AuditLogger, form: str, value: Any) -> None:
    if form.startswith("dict"):
        audit.log_batch([{"operation": "store", "event_id": "t", "timestamp": value}])
    elif form.startswith("arrow"):
        audit.log_batch(pa.table({"operation": ["STORE"], "event_id": ["t"], "timestamp": value}))
    else:
        audit.log_batch(pl.DataFrame([pl.Series("operation", ["STORE"]), pl.Series("event_id", ["t"]), value]))


EDGES = [MIN_US, MIN_US - 1, MIN_US - 1_000_000, MAX_US, MAX_US + 1, MAX_US + 1_000_000, 0, -1,
         2**62, -(2**62), 4_611_686_018_427_387_904, 253_402_473_599_999_999]


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.sampled_from(EDGES), st.integers(-(2**62), 2**62), st.integers(MIN_US - 10**12, MIN_US + 10**12),
                 st.integers(MAX_US - 10**12, MAX_US + 10**12)))
def test_every_timestamp_form_is_stored_exactly_or_refused_naming_the_row(us: int) -> None:
    for form, value in _timestamp_inputs(us).items():
        unit = {"polars ms": 1000, "arrow s": 1_000_000}.get(form, 1)
        if form == "dict iso offset" or form == "dict datetime":
            unit = 1
        expect = us // unit * unit
        audit = AuditLogger(naive_time="utc")  # the zone-less forms (polars ms, arrow us) as UTC on any host
        if MIN_US <= expect <= MAX_US:
            _log_one(audit, form, value)
            (event,) = audit.query_events()
            assert event.timestamp_us == expect, form
            assert event.timestamp == datetime(1, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=expect - MIN_US)
            assert AuditEvent.from_dict(event.to_dict()).timestamp_us == expect  # the export's ISO text reads back
            audit.get_statistics()
        else:
            with pytest.raises(AuditValueError, match=r"events: row 0: timestamp"):
                _log_one(audit, form, value)
            assert audit.event_count == 0


def test_out_of_range_timestamps_never_reach_the_store_or_the_exports(tmp_path: Path) -> None:
    root = tmp_path / "exp"
    audit = AuditLogger(max_events=10, auto_export_path=root)
    audit.log("store")
    for value in ("+10000-01-01T00:00:00Z", "10000-01-01T00:00:00Z", "148108-07-01T00:00:00Z",
                  "0000-12-31T23:59:59Z", "-0001-01-01T00:00:00Z", "2025-01-01T00:00:00.0000001Z",
                  datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))),
                  datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5)))):
        with pytest.raises(AuditValueError, match=r"events(: row 0|\[0\]).*timestamp|timestamp"):
            audit.log_batch([{"operation": "store", "event_id": "x", "timestamp": value}])
    with pytest.raises(AuditValueError, match="nanoseconds"):
        audit.log_batch(pl.DataFrame({"operation": ["store"], "timestamp": [1]}).with_columns(
            pl.col("timestamp").cast(pl.Datetime("ns"))))
    with pytest.raises(AuditValueError, match="timestamp"):
        AuditEvent("store", timestamp=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))))
    audit.log_batch([{"operation": "store", "event_id": "edge", "timestamp": "9999-12-31T23:59:59.999999Z"}])
    audit.close()
    assert axon_audit.verify(root).ok
    assert {e.event_id for e in axon_audit.open_archive(root).query_events()} >= {"edge"}
    assert audit.get_statistics()["total_events"] == 2  # the whole logger still reads: its whole trail
    assert audit.get_statistics(include_archived=False)["total_events"] == audit.event_count == 0


# --------------------------------------------------------------------------- metadata as JSON text


def test_metadata_text_obeys_the_dict_rules_and_is_stored_as_log_stores_it(tmp_path: Path) -> None:
    audit = AuditLogger(auto_export_path=tmp_path / "exp")
    for text, needle in [('{"a":1,"a":2}', "key 'a' twice"), ('{"a":{"b":1,"b":1}}', "key 'b' twice"),
                         ('{"a":123456789012345678901234567890}', "beyond 64 bits"),
                         ('{"a":NaN}', "NaN"), ('{"a":Infinity}', "Infinity"), ('{"a":1e400}', "finite"),
                         ('[1]', "JSON object"), ('{"a":1} {"b":2}', "JSON object"), ('"x"', "JSON object"),
                         ('{"a":"\\ud800"}', "surrogate"), ("{'a':1}", "JSON object")]:
        with pytest.raises(AuditValueError, match="events: row 0: metadata") as info:
            audit.log_batch(pl.DataFrame({"operation": ["store"], "metadata": [text]}))
        assert needle in str(info.value), (text, info.value)
    assert audit.event_count == 0
    spaced = '{ "z" : 1 ,\n  "a" : [ 1.0, "x\\ny", {"k": null} ],\r\n "u": "\\u00e9" }'
    audit.log_batch(pl.DataFrame({"operation": ["store", "store"], "metadata": [spaced, " {\n} "]}))
    by_log = audit.log("store", metadata={"z": 1, "a": [1.0, "x\ny", {"k": None}], "u": "é"})
    stored = [e._row[7] for e in audit.query_events()]
    assert stored[2] == by_log._row[7] == '{"z":1,"a":[1.0,"x\\ny",{"k":null}],"u":"é"}'  # same compact text
    assert stored[1] is None  # {} is no metadata, as log(metadata={}) stores
    audit.close()
    doc = next((tmp_path / "exp").glob("audit_*.json")).read_bytes()
    assert len(doc.splitlines()) == 3 + 2  # one line per event
    assert axon_audit.verify(tmp_path / "exp").ok
    sql = axon_audit.open_archive(tmp_path / "exp").sql(
        "SELECT metadata->>'$.z' AS z FROM events WHERE metadata IS NOT NULL")
    assert sorted(sql["z"].to_list()) == ["1", "1"]


def test_struct_metadata_columns_follow_the_same_rules() -> None:
    audit = AuditLogger()
    audit.log_batch(pl.DataFrame({"operation": ["store"], "metadata": [{"a": 1, "b": "x"}]}))
    assert audit.query_events()[0].metadata == {"a": 1, "b": "x"}
    with pytest.raises(AuditValueError, match="metadata"):
        audit.log_batch(pl.DataFrame({"operation": ["store"], "metadata": [{"a": math.nan}]}))


# --------------------------------------------------------------------------- event ids


def test_event_ids_within_a_batch_must_be_distinct() -> None:
    audit = AuditLogger()
    for batch in ([{"operation": "store", "event_id": "x"}, {"operation": "store", "event_id": "x"}],
                  pl.DataFrame({"operation": ["store"] * 3, "event_id": ["a", "b", "a"]})):
        with pytest.raises(AuditValueError, match="occurs more than once"):
            audit.log_batch(batch)
    with pytest.raises(AuditValueError, match="must not be empty"):
        audit.log_batch([{"operation": "store", "event_id": ""}])
    assert audit.event_count == 0


def test_an_event_id_already_held_is_refused_in_memory_and_in_the_export_folder(tmp_path: Path) -> None:
    root = tmp_path / "exp"
    audit = AuditLogger(max_events=10, auto_export_path=root)
    first = audit.log("store")
    audit.log_batch([{"operation": "store", "event_id": "mine"}])
    for reused in ("mine", first.event_id):
        with pytest.raises(AuditValueError, match=f"event_id '{reused}' is already logged"):
            audit.log_batch(pl.DataFrame({"operation": ["store", "store"], "event_id": ["new", reused]}))
    audit.log_batch([{"operation": "store"} for _ in range(20)])  # rotates: both now only in the folder
    audit.flush()
    assert audit.query_events(event_id=["mine"], include_archived=False) == []
    assert [e.event_id for e in audit.query_events(event_id=["mine"])] == ["mine"]  # the default: the trail
    with pytest.raises(AuditValueError, match="'mine' is already logged"):
        audit.log_batch([{"operation": "store", "event_id": "mine"}])
    audit.close()
    again = AuditLogger(auto_export_path=root)  # a new logger on the same folder
    with pytest.raises(AuditValueError, match=f"'{first.event_id}' is already logged"):
        again.log_batch([{"operation": "store", "event_id": first.event_id}])
    assert again.log_batch([{"operation": "store", "event_id": "fresh"}]) == 1
    again.close()
    assert axon_audit.verify(root).ok
    ids = [e.event_id for e in axon_audit.open_archive(root).query_events()]
    assert len(ids) == len(set(ids)) == 1 + 1 + 20 + 1  # nothing refused was stored


def test_only_batches_that_bring_ids_pay_for_the_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from axon_audit.write.batch import BatchIntake  # the class whose lookup is counted

    looked_up: list[int] = []
    real = BatchIntake.known_id
    monkeypatch.setattr(BatchIntake, "known_id", lambda self, ids: looked_up.append(ids.len()) or real(self, ids))
    audit = AuditLogger(auto_export_path=tmp_path / "exp")
    audit.log_batch([{"operation": "store"}] * 5)
    audit.log_batch(pl.DataFrame({"operation": ["store"] * 3, "event_id": [None, None, None]},
                                 schema={"operation": pl.String, "event_id": pl.String}))
    assert looked_up == []
    audit.log_batch(pl.DataFrame({"operation": ["store"] * 3, "event_id": ["a", None, "b"]}))
    assert looked_up == [2]


# --------------------------------------------------------------------------- log() itself


@pytest.mark.parametrize("kwargs,error,needle", [
    (dict(entry_ids={"a": 1}), AuditTypeError, "entry_ids must be a list of str, got dict"),
    (dict(entry_ids={"a", "b"}), AuditTypeError, "entry_ids must be a list of str, got set"),
    (dict(entry_ids=[Kind.A]), AuditTypeError, "entry_ids[0]"),
    (dict(duration_ms=10**400), AuditValueError, "duration_ms"),
    (dict(duration_ms=2**53 + 1), AuditValueError, "duration_ms"),
    (dict(duration_ms=Decimal("1.5")), AuditTypeError, "duration_ms"),
    (dict(duration_ms=np.bool_(True)), AuditTypeError, "duration_ms"),
    (dict(metadata={"c": Color.RED}), AuditValueError, "metadata['c'] is an Enum member"),
    (dict(metadata={"c": Level.LOW}), AuditValueError, "metadata['c'] is an Enum member"),
    (dict(metadata={"c": [Kind.A]}), AuditValueError, "metadata['c'][0] is an Enum member"),
    (dict(metadata={"u": uuid.UUID(int=1)}), AuditValueError, "metadata['u'] has type uuid.UUID"),
    (dict(metadata={"f": orjson.Fragment(b'{"x":1}')}), AuditValueError, "metadata['f'] has type orjson.Fragment"),
    (dict(metadata={"n": np.float64(1.5)}), AuditValueError, "metadata"),
    (dict(metadata={"b": True, "n": math.nan}), AuditValueError, "metadata['n'] is not a finite number"),
    (dict(user_id=Kind.A), AuditTypeError, "user_id"),
    (dict(user_id=Color.RED), AuditTypeError, "user_id"),
])
def test_log_refuses_by_name(kwargs: dict[str, Any], error: type, needle: str) -> None:
    audit = AuditLogger()
    with pytest.raises(error) as info:
        audit.log("store", **kwargs)
    assert needle in str(info.value) and isinstance(info.value, AuditError)
    assert audit.event_count == 0


def test_coercions_that_are_kept_round_trip_exactly() -> None:
    audit = AuditLogger()
    e = audit.log("store", user_id=Text("sub"), session_id=np.str_("np"), entry_ids=("a", Text("b")),
                  metadata={"t": (1, 2), "s": Text("x"), "b": True, "z": -0.0, "big": 2**64 - 1, "none": None},
                  duration_ms=np.float64(2.5))
    (stored,) = audit.query_events()
    assert stored == e
    assert type(stored.user_id) is str and stored.user_id == "sub" and stored.session_id == "np"
    assert stored.entry_ids == ["a", "b"]
    assert orjson.dumps(stored.metadata) == (
        b'{"t":[1,2],"s":"x","b":true,"z":-0.0,"big":18446744073709551615,"none":null}')
    assert stored.metadata["b"] is True and stored.duration_ms == 2.5
    assert math.copysign(1, audit.log("store", duration_ms=-0.0).duration_ms) == -1
    assert audit.log("store", duration_ms=np.int64(3)).duration_ms == 3.0
    assert audit.log("store", duration_ms=np.float32(0.1)).duration_ms == float(np.float32(0.1))


def test_a_batch_of_audit_events_gets_the_same_id_checks() -> None:
    audit = AuditLogger()
    logged = audit.log("store", user_id="u")
    made = AuditEvent("recall", event_id="made", timestamp="2025-01-15T10:30:45Z")
    with pytest.raises(AuditValueError, match="occurs more than once"):
        audit.log_batch([made, made])
    with pytest.raises(AuditValueError, match=f"'{logged.event_id}' is already logged"):
        audit.log_batch([made, logged])
    other = AuditLogger()
    assert other.log_batch([made, logged]) == 2  # a copy into another logger keeps ids and times
    assert {e.event_id: e for e in other.query_events()} == {"made": made, logged.event_id: logged}
    assert audit.event_count == 1


class _Level(enum.IntEnum):
    HIGH = 3


@pytest.mark.parametrize(("value", "stored"), [
    (np.float64(0.5), {"x": 0.5}), (_Level.HIGH, {"x": 3}), (float("inf"), {}), (2**70, {"x_bits": 71}),
    (True, {"x": True}), (-(2**63), {"x": -(2**63)}),
])
def test_audited_summaries_are_metadata_the_door_accepts(value: Any, stored: dict[str, Any]) -> None:
    # The summary of an argument the metadata rules refuse failed the call after it ran, unaudited.
    audit = AuditLogger()
    ran = []

    @axon_audit.audited("store", audit_logger=audit)
    def call(x: Any) -> str:
        ran.append(x)
        return "done"

    assert call(value) == "done" and len(ran) == 1
    (event,) = audit.query_events()
    assert {k: v for k, v in event.metadata.items() if k.startswith("x")} == stored


def test_a_null_inside_a_frames_entry_ids_is_refused_naming_the_row() -> None:
    audit = AuditLogger()
    frame = pl.DataFrame({"operation": ["STORE"] * 3, "entry_ids": [["a"], [], ["b", None]]})
    with pytest.raises(AuditValueError, match=r"^events: row 2: entry_ids holds a null"):
        audit.log_batch(frame)
    assert audit.event_count == 0
    assert audit.log_batch(pl.DataFrame({"operation": ["STORE"] * 3, "entry_ids": [["a"], [], None]})) == 3
    assert [e.entry_ids for e in sorted(audit.query_events(), key=lambda e: e.event_id)] == [["a"], [], []]
