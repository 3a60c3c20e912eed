"""A list of event dicts as typed columns: `log_batch`'s list-of-dicts path.

Every value obeys the rules of `log` (`axon_audit.model.coerce`, whose
functions refuse a bad value here too, naming the row: ``events[3]: ...``). The
Python objects are visited by column in C-level passes: one `map(dict.get)` per
column, type tests as `set(map(type, ...))`, texts and lists handed to polars and
Arrow whole; a per-row Python loop runs only to name the row of a refused value.

Metadata: `log` stores orjson's text of each dict. Here orjson writes the whole
column as one JSON array and ``axon_audit._native.ingest`` cuts it into the rows'
texts (string views over the same bytes), after a type scan made sure every
value is one orjson writes as itself (exact str, int, float, bool, None, list,
tuple, dict: no Enum, UUID, subclass, NaN); anything else, or no compiled
extension, takes `encode_metadata` per row, as before.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from itertools import chain, repeat
from operator import floordiv, itemgetter, sub
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from axon_audit.exceptions import AuditTypeError, AuditValueError
from axon_audit.model.batch_ids import NATIVE
from axon_audit.model.coerce import (
    check_text,
    coerce_duration,
    coerce_entry_ids,
    coerce_operation,
    coerce_status,
    encode_metadata,
)
from axon_audit.model.door import at_dict, timestamp_column
from axon_audit.model.enums import EventStatus, OperationType
from axon_audit.model.metadata_texts import metadata_texts
from axon_audit.model.timestamps import EPOCH, naive_time_rule

__all__ = ["BLOCK", "dicts_to_columns"]

_NONE: type = type(None)
_TEXT: frozenset[type] = frozenset({str, _NONE})
_STR: frozenset[type] = frozenset({str})
# The kinds of value a column holds, as `axon_audit._native.ingest.transpose` reports them (exact types).
K_NONE, K_STR, K_NONASCII, K_FLOAT, K_INT, K_BOOL, K_LIST, K_TUPLE, K_DICT, K_OTHER = (1 << i for i in range(10))
_K_TEXT = K_NONE | K_STR | K_NONASCII


def _only(kind: int | None, allowed: int) -> bool:
    """Does the column hold only values of the `allowed` kinds (False when not known)?"""
    return kind is not None and not kind & ~allowed


def _checked(values: list[Any], ok: frozenset[type], coerce: Callable[[Any], Any]) -> list[Any]:
    """`values` with each one off the fast types replaced by `coerce(value)` (which
    refuses it, naming the row). The type test runs in C over the whole column."""
    if ok.issuperset(map(type, values)):
        return values
    return [v if type(v) in ok else at_dict(i, coerce, v) for i, v in enumerate(values)]


def _view_array(values: list[Any]) -> pa.Array | None:
    """Exact strs (and None) as an Arrow string_view array written in C (~3x cheaper
    than polars reading the list), or None where that path does not apply."""
    got = NATIVE.text_views(values) if NATIVE is not None else None
    if got is None:
        return None
    validity, views, data, nulls = got
    return pa.Array.from_buffers(pa.string_view(), len(values), [pa.py_buffer(validity) if nulls else None,
                                                                 pa.py_buffer(views), pa.py_buffer(data)],
                                 null_count=nulls)


def _text_series(name: str, values: list[Any], kind: int | None = None) -> pl.Series:
    if _only(kind, _K_TEXT) and (arr := _view_array(values)) is not None:
        return pl.Series(name, arr)
    if not _only(kind, _K_TEXT):
        values = _checked(values, _TEXT, lambda v: check_text(v, name))
    try:
        return pl.Series(name, values, dtype=pl.String)
    except UnicodeEncodeError:  # a lone surrogate somewhere: find and name it
        for i, v in enumerate(values):
            at_dict(i, check_text, v, name)
        raise


def _enum_values(values: list[Any], coerce: Callable[[Any], Any], enum: type, kind: int | None = None) -> list[Any]:
    """Canonical names, looked up once per distinct value with `log`'s own coercion."""
    ok = frozenset({str, enum, _NONE})
    if not _only(kind, _K_TEXT) and not ok.issuperset(map(type, values)):
        for i, v in enumerate(values):
            if type(v) not in ok:
                at_dict(i, coerce, v)  # raises, naming the row
    names: dict[Any, Any] = {None: None}
    for v in set(values) - {None}:  # coerce once per distinct spelling; a bad one names its first row
        names[v] = at_dict(values.index(v), coerce, v).value
    return list(map(names.__getitem__, values))


def _entries_series(values: list[Any], kind: int | None = None) -> pl.Series:
    if not _only(kind, K_NONE | K_LIST | K_TUPLE):
        values = _checked(values, frozenset({list, tuple, _NONE}), coerce_entry_ids)
    # Flat values and offsets (pa.array of the nested lists: ~0.5 us a row): one C pass, or a few C-level ones.
    offsets = np.empty(len(values) + 1, dtype=np.int64)
    flat = NATIVE.flatten(values, offsets) if NATIVE is not None else None
    if flat is None:
        if not _STR.issuperset(map(type, chain.from_iterable(filter(None, values)))):  # None inside: not a str
            values = [at_dict(i, coerce_entry_ids, v) if v else v for i, v in enumerate(values)]
        if (kind is None or kind & K_NONE) and values.count(None):
            values = [() if v is None else v for v in values]  # per row only when some row has None (= [])
        flat = list(chain.from_iterable(values))
        offsets[0] = 0
        np.cumsum(np.fromiter(map(len, values), dtype=np.int64, count=len(values)), out=offsets[1:])
    try:
        child = _view_array(flat)
        if child is None:
            child = pl.Series("entry_ids", flat, dtype=pl.String).to_arrow()
    except UnicodeEncodeError:
        for i, v in enumerate(values):
            at_dict(i, coerce_entry_ids, v)
        raise
    return pl.Series("entry_ids", pa.LargeListArray.from_arrays(pa.array(offsets), child))


def _us_of(delta: Any) -> int:
    return int(delta.days * 86_400_000_000 + delta.seconds * 1_000_000 + delta.microseconds)


def _time_series(values: list[Any], naive_time: str) -> pl.Series:
    """A dict column of ISO strings and/or datetimes as Datetime(us, UTC); naive
    ones are read as a column by the naive-time rule (`timestamp_column`)."""
    kinds = set(map(type, values)) - {_NONE}
    if kinds <= {str}:
        return timestamp_column(pl.Series("timestamp", values, dtype=pl.String), naive_time=naive_time)
    if kinds == {datetime} and values.count(None) == 0:
        try:  # aware datetimes: `v - EPOCH` (their own utcoffset) and whole µs, as C-level maps
            aware = list(map(floordiv, map(sub, values, repeat(EPOCH)), repeat(_ONE_US)))
        except TypeError:  # a naive one among them: the rule for naive times, below
            pass
        else:
            return timestamp_column(pl.Series("timestamp", aware, dtype=pl.Int64).cast(pl.Datetime("us", "UTC")))
    us: list[int | None] = [None] * len(values)
    texts: dict[int, str] = {}
    naive: dict[int, int] = {}  # row -> wall-clock microseconds, read as one column below
    for i, v in enumerate(values):  # Python datetimes: a Python conversion each, off the logging path
        if v is None:
            continue
        if isinstance(v, datetime):
            if v.tzinfo is None or v.utcoffset() is None:
                naive[i] = _us_of(v.replace(tzinfo=None) - _WALL_EPOCH)
            else:
                us[i] = _us_of(v - EPOCH)
        elif isinstance(v, str):
            texts[i] = v
        else:
            raise AuditTypeError(f"events[{i}]: timestamp must be a datetime or an ISO 8601 string, "
                                 f"got {type(v).__name__}")
    for rows, col in ((texts, pl.Series("timestamp", list(texts.values()), dtype=pl.String)),
                      (naive, pl.Series("timestamp", list(naive.values()), dtype=pl.Int64).cast(pl.Datetime("us")))):
        if rows:
            parsed = timestamp_column(col, rows=list(rows), naive_time=naive_time)
            for i, t in zip(rows, parsed.dt.epoch("us").to_list(), strict=True):
                us[i] = t
    return timestamp_column(pl.Series("timestamp", us, dtype=pl.Int64).cast(pl.Datetime("us", "UTC")))


_WALL_EPOCH = EPOCH.replace(tzinfo=None)
_ONE_US = timedelta(microseconds=1)


def _metadata_series(values: list[Any]) -> pl.Series:
    """The metadata column: `log()`'s text of each dict (None for None and `{}`)."""
    fast = metadata_texts(values)
    if fast is not None:
        return fast
    # per row: each dict is serialized by log()'s own encoder, which names the row of a bad one
    return pl.Series("metadata", [at_dict(i, encode_metadata, v) for i, v in enumerate(values)], dtype=pl.String)


def dicts_to_columns(items: Sequence[Any], columns: Sequence[str], naive_time: Any = None) -> dict[str, pl.Series]:
    """A list of event dicts as typed columns, every value checked by `log`'s rules.

    Only the columns some dict has are returned (the rest take their defaults);
    naive times follow `naive_time` (`axon_audit.model.timestamps.naive_time_rule`).

    A long list goes in blocks of `BLOCK` dicts, whose objects stay in the CPU's
    caches across the passes over them (measured: ~25 % less time a dict than one
    pass over 200 K); a refused value is then looked for again over the whole
    list, so the error names its row in the batch.

    Example:
        >>> from axon_audit.model.dict_columns import dicts_to_columns
        >>> cols = dicts_to_columns([{"operation": "store", "user_id": "u1"}, {"operation": "RECALL"}],
        ...                         ["operation", "user_id", "metadata"])
        >>> {k: s.to_list() for k, s in cols.items()}
        {'operation': ['store', 'RECALL'], 'user_id': ['u1', None]}
    """
    if type(items) is not list or len(items) <= 2 * BLOCK:
        return _columns_of(items, columns, naive_time)
    times: list[Any] = []  # read as one column at the end: polars' time parsing has a fixed cost per call
    try:
        parts = [_columns_of(items[a:a + BLOCK], columns, naive_time, times) for a in range(0, len(items), BLOCK)]
        if times.count(None) != len(times):
            parts[0]["timestamp"] = _time_series(times, naive_time_rule(naive_time))
            for p in parts[1:]:
                p.pop("timestamp", None)
    except (AuditTypeError, AuditValueError):
        return _columns_of(items, columns, naive_time)  # raises again, naming the row in the whole batch
    out: dict[str, pl.Series] = {}
    if "timestamp" in parts[0]:
        out["timestamp"] = parts[0].pop("timestamp")
    for c in columns:
        if c == "timestamp":
            continue
        got = [p.get(c) for p in parts]
        like = next((s for s in got if s is not None), None)
        if like is None:
            continue
        out[c] = pl.concat([s if s is not None else pl.Series(c, [None] * len(p["operation"]), dtype=like.dtype)
                            for s, p in zip(got, parts, strict=True)])
    return out


BLOCK = 4096


def _columns_of(items: Sequence[Any], columns: Sequence[str], naive_time: Any,
                times: list[Any] | None = None) -> dict[str, pl.Series]:
    """`dicts_to_columns` in one pass; with `times`, the timestamps are appended to it, not read."""
    rule = naive_time_rule(naive_time)
    had = len(times) if times is not None else 0
    got = _transposed(items, columns)
    raw, kinds = got if got is not None else (_transposed_slowly(items, columns), {})
    out: dict[str, pl.Series] = {}
    for c, values in raw.items():
        kind = kinds.get(c)
        if c != "operation" and (kind == K_NONE if kind is not None else values.count(None) == len(values)):
            continue
        if c in ("event_id", "user_id", "session_id", "error_message"):
            out[c] = _text_series(c, values, kind)
        elif c in ("operation", "status") and _only(kind, K_NONE | K_STR):  # ASCII spellings: normalize_batch
            out[c] = _text_series(c, values, kind)  # (enum_column: once per distinct one, naming its row)
        elif c == "operation":
            out[c] = pl.Series(c, _enum_values(values, coerce_operation, OperationType, kind), dtype=pl.String)
        elif c == "status":
            out[c] = pl.Series(c, _enum_values(values, coerce_status, EventStatus, kind), dtype=pl.String)
        elif c == "entry_ids":
            out[c] = _entries_series(values, kind)
        elif c == "metadata":
            out[c] = _metadata_series(values)
        elif c == "duration_ms":
            if not _only(kind, K_NONE | K_FLOAT):
                values = _checked(values, frozenset({float, _NONE}), coerce_duration)
            out[c] = pl.Series(c, values, dtype=pl.Float64)
        elif c == "timestamp":
            if times is None:
                out[c] = _time_series(values, rule)
            else:
                times += values
    if times is not None and len(times) == had:
        times += [None] * len(items)  # no time in this block
    return out


def _transposed(items: Sequence[Any], columns: Sequence[str]) -> tuple[dict[str, list[Any]], dict[str, int]] | None:
    """The dicts' values by column (and, from the compiled path, the kinds of value
    each holds), or None when an item is not a plain dict or a key is unknown
    (`_transposed_slowly` then finds the row and refuses it).

    Each dict is visited once (a pass per column costs a cache miss per dict and
    column): by ``axon_audit._native.ingest.transpose``, or without it, when all
    dicts have the first one's keys, by one `itemgetter` call per dict and `zip`."""
    if type(items) is not list or not items:
        return None
    if NATIVE is not None:
        got = NATIVE.transpose(items, tuple(columns))
        if got is None:
            return None
        cols, kinds = got
        held = {c: (v, k) for c, v, k in zip(columns, cols, kinds, strict=True) if k != K_NONE or c == "operation"}
        return {c: v for c, (v, _) in held.items()}, {c: k for c, (_, k) in held.items()}
    if not {dict}.issuperset(map(type, items)):
        return None
    n = len(items)
    keys = list(items[0])
    if not set(keys).issubset(columns):
        return None
    raw: dict[str, list[Any]] | None = None
    if len(keys) > 1 and {len(keys)}.issuperset(map(len, items)):
        # The row tuples hold no cycles; the cyclic GC's passes over them (triggered by
        # their allocation, over a heap holding the batch) cost 4x the transposition.
        was_enabled = gc.isenabled()
        gc.disable()
        try:  # every dict as long as the first and holding its keys: exactly its keys
            raw = dict(zip(keys, map(list, zip(*map(itemgetter(*keys), items), strict=True)), strict=True))
        except KeyError:
            raw = None
        finally:
            if was_enabled:
                gc.enable()
    if raw is None:
        present = set().union(*items)  # every key of every dict, in C
        if not present.issubset(columns):
            return None
        raw = {c: list(map(dict.get, items, repeat(c))) for c in columns if c in present}
    if "operation" not in raw:
        raw["operation"] = [None] * n
    return {c: raw[c] for c in columns if c in raw}, {}


def _transposed_slowly(items: Sequence[Any], columns: Sequence[str]) -> dict[str, list[Any]]:
    """`_transposed` for any Mappings, row by row: it names the row of a bad item."""
    raw: dict[str, list[Any]] = {c: [] for c in columns}
    known = set(columns)
    for i, item in enumerate(items):  # the Python objects must be visited once: one pass, by column
        if not isinstance(item, Mapping):
            raise AuditTypeError(f"events[{i}] must be a dict, got {type(item).__name__}")
        unknown = item.keys() - known
        if unknown:
            raise AuditValueError(f"events[{i}] has unknown keys: {sorted(map(str, unknown))}")
        for c in columns:
            raw[c].append(item.get(c))
    return raw
