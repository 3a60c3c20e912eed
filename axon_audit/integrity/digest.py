"""SHA-256 of many byte strings at once, each after a fixed prefix: the one
hashing primitive of the Merkle log (`leaf` prefixes 0x00, `merkle` 0x01).

Python has no batched SHA-256. hashlib costs ~0.5 us per call in a loop on
one core (0.66 s for 1 M event texts of ~260 bytes here, measured); DuckDB's
`sha256` runs over an Arrow column in C++ without the GIL, but its software
SHA-256 is slower per core (1.2 s for the same texts on one thread). A large
batch is therefore split: DuckDB hashes the head in a worker thread while
hashlib hashes the tail, so both cores work (0.49 s for the same 1 M). Below
`DUCKDB_MIN_ROWS` a query's fixed cost outweighs that and hashlib does it all.
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import duckdb
import numpy as np
import pyarrow as pa

__all__ = ["DUCKDB_MIN_ROWS", "sha256_rows", "sha256_values"]

#: From this many values on, part of a batch goes to DuckDB (hashlib was as fast below ~50 000, measured).
DUCKDB_MIN_ROWS = 50_000
# DuckDB's share of a split batch, so both halves end together: its per-core speed relative to hashlib's
# (measured: ~0.55x for event texts, ~1x for 65-byte node inputs, where hashlib's per-call cost dominates).
_TEXT_SHARE = 0.36
_ROW_SHARE = 0.45

_local = threading.local()  # a DuckDB connection is not safe to share between threads
_worker: ThreadPoolExecutor | None = None
_worker_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _worker
    with _worker_lock:
        if _worker is None:
            # One long-lived worker keeps one connection; callers from several threads queue on it.
            _worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="axon-sha256")
        return _worker


def _connection() -> duckdb.DuckDBPyConnection:
    con = getattr(_local, "con", None)
    if con is None:
        con = _local.con = duckdb.connect(":memory:")
        con.execute("SET preserve_insertion_order = true")  # row i of the result is value i's hash
    return con


def _blob_literal(prefix: bytes) -> str:
    return "'" + "".join(f"\\x{b:02x}" for b in prefix) + "'::BLOB"


def _duckdb_hashes(values: pa.Array, prefix: bytes) -> np.ndarray:
    # encode() takes a string's UTF-8 bytes as they are; a ::BLOB cast would read "\x41" escapes in the text.
    textual = pa.types.is_string(values.type) or pa.types.is_large_string(values.type) \
        or pa.types.is_string_view(values.type)
    con = _connection()
    con.register("_axon_hash_input", pa.table({"v": values}))
    try:
        table = con.sql(f"SELECT unhex(sha256({_blob_literal(prefix)} || {'encode(v)' if textual else 'v'})) AS h "
                        "FROM _axon_hash_input").to_arrow_table()
    finally:
        con.unregister("_axon_hash_input")
    hashes = table.column(0).combine_chunks().cast(pa.binary(32))
    return np.frombuffer(hashes.buffers()[1], np.uint8, len(hashes) * 32, hashes.offset * 32).reshape(-1, 32)


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


def _split(values: pa.Array, prefix: bytes, share: float) -> np.ndarray:
    n = len(values)
    if n < DUCKDB_MIN_ROWS:
        return _hashlib_hashes(values, prefix)
    k = int(n * share)
    head = _pool().submit(_duckdb_hashes, values.slice(0, k), prefix)
    try:
        tail = _hashlib_hashes(values.slice(k), prefix)
    finally:
        done = head.result()  # waited for even when the tail failed: the worker must not hold our arrays
    return np.concatenate([done, tail])


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
    return _split(values, prefix, _TEXT_SHARE)


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
    rows = np.ascontiguousarray(rows, dtype=np.uint8)
    # The rows as one binary column over the same buffer: no copy per row.
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
    column = pa.LargeBinaryArray.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(rows)])
    return _split(column, prefix, _ROW_SHARE)
