"""The canonical leaf encoding of an audit event for the Merkle log, and the
vectorized leaf hashes of a whole frame.

The encoding, exactly (enough for a third party to implement it):

1. Take the event's object in the JSON export format: the ten keys
   ``event_id`` (string), ``timestamp`` (string ``YYYY-MM-DDTHH:MM:SS.ffffffZ``,
   UTC, six fraction digits), ``operation`` (string), ``user_id`` (string or
   null), ``session_id`` (string or null), ``entry_ids`` (array of strings,
   ``[]`` when none), ``metadata`` (the JSON object the stored metadata text
   holds, ``{}`` when none), ``status`` (string), ``error_message`` (string or
   null), ``duration_ms`` (number or null). No other key (an export's
   ``chain`` key is not part of the event).
2. Serialize it with the JSON Canonicalization Scheme, RFC 8785: no whitespace;
   the members of every object (the event's and the metadata's, at any depth)
   sorted by their keys' UTF-16 code units; strings as RFC 8785 §3.2.2.2 writes
   them (``\\"``, ``\\\\``, ``\\b \\f \\n \\r \\t``, other code points below
   U+0020 as ``\\u00xx`` in lower-case hex, every other character as itself,
   including U+007F, ``/`` and non-ASCII); numbers as ECMAScript's
   Number.prototype.toString writes the IEEE 754 double (45.2 -> ``45.2``,
   1.0 -> ``1``, -0.0 -> ``0``, 1e21 -> ``1e+21``, 1e-7 -> ``1e-7``); ``true``,
   ``false``, ``null``. Metadata integers are doubles too (I-JSON), so one
   beyond ±2**53 is written as its nearest double would be.
3. Encode the text as UTF-8: the canonical bytes (`canonical_event`).
4. Leaf hash = SHA-256(0x00 || canonical bytes), RFC 6962's leaf hash.

The event's keys therefore always come in this order: duration_ms, entry_ids,
error_message, event_id, metadata, operation, session_id, status, timestamp,
user_id. `leaf_hashes` canonicalizes metadata once per distinct value and
formats durations from polars' shortest round-trip digits; the rest of each text
is written and hashed in C (`axon_audit.integrity.native`), or, where that was
not built, built with polars string expressions and hashed with
`axon_audit.integrity.digest.sha256_values` (the same bytes: tested).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import orjson
import polars as pl

from axon_audit.integrity import native
from axon_audit.integrity.digest import BATCH_MIN, hex_digests, sha256_values
from axon_audit.integrity.merkle import leaf_hash
from axon_audit.model.json_text import NEEDS_ESCAPE, export_object, field_literals, json_object, quoted
from axon_audit.model.schema import COLUMNS

__all__ = ["canonical_event", "canonical_events", "canonical_json", "event_leaf_hash", "export_texts",
           "leaf_hashes", "objects_and_leaves"]

_KEYS = frozenset(COLUMNS)

_ESCAPES = {c: f"\\u{c:04x}" for c in range(0x20)}
_ESCAPES.update({0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r", 0x22: '\\"', 0x5C: "\\\\"})
_SAFE_INT = 2**53


def _number(x: float) -> str:
    """ECMAScript Number.prototype.toString of a finite double (RFC 8785 §3.2.2.3)."""
    if not math.isfinite(x):
        raise ValueError(f"{x!r} has no JSON form (RFC 8785 refuses NaN and infinity)")
    if x == 0:
        return "0"
    # repr gives the shortest digits that round-trip, the closest to x of them: ECMAScript's digits too.
    mantissa, _, exp = repr(abs(x)).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    n = len(whole) + int(exp or 0) - (len(whole + frac) - len(digits))  # x = 0.digits * 10**n
    digits = digits.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * -n + digits
    else:
        e = n - 1
        body = digits[0] + ("." + digits[1:] if k > 1 else "") + ("e+" if e >= 0 else "e-") + str(abs(e))
    return ("-" if x < 0 else "") + body


def _write(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append('"' + value.translate(_ESCAPES) + '"')
    elif isinstance(value, int):
        out.append(str(int(value)) if -_SAFE_INT <= value <= _SAFE_INT else _number(float(value)))
    elif isinstance(value, float):
        out.append(_number(value))
    elif isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be str, got {type(key).__name__}")
        out.append("{")
        for i, key in enumerate(sorted(value, key=lambda k: k.encode("utf-16-be"))):
            if i:
                out.append(",")
            out.append('"' + key.translate(_ESCAPES) + '":')
            _write(value[key], out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise TypeError(f"{type(value).__name__} has no JSON form")


def canonical_json(value: Any) -> str:
    """RFC 8785 canonical JSON text of a parsed JSON value (dicts, lists, str,
    int, float, bool, None). Raises ValueError for NaN/infinity or a lone
    surrogate, TypeError for other types.

    Example:
        >>> from axon_audit.integrity.leaf import canonical_json
        >>> canonical_json({"b": [1.0, 45.2, 1e21, -0.0], "a": "é\\n", "\\ufb33": 2, "\\U0001F600": 1})
        '{"a":"é\\\\n","b":[1,45.2,1e+21,0],"😀":1,"דּ":2}'
    """
    out: list[str] = []
    _write(value, out)
    text = "".join(out)
    text.encode("utf-8")  # a lone surrogate raises here (UnicodeEncodeError is a ValueError)
    return text


def canonical_event(obj: Mapping[str, Any]) -> bytes:
    """The canonical bytes of one event's export-format object (see the module
    docstring): exactly the ten export keys, metadata as a parsed object.

    Example:
        >>> from axon_audit.integrity.leaf import canonical_event
        >>> canonical_event({"event_id": "evt_1", "timestamp": "2025-01-15T12:00:00.000000Z", "operation": "STORE",
        ...                  "user_id": None, "session_id": None, "entry_ids": [], "metadata": {"b": 2, "a": 1},
        ...                  "status": "SUCCESS", "error_message": None, "duration_ms": 5000.0})[:74]
        b'{"duration_ms":5000,"entry_ids":[],"error_message":null,"event_id":"evt_1"'
    """
    keys = set(obj)
    if keys != _KEYS:
        raise ValueError(f"an event object has exactly the keys {list(COLUMNS)}; "
                         f"missing {sorted(_KEYS - keys)}, extra {sorted(keys - _KEYS)}")
    if not isinstance(obj["metadata"], Mapping):
        raise TypeError(f"metadata must be the parsed JSON object, got {type(obj['metadata']).__name__}")
    if not isinstance(obj["entry_ids"], (list, tuple)):
        raise TypeError(f"entry_ids must be a list, got {type(obj['entry_ids']).__name__}")
    return canonical_json(obj).encode("utf-8")


def event_leaf_hash(obj: Mapping[str, Any]) -> bytes:
    """SHA-256(0x00 || canonical_event(obj)): one event's leaf hash.

    Example:
        >>> from axon_audit.integrity.leaf import event_leaf_hash
        >>> len(event_leaf_hash({"event_id": "e", "timestamp": "2025-01-15T12:00:00.000000Z", "operation": "STORE",
        ...     "user_id": None, "session_id": None, "entry_ids": [], "metadata": {}, "status": "SUCCESS",
        ...     "error_message": None, "duration_ms": None}))
        32
    """
    return leaf_hash(canonical_event(obj))


# --------------------------------------------------------------------------- vectorized




def _strings(s: pl.Series) -> pl.Series:
    """`quoted` (`axon_audit.model.json_text`) over a Series, escaping only if some value needs it."""
    s = s.cast(pl.String)
    return pl.select(quoted(pl.lit(s), bool(s.str.contains(NEEDS_ESCAPE).any()))).to_series()


def _es_numbers(x: pl.Series) -> pl.Series:
    """`_number` over a Float64 Series (any finite values), from polars' shortest round-trip digits."""
    parts = x.abs().cast(pl.String).str.extract_groups(r"^(\d+)(?:\.(\d+))?(?:e([+-]?\d+))?$")
    whole = parts.struct.field("1")
    all_digits = pl.concat_str(whole, parts.struct.field("2").fill_null(""))
    lead = all_digits.str.strip_chars_start("0")
    digits = lead.str.strip_chars_end("0")
    n = (whole.str.len_chars().cast(pl.Int64) + parts.struct.field("3").cast(pl.Int64).fill_null(0)
         - (all_digits.str.len_chars() - lead.str.len_chars()).cast(pl.Int64))
    k = digits.str.len_chars().cast(pl.Int64)
    zeros = pl.lit("0" * 21)
    e = n - 1
    body = (
        pl.when((k <= n) & (n <= 21)).then(pl.concat_str(digits, zeros.str.slice(0, (n - k).clip(0, 21))))
        .when((n > 0) & (n <= 21)).then(pl.concat_str(digits.str.slice(0, n.clip(0)), pl.lit("."),
                                                      digits.str.slice(n.clip(0))))
        .when((n > -6) & (n <= 0)).then(pl.concat_str(pl.lit("0."), zeros.str.slice(0, (-n).clip(0, 6)), digits))
        .otherwise(pl.concat_str(
            digits.str.slice(0, 1),
            pl.when(k > 1).then(pl.concat_str(pl.lit("."), digits.str.slice(1))).otherwise(pl.lit("")),
            pl.when(e >= 0).then(pl.lit("e+")).otherwise(pl.lit("e-")),
            e.abs().cast(pl.String),
        ))
    )
    x_ = pl.lit(x)
    return pl.select(
        pl.when(x_ == 0).then(pl.lit("0"))
        .otherwise(pl.concat_str(pl.when(x_ < 0).then(pl.lit("-")).otherwise(pl.lit("")), body))
    ).to_series()


def _numbers(x: pl.Series) -> pl.Series:
    """A JSON number per value, ``null`` for null."""
    x = x.cast(pl.Float64)
    if not x.drop_nulls().is_finite().all():
        raise ValueError("duration_ms holds NaN or infinity, which have no JSON form")
    text = x.cast(pl.String)
    a = x.abs()
    # polars writes plain decimals for most values ("45.2", "5000.0"); in ECMAScript's fixed range
    # that is the canonical form less a trailing ".0". The rest take the general route.
    fixed = (~text.str.contains("e", literal=True) & ((a >= 1e-6) & (a < 1e21) | (a == 0))).fill_null(True)
    out = pl.select(pl.when(pl.lit(x) == 0).then(pl.lit("0")).otherwise(text.str.strip_suffix(".0"))).to_series()
    if not fixed.all():
        where = (~fixed).arg_true()
        out = out.scatter(where, _es_numbers(x.gather(where)))
    return out.fill_null("null")


# Number tokens where orjson's compact text and RFC 8785 may differ ("1.0" vs "1", "-0.0",
# exponents, integers past 2**53), and code points from U+E000 (UTF-8 and UTF-16 key order
# differ there): such texts take the reference path. Matches inside strings only cost speed.
_MAYBE_NOT_CANONICAL = r"[:,\[]-?\d+\.0[,\]}]|[:,\[]-?\d[\d.]*[eE]|[:,\[]-?\d{16}|[\x{E000}-\x{10FFFF}]"
_CANONICAL_CACHE: dict[str, str] = {}
_CACHE_LIMIT = 1 << 16


def _metadata(meta: pl.Series) -> pl.Series:
    """Canonical metadata object text per value, ``{}`` for null: once per distinct
    text. Texts seen before come from a process-wide cache (metadata repeats across
    rotations). For the rest, orjson's sorted compact text (~1 us each, keys sorted
    at every depth) is RFC 8785's wherever it holds no number or key that the two
    write differently (checked for all of them at once); only those take the
    reference path (`canonical_json`, ~25 us)."""
    distinct = meta.drop_nulls().unique()
    if not len(distinct):
        return pl.Series(["{}"] * len(meta), dtype=pl.String)
    cache = _CANONICAL_CACHE  # shared by threads (verify replays parts side by side): read and add only
    texts = distinct.to_list()
    found = {t: c for t in texts if (c := cache.get(t)) is not None}
    new = [t for t in texts if t not in found]
    if new:
        values = [orjson.loads(t) for t in new]
        for text, value in zip(new, values, strict=True):
            if not isinstance(value, dict):
                raise ValueError(f"metadata is not a JSON object: {text[:80]!r}")
        ordered = [orjson.dumps(v, option=orjson.OPT_SORT_KEYS).decode() for v in values]
        suspect = pl.Series(ordered, dtype=pl.String).str.contains(_MAYBE_NOT_CANONICAL).to_list()
        made = {text: canonical_json(value) if odd else sorted_text
                for text, value, sorted_text, odd in zip(new, values, ordered, suspect, strict=True)}
        if len(cache) + len(made) > _CACHE_LIMIT:  # bounded: start afresh
            cache.clear()
        cache.update(made)
        found.update(made)
    canonical = [found[t] for t in texts]
    return meta.replace_strict(distinct, pl.Series(canonical, dtype=pl.String), return_dtype=pl.String) \
        .fill_null("{}")


def canonical_events(df: pl.DataFrame) -> pl.Series:
    """The canonical text of each event of a frame in the project's frame
    schema (`axon_audit.model.schema.FRAME_SCHEMA`), vectorized; the same as
    `canonical_event` of each export object, decoded.

    Example:
        >>> from axon_audit.integrity.leaf import canonical_events
        >>> from axon_audit.model.schema import normalize_batch
        >>> df = normalize_batch([{"event_id": "evt_1", "timestamp": "2025-01-15T12:00:00Z", "operation": "store",
        ...                        "metadata": {"z": 1, "a": [0.5, 1e21]}, "duration_ms": 45.2}])
        >>> canonical_events(df)[0]
        '{"duration_ms":45.2,"entry_ids":[],"error_message":null,"event_id":"evt_1","metadata":{"a":[0.5,1e+21],"z":1},"operation":"STORE","session_id":null,"status":"SUCCESS","timestamp":"2025-01-15T12:00:00.000000Z","user_id":null}'
    """
    return _canonical_query(df).select(pl.col("canonical")).collect().to_series()


def _canonical_query(df: pl.DataFrame, *, export: bool = False) -> pl.LazyFrame:
    """A lazy query with the column ``canonical``, each event's canonical text, and
    with `export` also ``export``, its export-format object: both from the same
    field literals (`axon_audit.model.json_text`), built once. Lazily, so the
    engine splits the rows over the cores (half the eager time, measured), and the
    caller may go on in the same query (`leaf_hashes` hashes there)."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"the frame has no columns {missing}")
    texts = field_literals(df)
    canonical = {**texts, "duration_ms": pl.lit(_numbers(df["duration_ms"])),
                 "metadata": pl.lit(_metadata(df["metadata"]))}
    # The keys are ASCII: code-unit order is plain order.
    columns = [json_object(sorted(canonical), canonical).alias("canonical")]
    if export:
        columns.append(export_object(texts).alias("export"))
    return df.lazy().select(columns)


def export_texts(df: pl.DataFrame, threads: int | None = None) -> tuple[pl.Series | native.EventBuffers,
                                                                        Callable[[], np.ndarray]]:
    """`objects_and_leaves` in two steps, so a rotation's JSON lane can start writing
    while the leaves are hashed: the objects (or what writes them), and the call
    that gives the leaf hashes (the compiled path hashes then, over `threads`
    threads; the polars path has both from one query already).

    Example:
        >>> from axon_audit.integrity.leaf import export_texts, leaf_hashes
        >>> from axon_audit.model.schema import normalize_batch
        >>> df = normalize_batch([{"operation": "store"}])
        >>> objects, leaves = export_texts(df)
        >>> bool((leaves() == leaf_hashes(df)).all())
        True
    """
    if native.AVAILABLE:
        buffers = native.EventBuffers(df, _metadata(df["metadata"]), _numbers(df["duration_ms"]), export=True)
        return buffers, lambda: buffers.leaves(threads)
    objects, leaves = objects_and_leaves(df)
    return objects, lambda: leaves


def objects_and_leaves(df: pl.DataFrame) -> tuple[pl.Series | native.EventBuffers, np.ndarray]:
    """The export-format object text of each event (as `axon_audit.io.json_export.event_objects`)
    and its leaf hash (as `leaf_hashes`), their field texts made once for both.
    The objects come as a Series, or with the compiled path as the
    `native.EventBuffers` that write them (`lines`): a JSON document is written
    piece by piece from them, never held whole.

    Example:
        >>> from axon_audit.integrity import native
        >>> from axon_audit.integrity.leaf import leaf_hashes, objects_and_leaves
        >>> from axon_audit.io.json_export import event_objects
        >>> from axon_audit.model.schema import normalize_batch
        >>> df = normalize_batch([{"operation": "store", "user_id": f"u{i}"} for i in range(600)])
        >>> objects, leaves = objects_and_leaves(df)
        >>> texts = objects.lines(0, df.height, b"\\n").decode().split("\\n") if native.AVAILABLE else objects
        >>> list(texts) == event_objects(df).to_list(), bool((leaves == leaf_hashes(df)).all())
        (True, True)
    """
    if native.AVAILABLE:
        buffers = native.EventBuffers(df, _metadata(df["metadata"]), _numbers(df["duration_ms"]), export=True)
        return buffers, buffers.leaves()
    if df.height < BATCH_MIN:
        return _canonical_query(df, export=True).select("export").collect().to_series(), leaf_hashes(df)
    out = _canonical_query(df, export=True).select(
        "export", pl.concat_str(pl.lit("\x00"), pl.col("canonical")).chash.sha2_256().alias("leaf"),  # type: ignore[attr-defined]
    ).collect()
    return out["export"], hex_digests(out["leaf"])


def leaf_hashes(df: pl.DataFrame) -> np.ndarray:
    """The leaf hash of each event of a frame, SHA-256(0x00 || canonical text),
    as an (n, 32) uint8 array (row i: event i), vectorized.

    Example:
        >>> from axon_audit.integrity.leaf import event_leaf_hash, leaf_hashes
        >>> from axon_audit.model.schema import normalize_batch
        >>> df = normalize_batch([{"event_id": "evt_1", "timestamp": "2025-01-15T12:00:00Z", "operation": "store"}])
        >>> leaf_hashes(df)[0].tobytes() == event_leaf_hash({"event_id": "evt_1",
        ...     "timestamp": "2025-01-15T12:00:00.000000Z", "operation": "STORE", "user_id": None, "session_id": None,
        ...     "entry_ids": [], "metadata": {}, "status": "SUCCESS", "error_message": None, "duration_ms": None})
        True
    """
    if native.AVAILABLE:
        return native.EventBuffers(df, _metadata(df["metadata"]), _numbers(df["duration_ms"]), export=False).leaves()
    if df.height < BATCH_MIN:
        return sha256_values(canonical_events(df).to_arrow(), b"\x00")
    # One query: the texts are hashed where they are made (polars-hash, in parallel, without the GIL).
    query = _canonical_query(df).select(
        pl.concat_str(pl.lit("\x00"), pl.col("canonical")).chash.sha2_256())  # type: ignore[attr-defined]
    return hex_digests(query.collect().to_series())
