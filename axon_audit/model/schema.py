"""The one definition of the event columns, and conversions between their forms.

Three forms of the same columns:

* buffer rows: tuples appended by the logger (layout in `axon_audit.model.row`);
* the hot frame: a polars DataFrame, low-cardinality strings dictionary-encoded
  (`Enum` for operation/status, `Categorical` for user/session);
* canonical Arrow (`ARROW_SCHEMA`): what Parquet files, DuckDB and exports see.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import polars as pl
import pyarrow as pa

from axon_audit.exceptions import AuditTypeError, AuditValueError
from axon_audit.model.arrow_intake import arrow_frame
from axon_audit.model.batch_ids import generated_ids, row_columns, sequential_ids
from axon_audit.model.coerce import coerce_operation, coerce_status
from axon_audit.model.dict_columns import dicts_to_columns
from axon_audit.model.door import (
    check_arrow_times,
    duration_column,
    entries_column,
    enum_column,
    metadata_column,
    refuse_duplicate_ids,
    timestamp_column,
)
from axon_audit.model.enums import OPERATIONS, STATUSES
from axon_audit.model.event import AuditEvent
from axon_audit.model.frame_rows import frame_events
from axon_audit.model.ids import ID_MAX_US, ID_MIN_US
from axon_audit.model.row import (
    R_DURATION,
    R_ENTRIES,
    R_ERROR,
    R_META,
    R_NODE,
    R_OP,
    R_SEQ,
    R_SESSION,
    R_STATUS,
    R_TS,
    R_USER,
)
from axon_audit.model.timestamps import now_us

# Export order; every event object in a JSON export carries these keys in this order.
COLUMNS: tuple[str, ...] = (
    "event_id",
    "timestamp",
    "operation",
    "user_id",
    "session_id",
    "entry_ids",
    "metadata",
    "status",
    "error_message",
    "duration_ms",
)

OPERATION_DTYPE = pl.Enum(list(OPERATIONS))
STATUS_DTYPE = pl.Enum(list(STATUSES))
TIMESTAMP_DTYPE = pl.Datetime("us", "UTC")

# Instances, not classes, so the mapping types as DataType (pl.Schema holds instances either way).
FRAME_SCHEMA = pl.Schema(
    {
        "event_id": pl.String(),
        "timestamp": TIMESTAMP_DTYPE,
        "operation": OPERATION_DTYPE,
        "user_id": pl.Categorical(),
        "session_id": pl.String(),  # unbounded cardinality: kept out of the global categories
        "entry_ids": pl.List(pl.String()),
        "metadata": pl.String(),  # compact JSON object text; null means {}
        "status": STATUS_DTYPE,
        "error_message": pl.String(),
        "duration_ms": pl.Float64(),
    }
)

_DICT = pa.dictionary(pa.int32(), pa.string())
ARROW_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("operation", _DICT, nullable=False),
        pa.field("user_id", _DICT),
        pa.field("session_id", _DICT),
        pa.field("entry_ids", pa.list_(pa.string())),
        pa.field("metadata", pa.string(), metadata={"format": "json"}),
        pa.field("status", _DICT, nullable=False),
        pa.field("error_message", pa.string()),
        pa.field("duration_ms", pa.float64()),
    ],
    metadata={"axon_audit.schema_version": "1"},
)

EMPTY_FRAME = pl.DataFrame(schema=FRAME_SCHEMA)


def _id_expr(ts: pl.Expr | pl.Series, seq: pl.Expr | pl.Series, node: pl.Expr) -> pl.Expr:
    """Vectorized `axon_audit.model.ids.make_event_id` (over columns, or over Series inside `pl.select`)."""
    # Fixed-width digits by adding 10**k and dropping the leading "1": 1.4x faster
    # than zfill + format in polars 2.1 (timestamps below 10**16 us: until year 2286).
    # Before 1970: "-" + 15 digits of (µs + 10**15), as `axon_audit.model.ids.id_time_text`.
    time_text = pl.when(ts >= 0).then((ts + 10**16).cast(pl.String).str.slice(1)).otherwise(
        pl.concat_str(pl.lit("-"), (ts - ID_MIN_US + 10**15).cast(pl.String).str.slice(1)))
    return pl.concat_str(
        pl.lit("evt_"),
        time_text,
        node,
        (seq % 100_000_000 + 100_000_000).cast(pl.String).str.slice(1),
    )


def polars_ids(us: pl.Series, seq: pl.Series, node: str) -> pl.Series:
    """`_id_expr` over columns: the event ids of times `us` and sequences `seq` under `node`
    (`axon_audit.model.batch_ids.generated_ids` without its compiled path).

    Example:
        >>> import polars as pl
        >>> from axon_audit.model.schema import polars_ids
        >>> polars_ids(pl.Series([1_736_937_045_123_456]), pl.Series([7]), "a1b2c3").to_list()
        ['evt_1736937045123456a1b2c300000007']
    """
    return pl.select(_id_expr(us, seq, pl.lit(node, dtype=pl.String))).to_series().alias("event_id")


def rows_to_frame(rows: Sequence[tuple]) -> pl.DataFrame:
    """Turn buffered rows into one hot frame (all columnar work, no per-row Python).

    Scalar columns go straight from the transposed tuples into polars Series
    (about half the cost of `pa.array` + `pl.from_arrow`, measured); only the
    list column takes the Arrow route, where polars' own conversion is slow.
    """
    if not rows:
        return EMPTY_FRAME.clear()
    cols = row_columns(rows if type(rows) is list else list(rows), R_DURATION + 1)
    nodes = cols[R_NODE]
    # One process logs with one node: a literal instead of n equal strings.
    uniform = nodes.count(nodes[0]) == len(nodes)
    node = pl.lit(nodes[0], dtype=pl.String) if uniform else pl.col("node")
    frame = pl.DataFrame(
        [
            pl.Series("ts", cols[R_TS], dtype=pl.Int64),
            pl.Series("seq", cols[R_SEQ], dtype=pl.Int64),
            pl.Series("operation", cols[R_OP], dtype=pl.String),  # the enums' values (model.row)
            pl.Series("user_id", cols[R_USER], dtype=pl.String),
            pl.Series("session_id", cols[R_SESSION], dtype=pl.String),
            pl.Series("entry_ids", pa.array(cols[R_ENTRIES], pa.list_(pa.string()))),
            pl.Series("metadata", cols[R_META], dtype=pl.String),
            pl.Series("status", cols[R_STATUS], dtype=pl.String),
            pl.Series("error_message", cols[R_ERROR], dtype=pl.String),
            pl.Series("duration_ms", cols[R_DURATION], dtype=pl.Float64),
        ]
        + ([] if uniform else [pl.Series("node", nodes, dtype=pl.String)])
    )
    ids = sequential_ids(frame["ts"], frame["seq"], nodes[0]) if uniform else None
    return frame.select(
        (_id_expr(pl.col("ts"), pl.col("seq"), node) if ids is None else pl.lit(ids)).alias("event_id"),
        pl.col("ts").cast(TIMESTAMP_DTYPE).alias("timestamp"),
        pl.col("operation").cast(OPERATION_DTYPE),
        pl.col("user_id").cast(pl.Categorical),
        "session_id",
        pl.col("entry_ids").cast(pl.List(pl.String)),
        "metadata",
        pl.col("status").cast(STATUS_DTYPE),
        "error_message",
        "duration_ms",
    )


def frame_to_events(df: pl.DataFrame) -> list[AuditEvent]:
    """Rows as `AuditEvent`s: the one place with per-event Python work (one object
    each, made in `axon_audit.model.frame_rows`). The events share the frame: their
    ids and rows are made on the first read of one of them."""
    return frame_events(df)


def events_to_frame(events: Iterable[AuditEvent]) -> pl.DataFrame:
    """The hot frame for already-built events (their ids and times kept)."""
    events = list(events)
    for i, ev in enumerate(events):
        if not isinstance(ev, AuditEvent):
            raise AuditTypeError(f"events[{i}] must be an AuditEvent, got {type(ev).__name__}")
    rows = [e._row for e in events]
    ids = [e.event_id for e in events]
    return rows_to_frame(rows).with_columns(event_id=pl.Series(ids, dtype=pl.String))


def to_arrow(df: pl.DataFrame) -> pa.Table:
    """The canonical Arrow table (`ARROW_SCHEMA`) of a hot frame."""
    return df.select(COLUMNS).to_arrow().cast(ARROW_SCHEMA)


def from_arrow(table: pa.Table | pa.RecordBatch) -> pl.DataFrame:
    """A hot frame from canonical Arrow data (e.g. read back from Parquet)."""
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    return df.select(COLUMNS).cast(dict(FRAME_SCHEMA))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- bulk input



def _frame_of(data: Any, naive_time: Any) -> tuple[pl.DataFrame, bool | list[Any] | None]:
    """The batch as a frame, and what is known of its metadata column: True when it is
    in the stored form already (a list of dicts': `log()`'s own texts, made by
    `dicts_to_columns`), its distinct texts (from Arrow), or nothing."""
    if isinstance(data, pl.DataFrame):
        return data, None
    if isinstance(data, pl.LazyFrame):
        return data.collect(), None
    if isinstance(data, (pa.Table, pa.RecordBatch)):
        check_arrow_times(data)
        return arrow_frame(data, {"operation": OPERATION_DTYPE, "status": STATUS_DTYPE})
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        if data and all(isinstance(e, AuditEvent) for e in data):
            return events_to_frame(data), None
        cols = dicts_to_columns(data, COLUMNS, naive_time)
        return (pl.DataFrame(list(cols.values())) if data else pl.DataFrame({"operation": []})), True
    raise AuditTypeError(
        "events must be a pyarrow Table/RecordBatch, a polars DataFrame, or a list of dicts or "
        f"AuditEvents, got {type(data).__name__}"
    )


def normalize_batch(data: Any, known_ids: Callable[[pl.Series], str | None] | None = None, *,
                    naive_time: Any = None) -> pl.DataFrame:
    """Validate bulk input and return it as a hot frame; nothing is accepted partly.

    Columns: `operation` is required; every other column of `COLUMNS` is optional
    (`timestamp` defaults to now, `event_id` is generated, `status` is SUCCESS;
    a null in a row means the same as a missing column). The values obey the
    rules of `log` (`axon_audit.model.coerce`), checked in `axon_audit.model.door`;
    event ids the batch brings must be distinct, and `known_ids` (given the
    batch's own ids, returning one already stored, or None) refuses reused ones.
    Naive times (no offset, zone-less columns) follow `naive_time`
    (`axon_audit.model.timestamps.naive_time_rule`: local time by default).
    """
    df, meta_known = _frame_of(data, naive_time)
    unknown = [c for c in df.columns if c not in FRAME_SCHEMA]
    if unknown:
        raise AuditValueError(f"events have unknown columns: {unknown}; expected some of {list(COLUMNS)}")
    if "operation" not in df.columns:
        raise AuditValueError("events have no 'operation' column")
    n = df.height
    if n == 0:
        return EMPTY_FRAME.clear()

    def text_col(name: str) -> pl.Series:
        if name not in df.columns:
            return pl.Series(name, [None] * n, dtype=pl.String)
        s = df[name]
        if s.dtype not in (pl.String, pl.Categorical, pl.Null) and not isinstance(s.dtype, pl.Enum):
            raise AuditTypeError(f"events: {name} must be strings, got {s.dtype}")
        return s.cast(pl.String)

    def null_means(name: str, default: str | None) -> pl.Series:
        s = df[name] if name in df.columns else pl.Series(name, [default] * n, dtype=pl.String)
        if s.null_count():
            if default is None:
                raise AuditValueError(f"events: row {int(s.is_null().arg_true()[0])}: {name} is missing "
                                      f"({s.null_count()} rows have none)")
            s = s.fill_null(default) if s.dtype == STATUS_DTYPE else s.cast(pl.String).fill_null(default)
        return s

    now = pl.lit(now_us()).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    ts = (timestamp_column(df["timestamp"], naive_time=naive_time) if "timestamp" in df.columns
          else pl.repeat(now, n, eager=True))
    ts = ts.fill_null(now).alias("timestamp") if ts.null_count() else ts

    # A fresh random node per batch keeps generated ids distinct from the logger's.
    node = secrets.token_hex(3)
    given = text_col("event_id") if "event_id" in df.columns else None
    us = ts.dt.epoch("us")
    outside = (us < ID_MIN_US) | (us > ID_MAX_US)
    if given is not None:
        outside = outside & given.is_null()
    if outside.any():
        i = int(outside.arg_true()[0])
        raise AuditValueError(f"events: row {i}: timestamp {ts[i]} is outside the range event ids can sort "
                              "(1938-04-24 to 2286-11-20 UTC); give the row an event_id or fix its time")
    if given is None:
        eid = generated_ids(us, node, polars_ids)
    elif given.null_count():  # rows that bring an id keep it (their time need not fit one)
        eid = given.fill_null(generated_ids(us.zip_with(given.is_null(), pl.zeros(n, pl.Int64, eager=True)),
                                            node, polars_ids))
    else:
        eid = given
    if given is not None:
        refuse_duplicate_ids(eid)

    out = pl.DataFrame(
        [
            eid.alias("event_id"),
            ts.alias("timestamp"),
            enum_column(null_means("operation", None), OPERATION_DTYPE, coerce_operation),
            (df["user_id"] if "user_id" in df.columns and df["user_id"].dtype == pl.Categorical
             else text_col("user_id").cast(pl.Categorical)).alias("user_id"),
            text_col("session_id").alias("session_id"),
            entries_column(df["entry_ids"]) if "entry_ids" in df.columns
            else pl.Series("entry_ids", [[]] * n, dtype=pl.List(pl.String)),
            (df["metadata"] if meta_known is True else metadata_column(df["metadata"], meta_known or None))
            if "metadata" in df.columns
            else pl.Series("metadata", [None] * n, dtype=pl.String),
            enum_column(null_means("status", "SUCCESS"), STATUS_DTYPE, coerce_status),
            text_col("error_message").alias("error_message"),
            duration_column(df["duration_ms"]) if "duration_ms" in df.columns
            else pl.Series("duration_ms", [None] * n, dtype=pl.Float64),
        ]
    )
    if given is not None and known_ids is not None and given.null_count() < n:
        found = known_ids(given.drop_nulls())
        if found is not None:
            raise AuditValueError(f"events: event_id {found!r} is already logged (in memory or in the export "
                                  "folder); an event id names one event")
    return out
