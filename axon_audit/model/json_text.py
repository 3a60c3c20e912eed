"""JSON texts of events, vectorized: each field's JSON literal, and objects built
from them. One home for the two objects an export writes per event:

* the export format's object (keys in `COLUMNS` order, metadata as stored,
  durations as polars' JSON writer prints them): `export_object`;
* the canonical object of the Merkle log's leaves (keys sorted, metadata and
  numbers in RFC 8785 form; `axon_audit.integrity.leaf` supplies those two).

Both are made from the same field literals (`field_literals`), so a rotation
builds the strings once for both, in one polars query.
"""

from __future__ import annotations

import polars as pl

from axon_audit.model.schema import COLUMNS

__all__ = ["NEEDS_ESCAPE", "STRING_COLUMNS", "TIMESTAMP_FORMAT", "export_object", "field_literals", "json_object",
           "needs_escape", "quoted", "string_list"]

# The one timestamp format of the export.
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%.6fZ"
NEEDS_ESCAPE = r'[\x00-\x1f"\\]'
STRING_COLUMNS = ("error_message", "event_id", "operation", "session_id", "status", "user_id")


def quoted(col: pl.Expr, escape: bool) -> pl.Expr:
    """A JSON string literal per value, ``null`` for null."""
    if escape:
        # polars' JSON writer escapes exactly as RFC 8785 (checked over every code point in the tests);
        # only a column that needs it pays for it.
        return pl.struct(col.alias("v")).struct.json_encode().str.slice(5).str.strip_suffix("}")
    return pl.concat_str(pl.lit('"'), col, pl.lit('"')).fill_null("null")


def string_list(col: pl.Expr, escape: bool) -> pl.Expr:
    """A JSON array of strings per list, ``[]`` for null or empty."""
    col = col.fill_null([])
    if escape:
        return pl.struct(col.alias("v")).struct.json_encode().str.slice(5).str.strip_suffix("}")
    return (pl.when(col.list.len() == 0).then(pl.lit("[]"))
            .otherwise(pl.concat_str(pl.lit('["'), col.list.join('","'), pl.lit('"]'))))


def needs_escape(df: pl.DataFrame) -> dict[str, bool]:
    """Which string columns hold a value that needs escaping (one parallel pass);
    `entry_ids` also when a list holds a null (list.join would drop it)."""
    lists = pl.col("entry_ids").fill_null([])
    flat = lists.explode()
    schema = df.schema
    # An Enum's values are the fixed upper-case names: nothing to escape. A Categorical is
    # checked on its distinct values.
    plain = [c for c in STRING_COLUMNS if not isinstance(schema[c], pl.Enum)]
    checks = df.lazy().select(
        *((pl.col(c).unique() if isinstance(schema[c], pl.Categorical) else pl.col(c))
          .cast(pl.String).str.contains(NEEDS_ESCAPE).any().alias(c) for c in plain),
        (flat.str.contains(NEEDS_ESCAPE).any() | (flat.null_count() != (lists.list.len() == 0).sum()))
        .alias("entry_ids"),
    ).collect()
    found = dict.fromkeys(STRING_COLUMNS, False)
    found.update({c: bool(checks[c][0]) for c in checks.columns})
    return found


def field_literals(df: pl.DataFrame) -> dict[str, pl.Expr]:
    """The JSON literal of every field both objects write alike (all but
    ``metadata`` and ``duration_ms``), as expressions over `df`'s columns."""
    escape = needs_escape(df)
    texts = {c: quoted(pl.col(c).cast(pl.String), escape[c]) for c in STRING_COLUMNS}
    texts["entry_ids"] = string_list(pl.col("entry_ids").cast(pl.List(pl.String)), escape["entry_ids"])
    texts["timestamp"] = pl.concat_str(pl.lit('"'), pl.col("timestamp").dt.strftime(TIMESTAMP_FORMAT), pl.lit('"'))
    return texts


def json_object(order: list[str] | tuple[str, ...], texts: dict[str, pl.Expr]) -> pl.Expr:
    """One JSON object text per row: the keys of `order`, each with its literal."""
    parts: list[pl.Expr] = []
    for i, key in enumerate(order):
        parts.append(pl.lit(("{" if i == 0 else ",") + f'"{key}":'))
        parts.append(texts[key])
    parts.append(pl.lit("}"))
    return pl.concat_str(parts)


def export_object(texts: dict[str, pl.Expr]) -> pl.Expr:
    """The export format's object per event, from `field_literals`: metadata as
    stored (``{}`` when none), the duration as polars' JSON writer prints it.

    Example:
        >>> import polars as pl
        >>> from axon_audit.model.json_text import export_object, field_literals
        >>> from axon_audit.model.schema import normalize_batch
        >>> df = normalize_batch([{"event_id": "evt_1", "timestamp": "2025-01-15T12:00:00Z", "operation": "store",
        ...                        "duration_ms": 5000.0}])
        >>> df.select(export_object(field_literals(df))).item()
        '{"event_id":"evt_1","timestamp":"2025-01-15T12:00:00.000000Z","operation":"STORE","user_id":null,"session_id":null,"entry_ids":[],"metadata":{},"status":"SUCCESS","error_message":null,"duration_ms":5000.0}'
    """
    duration = pl.struct(pl.col("duration_ms")).struct.json_encode().str.slice(len('{"duration_ms":'))
    return json_object(COLUMNS, {**texts, "metadata": pl.col("metadata").fill_null("{}"),
                                 "duration_ms": duration.str.strip_suffix("}")})
