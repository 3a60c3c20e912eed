"""An Arrow batch's low-cardinality text columns read without string views.

`pl.from_arrow` turns every string column into polars string views (a copy of
each value and a 16-byte view a row), and the hot frame then turns `operation`
and `status` into Enums and `user_id` into a Categorical: two passes and a
column of views thrown away (at 10 M events ~0.3 s per column). Here, on the
Arrow side: `operation` and `status` are looked up in their canonical names
(`pc.index_in`, one hash probe a row) and gathered as Enum codes; `user_id` is
dictionary-encoded and handed over as a Categorical; `metadata`'s distinct texts
are listed by Arrow, for `door.metadata_column` to check once each. A column
that holds another spelling ("store", " Recall ") or another type is left to
the polars path, which reads each distinct spelling with `log`'s coercion.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from axon_audit.io.threads import CORES

__all__ = ["arrow_frame"]

_TEXT_TYPES = (pa.string(), pa.large_string(), pa.string_view())
_OFFSET_TEXT = (pa.string(), pa.large_string())  # string views go to polars as they are: no copy


def _enum_codes(col: pa.ChunkedArray | pa.Array, dtype: pl.Enum) -> pl.Series | None:
    """The column as `dtype` when every non-null value is a canonical name, else None."""
    try:
        codes = pc.index_in(col, value_set=pa.array(list(dtype.categories), col.type))
    except pa.ArrowNotImplementedError:  # no kernel for this string type: the polars path
        return None
    if codes.null_count != col.null_count:  # another spelling somewhere: the polars path reads it
        return None
    return pl.Series(list(dtype.categories), dtype=dtype).gather(pl.from_arrow(codes))  # type: ignore[arg-type]


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_PARALLEL_ROWS = 200_000  # below this, a thread hand-off costs more than it saves


def _forget_pool() -> None:
    global _pool
    _pool = None  # a forked child has none of the parent's threads: it starts its own pool


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _run(jobs: dict[str, Callable[[], Any]], rows: int) -> dict[str, Any]:
    """Each job's result. Arrow's kernels release the GIL and run on one core each:
    on a machine with more, a big batch runs them side by side."""
    global _pool
    if CORES < 2 or rows < _PARALLEL_ROWS or len(jobs) < 2:
        return {name: job() for name, job in jobs.items()}
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=min(4, CORES), thread_name_prefix="axon-audit-intake")
    futures = {name: _pool.submit(job) for name, job in jobs.items()}
    return {name: f.result() for name, f in futures.items()}


def arrow_frame(data: pa.Table | pa.RecordBatch, enums: dict[str, pl.Enum]) -> tuple[pl.DataFrame, list[Any] | None]:
    """The batch as a polars frame, with `enums`' columns as those Enums and `user_id`
    as a Categorical where Arrow could make them directly, and the distinct texts of
    a string `metadata` column (None when there is none).

    Example:
        >>> import polars as pl, pyarrow as pa
        >>> from axon_audit.model.arrow_intake import arrow_frame
        >>> t = pa.table({"operation": ["STORE", "STORE"], "user_id": ["u1", None], "metadata": ['{"a":1}', None]})
        >>> df, distinct = arrow_frame(t, {"operation": pl.Enum(["STORE", "RECALL"])})
        >>> df.schema["operation"], df.schema["user_id"], distinct
        (Enum(categories=['STORE', 'RECALL']), Categorical, ['{"a":1}'])
    """
    table = pa.Table.from_batches([data]) if isinstance(data, pa.RecordBatch) else data
    names = table.column_names
    jobs: dict[str, Callable[[], Any]] = {}
    for name, dtype in enums.items():
        if name in names and table.schema.field(name).type in _TEXT_TYPES:
            jobs[name] = partial(_enum_codes, table.column(name), dtype)
    if "user_id" in names and table.schema.field("user_id").type in _OFFSET_TEXT:
        jobs["user_id"] = partial(pc.dictionary_encode, table.column("user_id"))
    if "metadata" in names and table.schema.field("metadata").type in _OFFSET_TEXT:
        jobs["metadata"] = partial(pc.unique, table.column("metadata"))
    got = _run(jobs, table.num_rows)
    done = {name: v.alias(name) if isinstance(v, pl.Series) else pl.Series(name, v)
            for name in ("operation", "status", "user_id") if (v := got.get(name)) is not None}
    distinct = got["metadata"].drop_null().to_pylist() if "metadata" in got else None
    rest = pl.from_arrow(table.drop_columns(list(done)))
    assert isinstance(rest, pl.DataFrame)
    frame = rest.with_columns(*done.values()).select(table.column_names) if done else rest
    return frame, distinct
