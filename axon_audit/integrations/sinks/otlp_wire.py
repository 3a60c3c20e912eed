"""The OTLP sink's request bytes, without a Python object per event.

`logs_body` gives the bytes that ``logs_request(batch, ...).SerializeToString()``
gives (`axon_audit.integrations.sinks.otlp`: the same ``ExportLogsServiceRequest``,
field for field, in the order protobuf writes them). Building the messages event
by event held the GIL ~20 µs per event on the sink's thread, so an attached OTLP
sink slowed the loggers' `log_event` by ~40 % (wall time, benchmarks/sink_cost.py).

Two writers, the same bytes (the tests check both against the generated classes):

* compiled (`axon_audit.integrity.native.otlp_records`, C, the GIL released):
  the LogRecords written from the batch's Arrow buffers, ~1 ms per 1,000 events;
* polars (when the extension is not built): each LogRecord as the hex text of its
  bytes, in one query (a tag is a constant; a varint or a fixed64 is integer
  arithmetic and a 512-character hex table; a length-delimited field's length is
  half the length of its hex text), joined and decoded from hex in the query.
  It runs in Rust without the GIL, but costs ~30 ms per 1,000 events of CPU.

The expressions are built once (`_stages`, `_compiled_columns`); per batch Python
adds the observed time and the constant head (resource and scope, serialized with
the generated classes once per sink).
"""

from __future__ import annotations

import struct
from functools import cache
from typing import cast

import numpy as np
import polars as pl

from axon_audit.integrity import native

__all__ = ["logs_body", "varint"]

_HEX = "".join(f"{i:02x}" for i in range(256))
_SEVERITY = {"SUCCESS": (9, "INFO"), "PARTIAL": (13, "WARN"), "FAILURE": (17, "ERROR")}
_U64 = pl.UInt64


def varint(n: int) -> bytes:
    """The protobuf varint of `n` >= 0.

    Example:
        >>> varint(1), varint(300)
        (b'\\x01', b'\\xac\\x02')
    """
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    return bytes([tag]) + varint(len(payload)) + payload


def _byte(b: pl.Expr) -> pl.Expr:
    """Two hex digits of `b` (0..255): a slice of the 512-character table (a lookup: replace_strict was 10x slower)."""
    return pl.lit(_HEX).str.slice(b.cast(pl.Int64) * 2, 2)


def _varint(n: pl.Expr) -> pl.Expr:
    """The hex of `n`'s varint (n < 2**35: a length or a small number)."""
    n = n.cast(pl.Int64)
    parts = []
    for k in range(5):
        more = pl.when(n >= 1 << (7 * (k + 1))).then(pl.lit(0x80)).otherwise(pl.lit(0))
        hexed = _byte((n // (1 << (7 * k))) % 128 + more)
        parts.append(hexed if k == 0 else pl.when(n >= 1 << (7 * k)).then(hexed).otherwise(pl.lit("")))
    return pl.concat_str(parts)


def _fixed64(x: pl.Expr) -> pl.Expr:
    """The hex of `x` (UInt64) as 8 little-endian bytes."""
    return pl.concat_str([_byte((x // pl.lit(256**k, dtype=_U64)) % pl.lit(256, dtype=_U64)) for k in range(8)])


def _delimited(tag: int, hexed: pl.Expr) -> pl.Expr:
    """A length-delimited field: tag, the length of `hexed`'s bytes, the bytes. `hexed` is used
    twice (more in the varint): pass a column, not a deep expression (the tree would multiply)."""
    return pl.concat_str(pl.lit(f"{tag:02x}"), _varint(hexed.str.len_bytes() // 2), hexed)


def _severity() -> pl.Expr:
    """Fields 2 and 3 (severity number and text) by status; INFO for any other."""
    def piece(number: int, text: str) -> str:
        return (bytes([0x10]) + varint(number) + _field(0x1A, text.encode())).hex()
    mapping = {status: piece(*pair) for status, pair in _SEVERITY.items()}
    return (pl.col("status").cast(pl.String).replace_strict(mapping, default=piece(9, "INFO"), return_dtype=pl.String)
            .fill_null(piece(9, "INFO")))


# The string attributes: (key, column, left out when null).
_TEXTS = (("audit.event_id", "event_id", False), ("audit.operation", "operation", False),
          ("audit.status", "status", False), ("audit.user_id", "user_id", True),
          ("audit.session_id", "session_id", True), ("audit.metadata", "metadata", False),
          ("audit.error_message", "error_message", True))
_ORDER = ("event_id", "operation", "status", "user_id", "session_id", "duration_ms", "entry_ids", "metadata",
          "error_message")  # the attributes in the order `logs_request` adds them


@cache
def _stages() -> tuple[list[pl.Expr], ...]:
    """The query, stage by stage (each stage names its columns, so the next uses them once): every
    record as a ``log_records`` field (field 2 of ScopeLogs), joined, as bytes. Besides the batch's
    columns it needs ``_observed`` (the observed time's fixed64 hex) and ``_duration_bits``
    (duration_ms's IEEE-754 bits, UInt64)."""
    def col(c: str) -> pl.Expr:
        return pl.col(c).cast(pl.String).fill_null("{}") if c == "metadata" else pl.col(c).cast(pl.String)

    ts = pl.col("timestamp").dt.epoch("us").cast(_U64) * pl.lit(1000, dtype=_U64)
    hexes = [col(c).str.encode("hex").alias(f"_h_{c}") for _, c, _ in _TEXTS]
    hexes.append(pl.col("entry_ids").fill_null([]).cast(pl.List(pl.String))
                 .list.eval(pl.element().str.encode("hex")).alias("_h_entry_ids"))
    # AnyValue{string_value} (field 1), empty when null (the value unset); the entries' values too.
    anys = [_delimited(0x0A, pl.col(f"_h_{c}")).fill_null("").alias(f"_a_{c}") for _, c, _ in _TEXTS]
    anys.append(pl.col("_h_entry_ids").list.eval(_delimited(0x0A, pl.element()).fill_null("")).alias("_v"))
    arrays = [pl.col("_v").list.eval(_delimited(0x0A, pl.element())).list.join("").alias("_arr")]  # ArrayValue
    values = [pl.col(f"_a_{c}").alias(f"_any_{c}") for _, c, _ in _TEXTS]
    values.append(_delimited(0x2A, pl.col("_arr")).alias("_any_entry_ids"))  # AnyValue.array_value (field 5)
    values.append(pl.concat_str(pl.lit("21"), _fixed64(pl.col("_duration_bits"))).alias("_any_duration_ms"))
    keys = {c: key for key, c, _ in _TEXTS} | {"entry_ids": "audit.entry_ids", "duration_ms": "audit.duration_ms"}
    kvs = [pl.concat_str(pl.lit(_field(0x0A, keys[c].encode()).hex()), _delimited(0x12, pl.col(f"_any_{c}")))
           .alias(f"_kv_{c}") for c in _ORDER]  # KeyValue{key (1), value (2)}
    optional = {c for _, c, leave_out in _TEXTS if leave_out} | {"duration_ms"}
    attrs = [(pl.when(pl.col(c).is_null()).then(pl.lit("")).otherwise(_delimited(0x32, pl.col(f"_kv_{c}")))
              if c in optional else _delimited(0x32, pl.col(f"_kv_{c}"))).alias(f"_at_{c}") for c in _ORDER]
    record = [pl.concat_str(
        pl.when(ts == 0).then(pl.lit("")).otherwise(pl.concat_str(pl.lit("09"), _fixed64(ts))),  # proto3: 0 unset
        _severity(),
        _delimited(0x2A, pl.col("_a_operation")),  # body (field 5)
        *(pl.col(f"_at_{c}") for c in _ORDER),  # attributes (field 6)
        pl.lit("59"), pl.col("_observed"),  # observed_time_unix_nano (field 11)
    ).alias("_record")]
    joined = [_delimited(0x12, pl.col("_record")).str.join("").str.decode("hex").alias("records")]
    return hexes, anys, arrays, values, kvs, attrs, record, joined


_MEMBERS = tuple((_field(0x0A, key.encode()), c, kind) for key, c, kind in (
    ("audit.event_id", "event_id", "S"), ("audit.operation", "operation", "S"), ("audit.status", "status", "S"),
    ("audit.user_id", "user_id", "O"), ("audit.session_id", "session_id", "O"),
    ("audit.duration_ms", "duration_ms", "D"), ("audit.entry_ids", "entry_ids", "L"),
    ("audit.metadata", "metadata", "S"), ("audit.error_message", "error_message", "O")))


@cache
def _compiled_columns() -> list[pl.Expr]:
    """The columns the C writer reads (its severity pieces as bytes; metadata ``{}`` when null)."""
    return [*(pl.col(c) for c in _ORDER if c != "metadata"), pl.col("timestamp"),
            pl.col("metadata").cast(pl.String).fill_null("{}"), _severity().str.decode("hex").alias("_severity")]


def logs_body(batch: pl.DataFrame, head: tuple[bytes, bytes], observed_ns: int, *,
              compiled: bool | None = None) -> bytes:
    """The serialized ``ExportLogsServiceRequest`` of `batch`; `head` is (the serialized
    ``Resource``, the serialized ``InstrumentationScope``), `observed_ns` the observed time.
    `compiled`: the C writer (`axon_audit.integrity.native.otlp_records`; default: when built, `native.OTLP`)
    or the polars query; the same bytes."""
    if compiled is None:
        compiled = native.OTLP
    observed = struct.pack("<Q", observed_ns)
    if compiled:
        records = native.otlp_records(batch.select(_compiled_columns()), _MEMBERS, "timestamp", "operation",
                                      "_severity", observed)
    else:
        records = _polars_records(batch, observed)
    resource, scope = head
    scope_head = _field(0x0A, scope)
    scope_logs = len(scope_head) + len(records)
    resource_head = _field(0x0A, resource) + bytes([0x12]) + varint(scope_logs)
    # One copy of the records (they are most of the request), not one per enclosing message.
    return b"".join((bytes([0x0A]), varint(len(resource_head) + scope_logs), resource_head, scope_head, records))


def _polars_records(batch: pl.DataFrame, observed: bytes) -> bytes:
    bits = batch["duration_ms"].cast(pl.Float64).fill_null(0.0).to_numpy().view(np.uint64)
    lf = batch.lazy().with_columns(pl.lit(observed.hex()).alias("_observed"),
                                   pl.Series("_duration_bits", bits, dtype=_U64))
    *stages, last = _stages()
    for stage in stages:
        lf = lf.with_columns(stage)
    return cast(bytes, lf.select(last).collect().item())
