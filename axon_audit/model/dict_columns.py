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
from datetime import datetime
from itertools import chain, repeat
from operator import itemgetter
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from axon_audit.exceptions import AuditTypeError, AuditValueError
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

__all__ = ["dicts_to_columns"]

_NONE: type = type(None)
_TEXT: frozenset[type] = frozenset({str, _NONE})
_STR: frozenset[type] = frozenset({str})
def _checked(values: list[Any], ok: frozenset[type], coerce: Callable[[Any], Any]) -> list[Any]:
    """`values` with each one off the fast types replaced by `coerce(value)` (which
    refuses it, naming the row). The type test runs in C over the whole column."""
    if ok.issuperset(map(type, values)):
        return values
    return [v if type(v) in ok else at_dict(i, coerce, v) for i, v in enumerate(values)]


def _text_series(name: str, values: list[Any]) -> pl.Series:
    values = _checked(values, _TEXT, lambda v: check_text(v, name))
    try:
        return pl.Series(name, values, dtype=pl.String)
    except UnicodeEncodeError:  # a lone surrogate somewhere: find and name it
        for i, v in enumerate(values):
            at_dict(i, check_text, v, name)
        raise


def _enum_values(values: list[Any], coerce: Callable[[Any], Any], enum: type) -> list[Any]:
    """Canonical names, looked up once per distinct value with `log`'s own coercion."""
    ok = frozenset({str, enum, _NONE})
    if not ok.issuperset(map(type, values)):
        for i, v in enumerate(values):
            if type(v) not in ok:
                at_dict(i, coerce, v)  # raises, naming the row
    names: dict[Any, Any] = {None: None}
    for v in set(values) - {None}:  # coerce once per distinct spelling; a bad one names its first row
        names[v] = at_dict(values.index(v), coerce, v).value
    return list(map(names.__getitem__, values))


def _entries_series(values: list[Any]) -> pl.Series:
    values = _checked(values, frozenset({list, tuple, _NONE}), coerce_entry_ids)
    if not _STR.issuperset(map(type, chain.from_iterable(filter(None, values)))):  # None inside: not a str
        values = [at_dict(i, coerce_entry_ids, v) if v else v for i, v in enumerate(values)]
    # Flat values and offsets, each one C-level pass (pa.array of the nested lists: ~0.5 us a row).
    if values.count(None):
        values = [() if v is None else v for v in values]  # per row only when some row has None (= [])
    flat = list(chain.from_iterable(values))
    try:
        child = pl.Series("entry_ids", flat, dtype=pl.String).to_arrow()
    except UnicodeEncodeError:
        for i, v in enumerate(values):
            at_dict(i, coerce_entry_ids, v)
        raise
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, values), dtype=np.int64, count=len(values)), out=offsets[1:])
    return pl.Series("entry_ids", pa.LargeListArray.from_arrays(pa.array(offsets), child))


def _us_of(delta: Any) -> int:
    return int(delta.days * 86_400_000_000 + delta.seconds * 1_000_000 + delta.microseconds)


def _time_series(values: list[Any], naive_time: str) -> pl.Series:
    """A dict column of ISO strings and/or datetimes as Datetime(us, UTC); naive
    ones are read as a column by the naive-time rule (`timestamp_column`)."""
    kinds = set(map(type, values)) - {_NONE}
    if kinds <= {str}:
        return timestamp_column(pl.Series("timestamp", values, dtype=pl.String), naive_time=naive_time)
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
    """
    rule = naive_time_rule(naive_time)
    raw = _transposed(items, columns)
    if raw is None:
        raw = _transposed_slowly(items, columns)
    out: dict[str, pl.Series] = {}
    for c, values in raw.items():
        if c != "operation" and values.count(None) == len(values):  # counted in C
            continue
        if c in ("event_id", "user_id", "session_id", "error_message"):
            out[c] = _text_series(c, values)
        elif c == "operation":
            out[c] = pl.Series(c, _enum_values(values, coerce_operation, OperationType), dtype=pl.String)
        elif c == "status":
            out[c] = pl.Series(c, _enum_values(values, coerce_status, EventStatus), dtype=pl.String)
        elif c == "entry_ids":
            out[c] = _entries_series(values)
        elif c == "metadata":
            out[c] = _metadata_series(values)
        elif c == "duration_ms":
            out[c] = pl.Series(c, _checked(values, frozenset({float, _NONE}), coerce_duration), dtype=pl.Float64)
        elif c == "timestamp":
            out[c] = _time_series(values, rule)
    return out


def _transposed(items: Sequence[Any], columns: Sequence[str]) -> dict[str, list[Any]] | None:
    """The dicts' values by column, or None when an item is not a plain dict or a
    key is unknown (`_transposed_slowly` then finds the row and refuses it).

    Dicts all with the first one's keys (the usual batch) are read row-wise in C:
    one `itemgetter` call per dict, then `zip` transposes; each dict is visited
    once (a pass per column costs a cache miss per dict and column). Otherwise one
    `map(dict.get)` pass per column present."""
    if type(items) is not list or not items or not {dict}.issuperset(map(type, items)):
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
    return {c: raw[c] for c in columns if c in raw}


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
