"""A sealed chunk's text stored once per distinct value: `compact`.

Polars keeps a string column as 16-byte views, and a value longer than 12 bytes
as a copy of its bytes in a data buffer. Built row by row (`log_event`'s flush)
or read from offset-based Arrow (`log_batch`), every row holds its own copy,
and Arrow input may carry the bytes of its null slots too (Arrow allows a null
to keep data): a 131 072-event chunk of the benchmark's workload held 419 B per
event for `metadata` whose distinct texts are 2 020. `compact` rewrites such a
column as a gather from its distinct values: the same views, one copy of each
distinct text (the data buffer is shared by every row that holds it), about 16 B
per event. `entry_ids` (a list of strings) gets the same for its items.

Run by the background sealer on a full chunk (`store.hot.Chunk.seal`), off the
logging path: ~25 ms per chunk of that workload, mostly in Arrow's hash kernel
and polars' gather, without the GIL. The values, their order, nulls and the
dtypes stay as they were; `compact` checks that they do and keeps the frame it
was given when they do not (an event is never altered to save memory).
"""

from __future__ import annotations

import logging

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["compact"]

log = logging.getLogger("axon_audit")

_NEWEST = pl.CompatLevel.newest()
_ENTRIES = pl.List(pl.String())


def _one_array(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        return col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
    return col


#: A column whose data buffers hold at most this many bytes per value is left as it
#: is: its texts are short (inline in their views) or already shared (a gather from
#: distinct values, as `log_batch` of a polars frame makes the metadata), so a rewrite
#: would cost ~10-40 ns a value for nothing.
COMPACT_ENOUGH = 4


def _loose(arr: pa.Array) -> bool:
    """Do `arr`'s (string views') data buffers hold more than `COMPACT_ENOUGH` bytes a value?"""
    held = sum(b.size for b in arr.buffers()[2:] if b is not None)
    return held > COMPACT_ENOUGH * len(arr)


def _shared(s: pl.Series) -> pl.Series:
    """`s` (String) as a gather from its distinct values."""
    arr = _one_array(s.to_arrow(compat_level=_NEWEST))
    if not _loose(arr):
        return s
    encoded = _one_array(pc.dictionary_encode(arr))
    values = pl.Series(s.name, encoded.dictionary)
    return values.gather(pl.Series(encoded.indices)).alias(s.name)


def _shared_items(s: pl.Series) -> pl.Series:
    """`s` (List of String) with its items as a gather from their distinct values."""
    lists = _one_array(s.to_arrow(compat_level=_NEWEST))
    start, end = lists.offsets[0].as_py(), lists.offsets[-1].as_py()
    items = pl.Series("items", lists.values.slice(start, end - start))
    kept = _shared(items)
    if kept is items:  # the items are compact already
        return s
    shared = kept.to_arrow(compat_level=_NEWEST)
    offsets = pc.subtract(lists.offsets, pa.scalar(start, lists.offsets.type))
    rebuilt = type(lists).from_arrays(offsets, _one_array(shared), mask=lists.is_null() if lists.null_count else None)
    if not rebuilt.equals(lists):  # Arrow's check: polars compares lists ~20x slower
        raise ValueError("the rebuilt lists differ")
    return pl.Series(s.name, rebuilt)


def compact(df: pl.DataFrame, unique: tuple[str, ...] = ("event_id",)) -> pl.DataFrame:
    """`df` with each String column, and each list-of-String column's items,
    stored once per distinct value; `df` itself if nothing changed or a check
    failed. Columns named in `unique` hold distinct values: nothing to share, so
    they are kept as they are. (A chunk cut from a bigger batch keeps its ids as
    views into the batch's buffer, shared with the batch's other chunks: copying
    them would cost ~65 ns per event, as much again as the rest.)

    Example:
        >>> import polars as pl
        >>> from axon_audit.store.compact import compact
        >>> df = pl.DataFrame({"metadata": ['{"source": "api", "n": 1}'] * 1000,
        ...                    "entry_ids": [["entry_000000001", "entry_000000002"]] * 1000})
        >>> small = compact(df)
        >>> small.equals(df)
        True
        >>> def data_bytes(frame):  # the bytes of the strings' data buffers
        ...     arrays = [c.chunks[0] for c in frame.to_arrow(compat_level=pl.CompatLevel.newest()).columns]
        ...     arrays = [a.values if hasattr(a, "values") else a for a in arrays]
        ...     return sum(b.size for a in arrays for b in a.buffers()[2:] if b is not None)
        >>> data_bytes(df) > 50_000, data_bytes(small) < 1_000
        (True, True)
    """
    out, changed = [], False
    for s in df.iter_columns():
        try:
            if s.dtype == pl.String:
                new = _shared(s) if s.name not in unique else s
            elif s.dtype == _ENTRIES:
                new = _shared_items(s)
            else:
                new = s
        except (pa.ArrowException, pl.exceptions.PolarsError, ValueError, TypeError) as exc:
            log.warning("axon_audit: column %s kept as it was (compacting it failed: %s: %s)",
                        s.name, type(exc).__name__, exc)
            new = s
        if new is not s and (new.dtype != s.dtype or (new.dtype == pl.String and not new.equals(s, null_equal=True))):
            log.error("axon_audit: compacting column %s changed its values; kept as it was", s.name)
            new = s
        changed |= new is not s
        out.append(new)
    return pl.DataFrame(out) if changed else df
