"""A list of metadata dicts as their stored texts, in one orjson call and one C pass.

`log` stores ``orjson.dumps(metadata)`` of each dict (`axon_audit.model.coerce`).
For a batch, orjson writes the whole list as one JSON array (~100 ns a dict,
against ~240 ns for a call per dict) and ``axon_audit._native.ingest.split_array``
cuts the array at its top-level commas into Arrow string views over the same
bytes: each row's text is byte for byte what orjson writes for that dict alone.

orjson writes some values as something else (an Enum as its value, a UUID as a
string, NaN and infinity as null), which `log` refuses. So the texts are used
only when a type scan found nothing but exact str, int, float, bool, None, list,
tuple and dict (orjson refuses everything else here: subclasses are passed
through to no `default`), and as many ``null`` in the text as None values (NaN
and infinity would add some). Otherwise `metadata_texts` returns None and the
caller encodes row by row, which refuses the bad value, naming its row.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

import numpy as np
import orjson
import polars as pl
import pyarrow as pa

from axon_audit.model.batch_ids import NATIVE

__all__ = ["metadata_texts"]

_NONE: type = type(None)
_LEAVES = frozenset({str, int, float, bool, _NONE})
_CONTAINERS = frozenset({dict, list, tuple})
_VALUES = _LEAVES | _CONTAINERS
_TOP = frozenset({dict, _NONE})
# as `log` (coerce.encode_metadata), and subclasses refused instead of written as their base type
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS
_MAX_DEPTH = 255
_PIECE = 1 << 20  # rows a JSON array holds (its text stays far below the views' 2 GiB reach)


def _nones(values: list[Any]) -> int | None:
    """How many None the values hold at every level, or None if some value is not
    of an exact JSON type (or nests deeper than orjson writes).

    A level at a time, each a few C-level passes: the types seen (exact types, so
    a `cls.__instancecheck__` filter picks each kind of container), the Nones
    counted, the containers' values chained into the next level."""
    nones = values.count(None)
    level = list(chain.from_iterable(map(dict.values, filter(None, values))))
    depth = 1
    while level:
        kinds = set(map(type, level))
        if not _VALUES.issuperset(kinds):
            return None
        nones += level.count(None)  # exact builtins only here: no __eq__ of a foreign type runs
        if kinds.isdisjoint(_CONTAINERS):
            break
        depth += 1
        if depth > _MAX_DEPTH:
            return None
        below: list[Any] = []
        if list in kinds:
            below.extend(chain.from_iterable(filter(list.__instancecheck__, level)))
        if tuple in kinds:
            below.extend(chain.from_iterable(filter(tuple.__instancecheck__, level)))
        if dict in kinds:
            below.extend(chain.from_iterable(map(dict.values, filter(dict.__instancecheck__, level))))
        level = below
    return nones


def _piece(values: list[Any]) -> pa.Array | None:
    assert NATIVE is not None
    if not _TOP.issuperset(map(type, values)):
        return None
    nones = _nones(values)
    if nones is None:
        return None
    try:
        text = orjson.dumps(values, option=_OPTIONS)
    except orjson.JSONEncodeError:  # a lone surrogate, a big int, a non-str key...: named row by row
        return None
    if text.count(b"null") != nones:  # NaN or infinity written as null (or "null" in a string)
        return None
    n = len(values)
    views = np.empty(n * 16, dtype=np.uint8)
    validity = np.zeros((n + 7) // 8, dtype=np.uint8)
    nulls = NATIVE.split_array(text, n, views, validity)
    return pa.Array.from_buffers(pa.string_view(), n, [pa.py_buffer(validity), pa.py_buffer(views),
                                                        pa.py_buffer(text)], null_count=nulls)


def metadata_texts(values: list[Any]) -> pl.Series | None:
    """The stored metadata of each value (a dict or None; None for None and `{}`), or
    None when the fast path does not apply (see the module docstring).

    Example:
        >>> from axon_audit.model.metadata_texts import metadata_texts
        >>> from axon_audit.model.coerce import encode_metadata
        >>> rows = [{"a": 1, "b": [True, None]}, None, {}, {"s": "x"}]
        >>> out = metadata_texts(rows)
        >>> out is None or out.to_list() == [encode_metadata(v) for v in rows]
        True
        >>> metadata_texts([{"x": float("nan")}]) is None
        True
    """
    if NATIVE is None or not values:
        return None
    pieces = []
    for start in range(0, len(values), _PIECE):
        arr = _piece(values[start:start + _PIECE])
        if arr is None:
            return None
        pieces.append(arr)
    return pl.Series("metadata", pieces[0] if len(pieces) == 1 else pa.chunked_array(pieces))
