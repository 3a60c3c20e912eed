"""SHA-256 of many byte strings at once, each after a fixed prefix: the one
hashing primitive of the Merkle log (`leaf` prefixes 0x00, `merkle` 0x01).

With the compiled path (`axon_audit.integrity.native`) both calls run in C over
the whole batch, OpenSSL's SHA-256 without the GIL. Without it:

Python has no batched SHA-256, and hashlib holds the GIL for inputs under 2 KiB:
one call per event costs ~0.5 us in a loop on one core (0.66 s for 1 M event
texts of ~260 bytes, measured), and the logging thread waits meanwhile. So large
batches go to polars-hash's ``sha2_256`` (Rust, in polars' thread pool, the GIL
released): 0.38-0.48 s for the same 1 M on 2 cores, 0.11 s for 500 K 64-byte
tree nodes. It returns hex text, decoded here with one `binascii` call over the
whole buffer (0.03 s per 1 M). Small batches stay on hashlib (no plugin call
overhead); the tests check that both give the same digests.

DuckDB's ``sha256`` was tried too (0.49 s per 1 M texts) and removed: a DuckDB
connection kept alive in a background thread made a later ``subprocess`` with
``preexec_fn`` segfault in the child (pyspark's gateway launch in the tests).
"""

from __future__ import annotations

import binascii
import hashlib
from itertools import pairwise

import numpy as np
import polars as pl
import polars_hash  # noqa: F401 - registers the `chash` expression namespace
import pyarrow as pa

from axon_audit.integrity import native

__all__ = ["BATCH_MIN", "hex_digests", "sha256_rows", "sha256_values"]

#: Below this many values hashlib is quicker than a polars plugin call (measured: ~0.1 ms overhead).
BATCH_MIN = 512


def _hashlib_hashes(values: pa.Array, prefix: bytes) -> np.ndarray:
    if not len(values):
        return np.empty((0, 32), np.uint8)
    flat = values.cast(pa.large_binary())  # strings as their UTF-8 bytes; one buffer and its offsets
    offsets = np.frombuffer(flat.buffers()[1], np.int64, len(flat) + 1, flat.offset * 8).tolist()
    data = memoryview(flat.buffers()[2] or b"")
    copy = hashlib.sha256(prefix).copy
    digests = []
    for start, end in pairwise(offsets):
        h = copy()
        h.update(data[start:end])
        digests.append(h.digest())
    return np.frombuffer(b"".join(digests), np.uint8).reshape(-1, 32)


def _polars_hashes(values: pa.Array, prefix: bytes) -> np.ndarray:
    binary = _is_binary(values)
    col = pl.Series("v", values.cast(pa.large_binary() if binary else pa.large_string()))
    expr = pl.col("v")
    if prefix:
        expr = (pl.lit(prefix) + expr) if binary else pl.concat_str(pl.lit(prefix.decode("latin-1")), expr)
    # A lazy query: the engine splits the rows over the cores (half the wall time of an eager select).
    hexes = col.to_frame().lazy().select(expr.chash.sha2_256()).collect()  # type: ignore[attr-defined]
    return hex_digests(hexes.to_series())


def hex_digests(hexes: pl.Series) -> np.ndarray:
    """polars-hash's hex SHA-256 texts as an (n, 32) uint8 array: one decode of the
    whole buffer (every value is 64 hex digits, so the buffer is the digests in order).

    Example:
        >>> import hashlib, polars as pl
        >>> from axon_audit.integrity.digest import hex_digests
        >>> hex_digests(pl.Series([hashlib.sha256(b"a").hexdigest()]))[0].tobytes() == hashlib.sha256(b"a").digest()
        True
    """
    n = len(hexes)
    arr = hexes.to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.large_string())
    if n == 0:
        return np.empty((0, 32), np.uint8)
    start = int(np.frombuffer(arr.buffers()[1], np.int64, 1, arr.offset * 8)[0])
    data = memoryview(arr.buffers()[2])[start:start + 64 * n]
    return np.frombuffer(binascii.a2b_hex(data), np.uint8).reshape(n, 32)


def _hashes(values: pa.Array, prefix: bytes) -> np.ndarray:
    if native.AVAILABLE:
        return native.sha256_values(values, prefix)
    if len(values) < BATCH_MIN or (prefix and not (prefix.isascii() or _is_binary(values))):
        return _hashlib_hashes(values, prefix)
    return _polars_hashes(values, prefix)


def _is_binary(values: pa.Array) -> bool:
    return pa.types.is_binary(values.type) or pa.types.is_large_binary(values.type)


def sha256_values(values: pa.Array, prefix: bytes = b"") -> np.ndarray:
    """SHA-256(prefix || value) of each value of a string or binary Arrow array
    (strings hash as their UTF-8 bytes), as an (n, 32) uint8 array. No nulls.

    Example:
        >>> import hashlib, pyarrow as pa
        >>> from axon_audit.integrity.digest import sha256_values
        >>> out = sha256_values(pa.array(["", "abc"]), b"\\x00")
        >>> out.shape, out[1].tobytes() == hashlib.sha256(b"\\x00abc").digest()
        ((2, 32), True)
    """
    if values.null_count:
        raise ValueError("cannot hash null values")
    return _hashes(values, prefix)


def sha256_rows(rows: np.ndarray, prefix: bytes = b"") -> np.ndarray:
    """SHA-256(prefix || row) of each row of a 2-D uint8 array, as (n, 32) uint8.

    Example:
        >>> import hashlib, numpy as np
        >>> from axon_audit.integrity.digest import sha256_rows
        >>> rows = np.zeros((3, 64), np.uint8)
        >>> sha256_rows(rows, b"\\x01")[2].tobytes() == hashlib.sha256(b"\\x01" + bytes(64)).digest()
        True
    """
    n, width = rows.shape
    if native.AVAILABLE:
        return native.sha256_rows(rows, prefix)
    if prefix:  # the prefix written into each row: one contiguous buffer, no concatenation per value
        rows = np.concatenate([np.broadcast_to(np.frombuffer(prefix, np.uint8), (n, len(prefix))), rows], axis=1)
        width += len(prefix)
    rows = np.ascontiguousarray(rows, dtype=np.uint8)
    # The rows as one binary column over the same buffer: no copy per row.
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
    column = pa.LargeBinaryArray.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(rows)])
    return _hashes(column, b"")
