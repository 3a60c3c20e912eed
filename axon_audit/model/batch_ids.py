"""A batch's generated event ids as one column, without formatting a string per event.

`log_batch` gives every row that brings no `event_id` the id `log` would make
(`axon_audit.model.ids.make_event_id`): ``evt_`` + the 16 characters of its
time (`id_time_text`) + a 6-character node + an 8-digit sequence, 34 bytes.
The compiled path (``axon_audit._native.ingest``, C) writes them straight
into an Arrow ``string_view`` column (one 34-byte value a row and its 16-byte
view), which polars takes over without a copy: ~3 ns per event where polars'
string kernels took ~175 ns (1 M) to ~500 ns (10 M). Without the extension
(no C compiler at install) the same bytes come from `axon_audit.model.schema`'s
polars expression, which the caller passes as `fallback`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from operator import itemgetter
from types import ModuleType

import numpy as np
import polars as pl
import pyarrow as pa

from axon_audit.model.ids import ID_MAX_US, ID_MIN_US

__all__ = ["AVAILABLE", "NATIVE", "generated_ids", "row_columns", "sequential_ids"]

NATIVE: ModuleType | None
try:
    NATIVE = importlib.import_module("axon_audit._native.ingest")
except ImportError:  # not built: the polars expression (and per-row metadata) serve
    NATIVE = None
_native = NATIVE

# An extension built before row_columns was added (a stale build in place) has none.
_row_columns = getattr(_native, "row_columns", None)

#: Whether the compiled path is there.
AVAILABLE = _native is not None

_ID_LEN = 34
# One Arrow array holds at most this many ids: its views address the data with int32 offsets.
_PIECE = (2**31 - 1) // _ID_LEN


def generated_ids(us: pl.Series, node: str, fallback: Callable[[pl.Series, pl.Series, str], pl.Series],
                  native: bool | None = None) -> pl.Series:
    """The event ids of rows at UTC microseconds `us` (Int64, no nulls, within the
    range ids can sort), row i taking sequence number i, under the 6-character `node`.

    `fallback(us, seq, node)` makes the same column with polars; `native` False forces it.

    Example:
        >>> import polars as pl
        >>> from axon_audit.model.batch_ids import generated_ids
        >>> from axon_audit.model.ids import make_event_id
        >>> from axon_audit.model.schema import polars_ids
        >>> ids = generated_ids(pl.Series([1_736_937_045_123_456, -1]), "a1b2c3", polars_ids)
        >>> ids.to_list() == [make_event_id(1_736_937_045_123_456, 0, "a1b2c3"), make_event_id(-1, 1, "a1b2c3")]
        True
    """
    n = us.len()
    use_native = AVAILABLE if native is None else native and AVAILABLE
    node_bytes = node.encode("ascii")
    if not use_native or n == 0 or len(node_bytes) != 6:
        return fallback(us, pl.int_range(0, n, eager=True), node).alias("event_id")
    assert _native is not None
    times = us.cast(pl.Int64).to_numpy()
    if times.dtype != np.int64 or not times.flags.c_contiguous:
        times = np.ascontiguousarray(times, dtype=np.int64)
    lo, hi = int(times.min()), int(times.max())
    if lo < ID_MIN_US or hi > ID_MAX_US:
        raise ValueError(f"generated_ids: times {lo}..{hi} are outside the range event ids can sort")
    pieces = []
    for start in range(0, n, _PIECE):  # one piece below 63 M rows
        t = times[start:start + _PIECE]
        views = np.empty(len(t) * 16, dtype=np.uint8)
        data = np.empty(len(t) * _ID_LEN, dtype=np.uint8)
        _native.fill(t, start, node_bytes, views, data)
        pieces.append(pa.Array.from_buffers(pa.string_view(), len(t), [None, pa.py_buffer(views),
                                                                        pa.py_buffer(data)]))
    arr = pieces[0] if len(pieces) == 1 else pa.chunked_array(pieces)
    return pl.Series("event_id", arr)


def sequential_ids(us: pl.Series, seq: pl.Series, node: str) -> pl.Series | None:
    """The event ids of logged rows (`make_event_id` of each time, sequence and `node`)
    written by the compiled path, when the sequences run on by one from a first >= 0
    (one logger's flush: ~4 ns per event against ~70 ns for polars' string kernels);
    None otherwise (rows of several threads interleaved, no extension): then the caller
    uses the polars expression.

    Example:
        >>> import polars as pl
        >>> from axon_audit.model.batch_ids import AVAILABLE, sequential_ids
        >>> from axon_audit.model.ids import make_event_id
        >>> ids = sequential_ids(pl.Series([5, 6]), pl.Series([41, 42]), "a1b2c3")
        >>> not AVAILABLE or ids.to_list() == [make_event_id(5, 41, "a1b2c3"), make_event_id(6, 42, "a1b2c3")]
        True
        >>> sequential_ids(pl.Series([5, 6]), pl.Series([42, 41]), "a1b2c3") is None
        True
    """
    n = us.len()
    node_bytes = node.encode("ascii", "replace")
    if _native is None or n == 0 or n > _PIECE or len(node_bytes) != 6 or us.null_count() or seq.null_count():
        return None
    seqs = seq.cast(pl.Int64).to_numpy()
    seq0 = int(seqs[0])
    if seq0 < 0 or int(seqs[-1]) - seq0 != n - 1 or (n > 1 and not bool((np.diff(seqs) == 1).all())):
        return None
    times = np.ascontiguousarray(us.cast(pl.Int64).to_numpy(), dtype=np.int64)
    if int(times.min()) < ID_MIN_US or int(times.max()) > ID_MAX_US:
        return None
    views = np.empty(n * 16, dtype=np.uint8)
    data = np.empty(n * _ID_LEN, dtype=np.uint8)
    _native.fill(times, seq0, node_bytes, views, data)
    arr = pa.Array.from_buffers(pa.string_view(), n, [None, pa.py_buffer(views), pa.py_buffer(data)])
    return pl.Series("event_id", arr)


def row_columns(rows: list[tuple], width: int) -> list[list]:
    """Row tuples by column: one C pass over the rows (the logger's flush), else one
    `map(itemgetter)` pass per column. Never `zip(*rows)`: it made one tracked iterator
    per row, which the collector promoted mid-flush (full collections every few flushes).

    Example:
        >>> from axon_audit.model.batch_ids import row_columns
        >>> row_columns([(1, "a"), (2, None)], 2)
        [[1, 2], ['a', None]]
    """
    if _row_columns is not None and type(rows) is list:
        cols: list[list] | None = _row_columns(rows, width)
        if cols is not None:
            return cols
    return [list(map(itemgetter(i), rows)) for i in range(width)]
