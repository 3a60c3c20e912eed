"""The one definition of the event columns, and conversions between their forms.

Three forms of the same columns:

* buffer rows: tuples appended by the logger (layout in `axon_audit.model.row`);
* the hot frame: a polars DataFrame, low-cardinality strings dictionary-encoded
  (`Enum` for operation/status, `Categorical` for user/session);
* canonical Arrow (`ARROW_SCHEMA`): what Parquet files, DuckDB and exports see.
"""

from __future__ import annotations

import gc
import secrets
from collections.abc import Iterable, Mapping, Sequence
from itertools import repeat
from typing import Any

import orjson
import polars as pl
import pyarrow as pa

from axon_audit.exceptions import AuditTypeError, AuditValueError
from axon_audit.model.coerce import encode_metadata
from axon_audit.model.enums import OPERATIONS, STATUSES, EventStatus, OperationType
from axon_audit.model.event import AuditEvent
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

_OPS_BY_CODE = tuple(OperationType)
_STATUS_BY_CODE = tuple(EventStatus)


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


def rows_to_frame(rows: Sequence[tuple]) -> pl.DataFrame:
    """Turn buffered rows into one hot frame (all columnar work, no per-row Python).

    Scalar columns go straight from the transposed tuples into polars Series
    (about half the cost of `pa.array` + `pl.from_arrow`, measured); only the
    list column takes the Arrow route, where polars' own conversion is slow.
    """
    if not rows:
        return EMPTY_FRAME.clear()
    cols = list(zip(*rows, strict=False))  # rows come from log(): all one length; strict would re-walk every row
    nodes = cols[R_NODE]
    # One process logs with one node: a literal instead of n equal strings.
    uniform = nodes.count(nodes[0]) == len(nodes)
    node = pl.lit(nodes[0], dtype=pl.String) if uniform else pl.col("node")
    frame = pl.DataFrame(
        [
            pl.Series("ts", cols[R_TS], dtype=pl.Int64),
            pl.Series("seq", cols[R_SEQ], dtype=pl.Int64),
            pl.Series("operation", cols[R_OP], dtype=pl.String),  # str-valued enums
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
    return frame.select(
        _id_expr(pl.col("ts"), pl.col("seq"), node).alias("event_id"),
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
    """Materialize rows as `AuditEvent`s: the one place with per-event Python work."""
    if df.height == 0:
        return []
    n = df.height
    entries = df["entry_ids"]
    if entries.null_count():  # never in the hot frame; fill_null on lists is slow, so only when needed
        entries = entries.fill_null([])
    ops = map(_OPS_BY_CODE.__getitem__, df["operation"].to_physical().to_list())
    statuses = map(_STATUS_BY_CODE.__getitem__, df["status"].to_physical().to_list())
    rows = zip(
        df["timestamp"].dt.epoch("us").to_list(),
        repeat(-1, n),
        repeat("", n),
        ops,
        df["user_id"].cast(pl.String).to_list(),
        df["session_id"].to_list(),
        entries.to_list(),
        df["metadata"].to_list(),
        statuses,
        df["error_message"].to_list(),
        df["duration_ms"].to_list(),
        strict=True,
    )
    ids = df["event_id"].to_list()
    # The objects made here hold no cycles; the cyclic GC's passes over the
    # growing heap would cost more than building them (measured: 2x at 10 K).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return list(map(AuditEvent._from_row, rows, ids))
    finally:
        if was_enabled:
            gc.enable()


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


def _frame_of(data: Any) -> pl.DataFrame:
    if isinstance(data, pl.DataFrame):
        return data
    if isinstance(data, pl.LazyFrame):
        return data.collect()
    if isinstance(data, (pa.Table, pa.RecordBatch)):
        df = pl.from_arrow(data)
        assert isinstance(df, pl.DataFrame)
        return df
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        if all(isinstance(e, AuditEvent) for e in data):
            return events_to_frame(data)
        return _dicts_to_frame(data)
    raise AuditTypeError(
        "events must be a pyarrow Table/RecordBatch, a polars DataFrame, or a list of dicts or "
        f"AuditEvents, got {type(data).__name__}"
    )


def _dicts_to_frame(items: Sequence[Any]) -> pl.DataFrame:
    cols: dict[str, list] = {c: [] for c in COLUMNS}
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise AuditTypeError(f"events[{i}] must be a dict, got {type(item).__name__}")
        unknown = item.keys() - set(COLUMNS)
        if unknown:
            raise AuditValueError(f"events[{i}] has unknown keys: {sorted(unknown)}")
        for c in COLUMNS:
            cols[c].append(item.get(c))
    try:
        cols["metadata"] = [encode_metadata(m) for m in cols["metadata"]]
    except (AuditValueError, AuditTypeError) as exc:
        raise type(exc)(f"events: {exc}") from None
    for c in ("operation", "status"):
        cols[c] = [v.value if isinstance(v, (OperationType, EventStatus)) else v for v in cols[c]]
    try:
        return pl.DataFrame(
            {c: v for c, v in cols.items() if any(x is not None for x in v) or c == "operation"},
            strict=False,
        )
    except Exception as exc:  # noqa: BLE001 - polars raises several types; its message names the column
        raise AuditTypeError(f"events: {exc}") from None


def normalize_batch(data: Any) -> pl.DataFrame:
    """Validate bulk input and return it as a hot frame; nothing is accepted partly.

    Columns: `operation` is required; every other column of `COLUMNS` is optional
    (`timestamp` defaults to now, `event_id` is generated, `status` is SUCCESS).
    """
    df = _frame_of(data)
    unknown = [c for c in df.columns if c not in FRAME_SCHEMA]
    if unknown:
        raise AuditValueError(f"events have unknown columns: {unknown}; expected some of {list(COLUMNS)}")
    if "operation" not in df.columns:
        raise AuditValueError("events have no 'operation' column")
    n = df.height
    if n == 0:
        return EMPTY_FRAME.clear()

    def enum_col(name: str, dtype: pl.Enum, default: str | None) -> pl.Series:
        s = df[name] if name in df.columns else pl.Series(name, [default] * n)
        if s.null_count():
            if default is None:
                raise AuditValueError(f"events: {name} has {s.null_count()} null values")
            s = s.fill_null(default)
        if not isinstance(s.dtype, pl.Enum):
            if s.dtype not in (pl.String, pl.Categorical):
                raise AuditTypeError(f"events: {name} must be strings, got {s.dtype}")
            s = s.cast(pl.String)
            # Fast path: values already in canonical form cast straight to the Enum
            # (one hash lookup each); only a batch with other spellings pays for
            # strip + upper-casing.
            fast = s.cast(dtype, strict=False)
            if not fast.null_count():
                return fast.alias(name)
            s = s.str.strip_chars().str.to_uppercase()
        bad = s.cast(pl.String).filter(~s.cast(pl.String).is_in(dtype.categories.to_list())).unique().head(5).to_list()
        if bad:
            raise AuditValueError(f"events: unknown {name} values {bad}; expected one of {list(dtype.categories)}")
        return s.cast(pl.String).cast(dtype).alias(name)

    def text_col(name: str) -> pl.Series:
        if name not in df.columns:
            return pl.Series(name, [None] * n, dtype=pl.String)
        s = df[name]
        if s.dtype not in (pl.String, pl.Categorical, pl.Null) and not isinstance(s.dtype, pl.Enum):
            raise AuditTypeError(f"events: {name} must be strings, got {s.dtype}")
        return s.cast(pl.String)

    if "timestamp" in df.columns:
        ts = df["timestamp"]
        dtype = ts.dtype  # a local, so isinstance narrows it for the time_zone check
        if dtype == pl.String:
            try:
                ts = ts.str.replace(r"[Zz]$", "+00:00").str.to_datetime(time_unit="us", time_zone="UTC")
            except Exception as exc:  # noqa: BLE001 - polars' parse errors vary by version; all mean "not ISO"
                raise AuditValueError(f"events: timestamp strings must be ISO 8601: {exc}") from None
        elif isinstance(dtype, pl.Datetime):
            ts = ts.dt.cast_time_unit("us")
            # A zone-less timestamp column is read as UTC (the export format's zone).
            ts = ts.dt.replace_time_zone("UTC") if dtype.time_zone is None else ts.dt.convert_time_zone("UTC")
        else:
            raise AuditTypeError(f"events: timestamp must be datetimes or ISO strings, got {dtype}")
        if ts.null_count():
            ts = ts.fill_null(pl.lit(now_us()).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))
    else:
        ts = pl.Series("timestamp", [now_us()] * n, dtype=pl.Int64).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")

    # A fresh random node per batch keeps generated ids distinct from the logger's.
    node = secrets.token_hex(3)
    gen_ids = pl.select(
        _id_expr(ts.dt.epoch("us"), pl.int_range(0, n, eager=True), pl.lit(node))
    ).to_series()
    needs_id = df["event_id"].is_null() if "event_id" in df.columns else pl.repeat(True, n, eager=True)
    us = ts.dt.epoch("us")
    outside = needs_id & ((us < ID_MIN_US) | (us > ID_MAX_US))
    if outside.any():
        i = int(outside.arg_true()[0])
        raise AuditValueError(f"events: row {i}: timestamp {ts[i]} is outside the range event ids can sort "
                              "(1938-04-24 to 2286-11-20 UTC); give the row an event_id or fix its time")
    if "event_id" in df.columns:
        eid = text_col("event_id")
        eid = eid.fill_null(gen_ids)
        if (eid.str.len_bytes() == 0).any():
            raise AuditValueError("events: event_id must not be empty")
    else:
        eid = gen_ids

    if "entry_ids" in df.columns:
        entries = df["entry_ids"]
        if entries.dtype == pl.Null:
            entries = pl.Series("entry_ids", [[]] * n, dtype=pl.List(pl.String))
        elif not (isinstance(entries.dtype, pl.List) and entries.dtype.inner in (pl.String, pl.Null, pl.Categorical)):
            raise AuditTypeError(f"events: entry_ids must be lists of strings, got {entries.dtype}")
        entries = entries.cast(pl.List(pl.String)).fill_null([])
    else:
        entries = pl.Series("entry_ids", [[]] * n, dtype=pl.List(pl.String))

    if "metadata" in df.columns:
        meta = df["metadata"]
        if isinstance(meta.dtype, pl.Struct):
            meta = meta.struct.json_encode()
        elif meta.dtype not in (pl.String, pl.Null):
            raise AuditTypeError(f"events: metadata must be JSON object text or structs, got {meta.dtype}")
        meta = meta.cast(pl.String)
        empty = _check_json_objects(meta)
        if empty:
            meta = pl.select(pl.when(meta.is_in(empty)).then(None).otherwise(meta)).to_series()
    else:
        meta = pl.Series("metadata", [None] * n, dtype=pl.String)

    if "duration_ms" in df.columns:
        dur = df["duration_ms"]
        if not dur.dtype.is_numeric() and dur.dtype != pl.Null:
            raise AuditTypeError(f"events: duration_ms must be numbers, got {dur.dtype}")
        dur = dur.cast(pl.Float64)
        bad = dur.filter(dur.is_not_null() & ~((dur >= 0) & dur.is_finite()))
        if bad.len():
            raise AuditValueError(f"events: duration_ms must be finite and >= 0, got {bad.head(3).to_list()}")
    else:
        dur = pl.Series("duration_ms", [None] * n, dtype=pl.Float64)

    return pl.DataFrame(
        [
            eid.alias("event_id"),
            ts.alias("timestamp"),
            enum_col("operation", OPERATION_DTYPE, None),
            text_col("user_id").cast(pl.Categorical).alias("user_id"),
            text_col("session_id").alias("session_id"),
            entries.alias("entry_ids"),
            meta.alias("metadata"),
            enum_col("status", STATUS_DTYPE, "SUCCESS"),
            text_col("error_message").alias("error_message"),
            dur.alias("duration_ms"),
        ]
    )


def _check_json_objects(meta: pl.Series) -> list[str]:
    """Every non-null value must be a JSON object; return the spellings of `{}` seen.

    Parsed once per *distinct* text: audit metadata repeats heavily (a workload of
    1 M events has ~2 000 distinct texts), so this is far cheaper than parsing
    every row (DuckDB's json_valid over all rows took ~0.9 us/event).
    """
    distinct = meta.drop_nulls().unique()
    bad: list[str] = []
    empty: list[str] = []
    loads = orjson.loads
    for text in distinct.to_list():  # per distinct value, not per event
        try:
            value = loads(text)
        except orjson.JSONDecodeError:
            value = None
        if type(value) is not dict:
            bad.append(text)
            if len(bad) == 3:
                break
        elif not value:
            empty.append(text)
    if bad:
        raise AuditValueError(f"events: metadata must be JSON objects, got {[b[:60] for b in bad]}")
    return empty
