"""Bulk input at the door: the column rules `normalize_batch` applies to every batch.

A batch comes as a list of dicts (turned into columns by
`axon_audit.model.dict_columns`, with the same `axon_audit.model.coerce`
functions `log` uses, so the two agree by construction) or as a polars/Arrow
frame (checked here column by column: dtypes, ranges, nulls). Nothing is
coerced into something else: a value that would not read back as given is
refused, naming the row (``events[3]: ...`` for a dict, ``events: row 3: ...``
for a column). The rules themselves are listed in
`axon_audit.model.coerce`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from axon_audit.exceptions import AuditTypeError, AuditValueError
from axon_audit.model.coerce import metadata_from_json
from axon_audit.model.timestamps import MAX_US, MIN_US, RANGE_TEXT, local_zone, naive_time_rule, naive_to_us

__all__ = [
    "at_dict",
    "check_arrow_times",
    "duration_column",
    "entries_column",
    "enum_column",
    "metadata_column",
    "refuse_duplicate_ids",
    "timestamp_column",
]

_T = TypeVar("_T")
_US_PER = {"s": 1_000_000, "ms": 1000, "us": 1}  # per unit; every int64 of nanoseconds is within range


def at_dict(i: int, fn: Callable[..., _T], *args: Any) -> _T:
    """`fn(*args)`, its error prefixed with the dict's row (``events[i]: ...``).

    Example:
        >>> from axon_audit.model.coerce import check_text
        >>> from axon_audit.model.door import at_dict
        >>> at_dict(3, check_text, 5, "user_id")
        Traceback (most recent call last):
        ...
        axon_audit.exceptions.AuditTypeError: events[3]: user_id must be a str or None, got int
    """
    try:
        return fn(*args)
    except (AuditValueError, AuditTypeError) as exc:
        raise type(exc)(f"events[{i}]: {exc}") from None


def _at_row(rows: list[int] | None, i: int, fn: Callable[..., _T], *args: Any) -> _T:
    """`fn(*args)` for column row `i`, its error prefixed with that row."""
    try:
        return fn(*args)
    except AuditValueError as exc:
        raise AuditValueError(f"events: row {rows[i] if rows is not None else i}: {exc}") from None


def _row_error(rows: pl.Series, what: str, values: Iterable[Any] = ()) -> AuditValueError:
    i = int(rows.arg_true()[0])
    shown = list(values)
    return AuditValueError(f"events: row {i}: {what}" + (f", got {shown[i]!r}" if shown else ""))


# --------------------------------------------------------------------------- columns


def check_arrow_times(data: pa.Table | pa.RecordBatch) -> None:
    """Refuse an Arrow `timestamp` column outside the storable range before polars
    converts it (`pl.from_arrow` wraps an out-of-range seconds value silently)."""
    if "timestamp" not in data.schema.names:
        return
    col = data.column("timestamp")
    if not pa.types.is_timestamp(col.type):
        return
    if col.type.unit == "ns":
        return
    per = _US_PER[col.type.unit]
    lo, hi = MIN_US // per, MAX_US // per  # MIN_US is whole seconds: exact in every unit
    raw = pc.cast(col, pa.int64())
    bad = pc.or_(pc.less(raw, pa.scalar(lo)), pc.greater(raw, pa.scalar(hi)))
    if pc.any(bad).as_py():
        i = pc.index(bad, True).as_py()
        raise AuditValueError(f"events: row {i}: timestamp {raw[i].as_py()} {col.type.unit} since 1970 is "
                              f"outside {RANGE_TEXT}")


_ISO = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})?$"


def _localized(naive: pl.Series, rule: str, rows: list[int] | None) -> pl.Series:
    """A zone-less Datetime(us) column read by the naive-time rule, in UTC: local
    time through the IANA zone (a repeated hour: the earlier instant; a skipped
    one: refused, naming the row), or UTC."""
    if rule == "utc" or naive.null_count() == naive.len():
        return naive.dt.replace_time_zone("UTC")
    zone = local_zone()
    if zone.name == "UTC":  # a named zone costs ~0.2 s per million rows, UTC ~0.01 s
        return naive.dt.replace_time_zone("UTC")
    local = None
    if zone.name is not None:
        try:
            local = naive.dt.replace_time_zone(zone.name, ambiguous="earliest", non_existent="null")
        except pl.exceptions.PolarsError:  # a zone Python knows and polars does not
            local = None
    if local is None:  # no IANA name (see local_zone) or none polars knows: the same rule, row by row
        values = naive.to_list()
        us = [None if v is None else _at_row(rows, i, naive_to_us, v, rule) for i, v in enumerate(values)]
        return pl.Series(naive.name, us, dtype=pl.Int64).cast(pl.Datetime("us", "UTC"))
    gap = naive.is_not_null() & local.is_null()
    if gap.any():
        i = int(gap.arg_true()[0])
        raise AuditValueError(f"events: row {rows[i] if rows is not None else i}: timestamp {naive[i].isoformat()} "
                              f"does not exist in local time ({zone.name}: the clock skipped it at a "
                              "daylight-saving change); give it a UTC offset or use naive_time='utc'")
    return local.dt.convert_time_zone("UTC")


def timestamp_column(ts: pl.Series, rows: list[int] | None = None, naive_time: Any = None) -> pl.Series:
    """A timestamp column as Datetime(us, UTC), nulls kept (they mean "now").

    ISO strings: ``YYYY-MM-DDTHH:MM:SS[.fraction][Z|±HH:MM]`` (``T`` or a space).
    Datetimes of any unit and zone. Without an offset or zone, a time follows
    `naive_time` (`axon_audit.model.timestamps`: local time by default).
    Refused, naming the row: anything else, a time outside `RANGE_TEXT`, a
    local time skipped at a DST change, and a fraction finer than a microsecond.
    """
    name = "timestamp"
    rule = naive_time_rule(naive_time)

    def fail(mask: pl.Series, what: str) -> AuditValueError:
        i = int(mask.arg_true()[0])
        at = rows[i] if rows is not None else i
        # The raw value: a datetime this far out has no Python `datetime` to show.
        shown = repr(ts[i]) if ts.dtype == pl.String else f"{ts.to_physical()[i]} {unit} since 1970"
        return AuditValueError(f"events: row {at}: timestamp {shown} {what}")

    unit = getattr(ts.dtype, "time_unit", "us")

    dtype = ts.dtype
    if dtype == pl.Null:
        return pl.Series(name, [None] * ts.len(), dtype=pl.Datetime("us", "UTC"))
    if dtype in (pl.String, pl.Categorical):
        ts = ts.cast(pl.String)
        text = ts.str.strip_chars()
        shaped = text.str.contains(_ISO)
        bad = ts.is_not_null() & ~shaped.fill_null(False)
        if bad.any():
            raise fail(bad, "is not an ISO 8601 date-time (YYYY-MM-DDTHH:MM:SS[.ffffff][Z|±HH:MM])")
        fine = text.str.contains(r"\.\d{6}\d*[1-9]")
        if fine.fill_null(False).any():
            raise fail(fine.fill_null(False), "has a fraction finer than a microsecond, which would be cut off")
        norm = text.str.replace(r"[Zz]$", "+00:00").str.replace(" ", "T", literal=True, n=1)
        with_zone = norm.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%z", time_unit="us", time_zone="UTC", strict=False)
        no_zone = norm.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", time_unit="us", strict=False)
        parsed = with_zone.fill_null(_localized(no_zone.set(with_zone.is_not_null(), None), rule, rows))
        bad = ts.is_not_null() & parsed.is_null()
        if bad.any():
            raise fail(bad, f"is not a valid date-time within {RANGE_TEXT}")
        ts = parsed
    elif isinstance(dtype, pl.Datetime):
        raw = ts.to_physical()
        if dtype.time_unit == "ns":
            fine = (raw % 1000) != 0
            if fine.fill_null(False).any():
                raise fail(fine.fill_null(False), "has nanoseconds, which would be cut off (stored to the µs)")
        else:  # checked in its own unit: converting first could overflow
            per = _US_PER[dtype.time_unit]
            bad = ((raw < MIN_US // per) | (raw > MAX_US // per)).fill_null(False)
            if bad.any():
                raise fail(bad, f"is outside {RANGE_TEXT}")
        ts = ts.dt.cast_time_unit("us")
        ts = _localized(ts, rule, rows) if dtype.time_zone is None else ts.dt.convert_time_zone("UTC")
    else:
        raise AuditTypeError(f"events: timestamp must be datetimes or ISO strings, got {dtype}")
    us = ts.dt.epoch("us")
    bad = ((us < MIN_US) | (us > MAX_US)).fill_null(False)
    if bad.any():
        raise fail(bad, f"is outside {RANGE_TEXT}")
    return ts.alias(name)


def enum_column(s: pl.Series, dtype: pl.Enum, coerce: Callable[[Any], Any]) -> pl.Series:
    """A String/Categorical/Enum column as `dtype`, each distinct spelling read by
    `log`'s own coercion (`coerce_operation` / `coerce_status`)."""
    name = s.name
    if s.dtype == dtype:  # made from Arrow's canonical names already (model.arrow_intake)
        return s
    if not isinstance(s.dtype, pl.Enum) and s.dtype not in (pl.String, pl.Categorical):
        raise AuditTypeError(f"events: {name} must be strings, got {s.dtype}")
    s = s.cast(pl.String)
    fast = s.cast(dtype, strict=False)  # canonical spellings: one hash lookup each
    if fast.null_count() == s.null_count():
        return fast.alias(name)
    distinct = s.drop_nulls().unique().to_list()
    canon = {}
    for v in distinct:  # per distinct spelling (a handful), not per row
        try:
            canon[v] = coerce(v).value
        except AuditValueError as exc:
            raise AuditValueError(f"events: row {int((s == v).arg_true()[0])}: {exc}") from None
    return s.replace_strict(canon, default=None, return_dtype=pl.String).cast(dtype).alias(name)


_JSON_LEAVES = (pl.String, pl.Categorical, pl.Boolean, pl.Null, pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8,
                pl.UInt16, pl.UInt32, pl.UInt64)


def _non_finite(s: pl.Series, path: str) -> pl.Series:
    """Rows where a struct/list metadata column holds NaN or infinity (polars' JSON
    encoder would write null), after refusing leaf types JSON cannot hold as given."""
    dtype = s.dtype
    if isinstance(dtype, pl.Struct):
        flags = [_non_finite(s.struct.field(f.name), f"{path}[{f.name!r}]") for f in dtype.fields]
        out = pl.Series([False] * s.len())
        for flag in flags:
            out = out | flag
        return out
    if isinstance(dtype, (pl.List, pl.Array)):
        inner = s.cast(pl.List(dtype.inner)) if isinstance(dtype, pl.Array) else s
        flat = pl.DataFrame({"row": pl.int_range(0, s.len(), eager=True), "v": inner}).explode("v")
        flat = flat.with_columns(bad=_non_finite(flat["v"], f"{path}[]"))
        per_row = flat.group_by("row").agg(pl.col("bad").any())
        every = pl.DataFrame({"row": pl.int_range(0, s.len(), eager=True)})  # rows explode dropped (empty lists)
        return every.join(per_row, on="row", how="left").sort("row")["bad"].fill_null(False)
    if dtype in (pl.Float32, pl.Float64):
        return (~s.is_finite()).fill_null(False)
    if isinstance(dtype, pl.Enum) or dtype in _JSON_LEAVES:
        return pl.Series([False] * s.len())
    raise AuditTypeError(f"events: {path} has dtype {dtype}, which JSON metadata cannot hold as given "
                         "(strings, booleans, integers, floats, lists and structs of these)")


def _check_struct(meta: pl.Series, path: str) -> None:
    bad = _non_finite(meta, path)
    if bad.any():
        raise _row_error(bad, f"{path} holds NaN or infinity (refused: JSON has no such number)")


def metadata_column(meta: pl.Series, distinct: list[Any] | None = None) -> pl.Series:
    """Metadata (JSON object text or structs) in the stored form: `log()`'s compact
    text of the parsed object, None for `{}`; checked once per *distinct* text.

    Audit metadata repeats heavily (a workload of 1 M events has ~2 000 distinct
    texts), so this is far cheaper than parsing every row (DuckDB's json_valid
    over all rows took ~0.9 us/event).
    """
    if isinstance(meta.dtype, pl.Struct):
        _check_struct(meta, "metadata")
        meta = meta.struct.json_encode()
    elif meta.dtype not in (pl.String, pl.Null, pl.Categorical):
        raise AuditTypeError(f"events: metadata must be JSON object text or structs, got {meta.dtype}")
    meta = meta.cast(pl.String)
    changed: dict[str, str | None] = {}
    if distinct is None:  # (given by Arrow's own unique, which is faster than polars' over the views)
        distinct = meta.unique().to_list()
    for text in distinct:  # per distinct value, not per event
        if text is None:
            continue
        try:
            stored = metadata_from_json(text)
        except AuditValueError as exc:
            rows = meta == text
            raise AuditValueError(f"events: row {int(rows.arg_true()[0])}: {exc}") from None
        if stored != text:
            changed[text] = stored
    if changed:
        meta = meta.replace(list(changed), list(changed.values()))
    return meta.alias("metadata")


def duration_column(dur: pl.Series) -> pl.Series:
    """Durations as float64: finite and >= 0; ints only where a float64 holds them exactly."""
    if dur.dtype == pl.Null:
        return dur.cast(pl.Float64)
    if dur.dtype == pl.Boolean or isinstance(dur.dtype, pl.Decimal) or not dur.dtype.is_numeric():
        raise AuditTypeError(f"events: duration_ms must be numbers (int or float), got {dur.dtype}")
    as_float = dur.cast(pl.Float64)
    if dur.dtype.is_integer():
        back = as_float.cast(dur.dtype, strict=False)
        inexact = (dur.is_not_null() & (back.is_null() | (back != dur))).fill_null(False)
        if inexact.any():
            raise _row_error(inexact, "duration_ms cannot be stored exactly as a float64", dur.to_list())
    bad = (as_float.is_not_null() & ~((as_float >= 0) & as_float.is_finite())).fill_null(False)
    if bad.any():
        raise _row_error(bad, "duration_ms must be finite and >= 0", as_float.to_list())
    return as_float.alias("duration_ms")


def entries_column(entries: pl.Series) -> pl.Series:
    """Lists of strings, a null list as []; a null inside a list is refused."""
    n = entries.len()
    if entries.dtype == pl.Null:
        return pl.Series("entry_ids", [[]] * n, dtype=pl.List(pl.String))
    if not (isinstance(entries.dtype, pl.List) and entries.dtype.inner in (pl.String, pl.Null, pl.Categorical)):
        raise AuditTypeError(f"events: entry_ids must be lists of strings, got {entries.dtype}")
    entries = entries.cast(pl.List(pl.String))
    # The flattened values' null count finds a hole in ~3 ms per 1 M rows (list.drop_nulls rebuilt
    # the column: 0.35 s, half of log_batch's time); the row is looked for only when there is one.
    if entries.explode(empty_as_null=False, keep_nulls=False).null_count():
        holes = (entries.list.len() != entries.list.drop_nulls().list.len()).fill_null(False)
        raise _row_error(holes, "entry_ids holds a null; every entry id must be a str")
    return entries.fill_null([]).alias("entry_ids")


def refuse_duplicate_ids(eid: pl.Series) -> None:
    """Every event id of a batch is its own: empty or repeated ids are refused."""
    if (eid.str.len_bytes() == 0).any():
        raise AuditValueError("events: event_id must not be empty")
    dup = eid.is_duplicated()
    if dup.any():
        i = int(dup.arg_true()[0])
        raise AuditValueError(f"events: row {i}: event_id {eid[i]!r} occurs more than once in the batch")
