"""A list of metadata dicts as their stored texts, in one orjson call and one C pass.

`log` stores ``orjson.dumps(metadata)`` of each dict (`axon_audit.model.coerce`).
For a batch, orjson writes the whole list as one JSON array (~100 ns a dict,
against ~240 ns for a call per dict) and ``axon_audit._native.ingest.split_array``
cuts the array at its top-level commas into Arrow string views over the same
bytes: each row's text is byte for byte what orjson writes for that dict alone.

orjson writes some values as something else (an Enum as its value, a UUID as a
string, NaN and infinity as null), which `log` refuses. So the texts are used
only when one C walk (``plain_json``) found nothing but exact str keys and exact
str, int, finite float, bool, None, list, tuple and dict values, and orjson
wrote them all (it refuses a lone surrogate, an int beyond 64 bits, nesting past
255 levels). Otherwise `metadata_texts` returns None and the caller encodes row
by row, which refuses the bad value, naming its row.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import polars as pl
import pyarrow as pa

from axon_audit.model.batch_ids import NATIVE

__all__ = ["metadata_texts"]

# as `log` (coerce.encode_metadata), and subclasses refused instead of written as their base type
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS
_PIECE = 1 << 20  # rows one JSON array holds
_MAX_TEXT = 2**31 - 1  # the most bytes string views (int32 offsets) reach


def _pieces(values: list[Any]) -> list[pa.Array] | None:
    """The texts of `values` as string-view arrays (one, or more when the text would
    pass the views' 2 GiB reach), or None when the fast path does not apply."""
    assert NATIVE is not None
    if not NATIVE.plain_json(values):  # one C walk: exact JSON types, finite floats
        return None
    try:
        text = orjson.dumps(values, option=_OPTIONS)
    except orjson.JSONEncodeError:  # a lone surrogate, a big int, too deep...: named row by row
        return None
    n = len(values)
    if len(text) > _MAX_TEXT:
        if n == 1:
            return None
        first, second = _pieces(values[:n // 2]), _pieces(values[n // 2:])
        return None if first is None or second is None else first + second
    views = np.empty(n * 16, dtype=np.uint8)
    validity = np.zeros((n + 7) // 8, dtype=np.uint8)
    nulls = NATIVE.split_array(text, n, views, validity)
    return [pa.Array.from_buffers(pa.string_view(), n, [pa.py_buffer(validity), pa.py_buffer(views),
                                                         pa.py_buffer(text)], null_count=nulls)]


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
        got = _pieces(values[start:start + _PIECE])
        if got is None:
            return None
        pieces += got
    return pl.Series("metadata", pieces[0] if len(pieces) == 1 else pa.chunked_array(pieces))
