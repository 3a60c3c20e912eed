"""One export file as erasure reads and rewrites it: its events, the rewrite of
the subject out of them, and the file's new encoding (the rotation's own), for
local folders and object-store lakes alike (`compliance.erasure`,
`compliance.lake_erasure`; retention reads JSON documents here too)."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from axon_audit.compliance.erasure_rewrite import SubjectRewrite as _Rewriter
from axon_audit.exceptions import ArchiveError, AuditValueError
from axon_audit.integrity import chain_v1
from axon_audit.integrity.leaf import leaf_hashes
from axon_audit.integrity.replay import Overrides, read_part
from axon_audit.io.json_export import write_json_stream
from axon_audit.io.location import Location
from axon_audit.io.parquet import parquet_table as _table_of
from axon_audit.io.parquet import parquet_writer as _parquet_writer
from axon_audit.model.schema import COLUMNS, EMPTY_FRAME, normalize_batch
from axon_audit.model.timestamps import parse_timestamp

__all__ = ["Rewrite", "check_columns", "file_writer", "load_plain", "plan_file"]

def check_columns(path: Path | Location, names: Iterable[str]) -> None:
    extra = sorted(set(names) - set(COLUMNS))
    if extra:
        raise ArchiveError(f"{path}: erasure cannot rewrite a file with columns it does not know: {extra}")


def file_writer(kind: str, df: pl.DataFrame, exported: int | None) -> Callable[[IO[bytes]], object]:
    """The writer of an erased file: the rotation's encoding (a JSON document keeps its `exported_at`)."""
    if kind == "parquet":
        return _parquet_writer(_table_of(df))
    return functools.partial(write_json_stream, df=df, exported_at_us=exported)


def load_plain(data: bytes, path: Path | Location, kind: str, chain: bool = True) -> tuple[pl.DataFrame, int | None]:
    """An export file's events in file order (`chain`: an old file's chain dropped) and a document's `exported_at`."""
    drop = {"chain"} if chain else set()
    if kind == "parquet":
        check_columns(path, set(pq.read_schema(pa.BufferReader(data)).names) - drop)
        return read_part(data), None
    try:
        doc = orjson.loads(data)
        events = [{k: v for k, v in e.items() if k not in drop} for e in doc["events"]]
        exported = parse_timestamp(doc["exported_at"], "exported_at") if doc.get("exported_at") else None
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, AuditValueError) as exc:
        raise ArchiveError(f"{path}: not an export document ({exc})") from None
    check_columns(path, {k for e in events for k in e})
    return (normalize_batch(events) if events else EMPTY_FRAME.clear()), exported


@dataclass
class Rewrite:
    """A sealed file to rewrite: original bytes (put back on failure), new events, altered events' original leaves."""

    name: str
    kind: str
    data: bytes
    new: pl.DataFrame
    exported: int | None
    altered: dict[int, bytes]


def plan_file(root: Path | Location, e: dict[str, Any], ov: Overrides, fn: _Rewriter) -> Rewrite | None:
    """What erasing changes in one listed file (None: nothing, or the file is gone).
    Raises for a file that cannot be erased append-only (see `_SealedErasure`)."""
    name, kind = e["file"], e["kind"]
    data = (root / name).read_bytes() if (root / name).is_file() else None  # missing: verify names it
    if data is None or (kind == "json" and not any(n in data for n in fn.needles)):  # a byte search tells
        return None
    df, exported = load_plain(data, root / name, kind)
    new = fn(df)
    if new.equals(df):
        return None
    if chain_v1.is_v1_entry(e):
        raise ArchiveError(f"{root}: {name} holds the subject and is an old hash-chained export (manifest format "
                           "/1, its entry has chain_start); erasure no longer re-chains such files, which would "
                           "rewrite the manifest's earlier entries (it is append-only now); nothing was changed")
    if hashlib.sha256(data).hexdigest() != ov.replaced.get(name, e).get("sha256"):
        raise AuditValueError(f"{root}: {name} differs from the manifest's SHA-256 (modified or replaced); erasing "
                              "it would seal the altered file as genuine, so nothing was changed (run verify)")
    first, end = (int(x) for x in e["leaves"])
    if len(present := [p for p in range(first, end) if p not in ov.deleted]) != df.height:
        raise AuditValueError(f"{root}: {name} holds {df.height} events, its log range {len(present)} (run verify)")
    old = leaf_hashes(df)
    changed = np.flatnonzero((old != leaf_hashes(new)).any(axis=1)).tolist()
    # An event erased before keeps the leaf it was logged with, not the one it had since.
    altered = {present[i]: ov.redacted.get(present[i], old[i].tobytes()) for i in changed}
    return Rewrite(name, kind, data, new, exported, altered)
