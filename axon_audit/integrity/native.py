"""The compiled path of the Merkle log (``axon_audit._native.leafhash``, C): each
event's canonical text written and SHA-256-hashed in one pass per event, the
export object written beside it, and batched SHA-256 over fixed-width rows (the
tree's nodes) and over Arrow values; all without the GIL, over two threads.

Python decides every text: each field goes over as Arrow buffers with the kind of
literal it takes (a JSON string, raw text, a timestamp, an array of strings), and
each object as its key literals in order; metadata and durations go over as the
texts `axon_audit.integrity.leaf` and `axon_audit.model.json_text` make for them.
So the encoding stays specified (and tested) in `axon_audit.integrity.leaf`, and
the tests check this path against the polars one, byte for byte.

`AVAILABLE` says whether the extension was built (setup.py builds it when a C
compiler and OpenSSL's headers are there; ``make test`` requires it). Without it
`axon_audit.integrity.leaf` and `axon_audit.integrity.digest` take the polars
path, which gives the same bytes, about 3x slower.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from axon_audit.io.threads import CORES
from axon_audit.model.schema import COLUMNS

__all__ = ["AVAILABLE", "OTLP", "THREADS", "EventBuffers", "field_spec", "otlp_records", "sha256_rows", "sha256_values"]

_native: ModuleType | None
try:
    _native = importlib.import_module("axon_audit._native.leafhash")
except ImportError:  # not built (no compiler or headers at install): the polars path serves
    _native = None

#: Whether the compiled path is there.
AVAILABLE = _native is not None
#: Whether it has the OTLP writer (an extension built before it had one has not: rebuild it).
OTLP = _native is not None and hasattr(_native, "otlp_records")
#: Threads per call unless the caller says: the machine's cores, at most 4.
THREADS = max(1, min(4, CORES))

_STR, _RAW, _TS, _LIST, _DICT = 0, 1, 2, 3, 4
_CANONICAL_ORDER = sorted(COLUMNS)  # ASCII keys: code-unit order is plain order
_OLDEST = pl.CompatLevel.oldest()  # large_string and large_list: 64-bit offsets, no string views
_STRING_COLUMNS = ("error_message", "event_id", "operation", "session_id", "status", "user_id")
_DEFAULTS = {"metadata": b"{}", "export_metadata": b"{}"}


def _column(table: pa.Table, name: str) -> pa.Array:
    col = table.column(name)
    return col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()


def _large(s: pl.Series) -> pa.Array:
    arr = s.to_arrow(compat_level=_OLDEST)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


class EventBuffers:
    """The Arrow buffers of a frame's fields, made once, for `leaves` and `lines`.

    Example:
        >>> from axon_audit.integrity import native
        >>> from axon_audit.model.schema import normalize_batch
        >>> df = normalize_batch([{"operation": "store", "user_id": "u\\n1", "entry_ids": ["a", "b"]}])
        >>> buffers = native.EventBuffers(df, pl.Series(["{}"]), pl.Series(["null"]), export=True)
        >>> text = buffers.lines(0, 1).decode()
        >>> buffers.leaves().shape, text[text.index('"user_id"'):text.index(',"metadata"')]
        ((1, 32), '"user_id":"u\\\\n1","session_id":null,"entry_ids":["a","b"]')
    """

    def __init__(self, df: pl.DataFrame, canonical_metadata: pl.Series, canonical_durations: pl.Series, *,
                 export: bool) -> None:
        """`df` in the frame schema; `canonical_metadata` and `canonical_durations` the RFC 8785
        texts of those two fields (one per event, no nulls), as `axon_audit.integrity.leaf`
        makes them; `export` also prepares the export object's own texts of them."""
        if _native is None:
            raise RuntimeError("axon_audit._native.leafhash was not built")
        self.n = df.height
        # The frame's own buffers as they are (dictionaries stay encoded: C looks the values up).
        table = df.select(COLUMNS).to_arrow(compat_level=_OLDEST)
        self._arrays = {c: _column(table, c) for c in (*_STRING_COLUMNS, "entry_ids", "timestamp")}
        self._arrays["metadata"] = _large(canonical_metadata)
        self._arrays["duration_ms"] = _large(canonical_durations)
        if export:
            duration = pl.struct(pl.col("duration_ms")).struct.json_encode().str.slice(len('{"duration_ms":'))
            self._arrays["export_metadata"] = _column(table, "metadata")
            self._arrays["export_duration"] = _large(df.select(duration.str.strip_suffix("}")).to_series())
        self._names = list(self._arrays)
        index = {name: i for i, name in enumerate(self._names)}

        def members(order: list[str], rename: dict[str, str]) -> tuple[tuple[bytes, int], ...]:
            return tuple(((("{" if i == 0 else ",") + f'"{key}":').encode(), index[rename.get(key, key)])
                         for i, key in enumerate(order))

        self._canonical = members(_CANONICAL_ORDER, {})
        self._export = members(list(COLUMNS), {"metadata": "export_metadata", "duration_ms": "export_duration"}) \
            if export else None

    def _fields(self, start: int, n: int) -> tuple[tuple[Any, ...], ...]:
        out: list[tuple[Any, ...]] = []
        for name in self._names:
            arr = self._arrays[name].slice(start, n)
            if name == "entry_ids":
                child = arr.values  # the whole child array: the list offsets index into it
                cv, co, cd = child.buffers()
                out.append((_LIST, arr.buffers()[0] if arr.null_count else None, arr.buffers()[1],
                            cv if child.null_count else None, co, cd if cd is not None else b"", arr.offset,
                            child.offset))
            elif pa.types.is_dictionary(arr.type):
                d = arr.dictionary.cast(pa.large_string())
                out.append((_DICT, arr.buffers()[0] if arr.null_count else None, arr.buffers()[1],
                            arr.type.index_type.bit_width // 8, d.buffers()[1],
                            d.buffers()[2] if d.buffers()[2] is not None else b"", arr.offset, d.offset, len(d)))
            elif name == "timestamp":
                out.append((_TS, arr.buffers()[0] if arr.null_count else None, arr.buffers()[1], arr.offset))
            else:
                validity, offsets, data = arr.buffers()
                spec = (validity if arr.null_count else None, offsets, data if data is not None else b"", arr.offset)
                out.append((_STR, *spec) if name in _STRING_COLUMNS else (_RAW, *spec, _DEFAULTS.get(name, b"null")))
        return tuple(out)

    def leaves(self, threads: int | None = None) -> np.ndarray:
        """Each event's leaf hash, SHA-256(0x00 || canonical text), as (n, 32) uint8,
        over `threads` threads (default `THREADS`)."""
        out = _native.leaves(self.n, self._fields(0, self.n), self._canonical,  # type: ignore[union-attr]
                             threads or THREADS)
        return np.frombuffer(out, np.uint8).reshape(self.n, 32)

    def objects(self) -> pl.Series:
        """Every event's export object text, as a Series (`axon_audit.io.json_export.event_objects`)."""
        if self.n == 0:
            return pl.Series("export", [], dtype=pl.String)
        # A raw newline never occurs inside a JSON text (control characters are escaped).
        text = self.lines(0, self.n, b"\n").decode()
        return pl.Series("export", [text]).str.split("\n").explode()

    def lines(self, start: int, n: int, sep: bytes = b",\n") -> bytes:
        """The export objects of events ``start .. start + n``, UTF-8, `sep` between them."""
        if self._export is None:
            raise ValueError("these buffers were made with export=False")
        return _native.lines(n, self._fields(start, n), self._export, sep)  # type: ignore[union-attr]


def sha256_rows(rows: np.ndarray, prefix: bytes) -> np.ndarray:
    """SHA-256(prefix || row) of each row of a C-contiguous 2-D uint8 array, as (n, 32) uint8.

    Example:
        >>> import hashlib, numpy as np
        >>> from axon_audit.integrity import native
        >>> out = native.sha256_rows(np.zeros((2, 64), np.uint8), b"\\x01")
        >>> out.shape, out[1].tobytes() == hashlib.sha256(b"\\x01" + bytes(64)).digest()
        ((2, 32), True)
    """
    if _native is None:
        raise RuntimeError("axon_audit._native.leafhash was not built")
    n, width = rows.shape
    if n == 0:
        return np.empty((0, 32), np.uint8)
    out = _native.sha256_rows(np.ascontiguousarray(rows, np.uint8), width, prefix, THREADS)
    return np.frombuffer(out, np.uint8).reshape(n, 32)


def sha256_values(values: pa.Array, prefix: bytes) -> np.ndarray:
    """SHA-256(prefix || value) of each value of a binary or string Arrow array
    (no nulls), as (n, 32) uint8.

    Example:
        >>> import hashlib, pyarrow as pa
        >>> from axon_audit.integrity import native
        >>> native.sha256_values(pa.array(["abc"]), b"\\x00")[0].tobytes() == hashlib.sha256(b"\\x00abc").digest()
        True
    """
    if _native is None:
        raise RuntimeError("axon_audit._native.leafhash was not built")
    if not len(values):
        return np.empty((0, 32), np.uint8)
    flat = values.cast(pa.large_binary())
    _, offsets, data = flat.buffers()
    out = _native.sha256_values(offsets, data if data is not None else b"", flat.offset, len(flat), prefix)
    return np.frombuffer(out, np.uint8).reshape(len(flat), 32)


def field_spec(arr: pa.Array) -> tuple[Any, ...]:
    """The C entry points' description of one Arrow array (oldest compat level: large_string,
    large_list): a string (or a dictionary of them), a list of strings, or 8-byte values
    (timestamps, float64), which `otlp_records` reads by what each member asks."""
    if pa.types.is_dictionary(arr.type):
        d = arr.dictionary.cast(pa.large_string())
        return (_DICT, arr.buffers()[0] if arr.null_count else None, arr.buffers()[1],
                arr.type.index_type.bit_width // 8, d.buffers()[1],
                d.buffers()[2] if d.buffers()[2] is not None else b"", arr.offset, d.offset, len(d))
    if pa.types.is_large_list(arr.type):
        child = arr.values
        cv, co, cd = child.buffers()
        return (_LIST, arr.buffers()[0] if arr.null_count else None, arr.buffers()[1],
                cv if child.null_count else None, co, cd if cd is not None else b"", arr.offset, child.offset)
    if pa.types.is_timestamp(arr.type) or pa.types.is_float64(arr.type) or pa.types.is_int64(arr.type):
        return (_TS, arr.buffers()[0] if arr.null_count else None, arr.buffers()[1], arr.offset)
    validity, offsets, data = arr.buffers()
    return (_STR, validity if arr.null_count else None, offsets, data if data is not None else b"", arr.offset)


def otlp_records(df: pl.DataFrame, members: tuple[tuple[bytes, str, str], ...], ts: str, body: str, severity: str,
                 observed: bytes) -> bytes:
    """The OTLP LogRecords of `df`'s rows, as ScopeLogs ``log_records`` fields (see leafhash.c);
    `members` are (KeyValue key field, column, kind) of the attributes, in order; every column
    of `df` goes over (select the ones named first)."""
    if _native is None or not OTLP:
        raise RuntimeError("axon_audit._native.leafhash was not built with otlp_records")
    table = df.to_arrow(compat_level=_OLDEST)  # the caller selected the columns it passes
    index = {c: i for i, c in enumerate(df.columns)}
    fields = tuple(field_spec(_column(table, c)) for c in df.columns)
    return _native.otlp_records(df.height, fields, tuple((key, index[c]) for key, c, _ in members),
                                "".join(kind for _, _, kind in members).encode(), index[ts], index[body],
                                index[severity], observed)
