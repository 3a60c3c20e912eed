"""Replaying an export log from its files: the leaf hashes of each listed
Parquet part in log order, as `verify` checks them and `prove` proves them.

Two kinds of later manifest entry change what a file holds, and say so:

* ``erasure`` (`compliance.erasure`): a file rewritten for a data subject. Its
  ``replaced`` maps each rewritten file to its new ``sha256``/``bytes``/``rows``;
  ``leaves`` maps the log position of every event it altered or removed to the
  event's original leaf hash (hex), and ``deleted`` lists the positions whose
  events left their file. The tree, and every checkpoint and proof handed out
  before, stay valid; the altered events are covered by their file's SHA-256.
* ``retention`` (`compliance.retention`): files deleted; ``covers`` maps each
  deleted Parquet part to the perfect subtrees over its log range,
  ``[[height, hash hex], ...]`` in order, so the tree still replays without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from axon_audit.integrity.leaf import leaf_hashes
from axon_audit.model.schema import from_arrow

__all__ = ["Overrides", "file_leaves", "overrides_of", "read_part"]


@dataclass
class Overrides:
    """What the erasure and retention entries of one manifest say about its files."""

    replaced: dict[str, dict[str, Any]] = field(default_factory=dict)
    redacted: dict[int, bytes] = field(default_factory=dict)
    deleted: set[int] = field(default_factory=set)
    covers: dict[str, list[tuple[int, bytes]]] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)


def overrides_of(entries: list[dict[str, Any]]) -> Overrides:
    """Collect the erasure and retention entries of a manifest (later ones win)."""
    ov = Overrides()
    for e in entries:
        kind = e.get("kind")
        if kind == "erasure" and "leaves" in e:  # the log's erasure (the old chain re-listed files instead)
            for name, current in e.get("replaced", {}).items():
                ov.replaced[name] = current
            ov.redacted.update({int(p): bytes.fromhex(h) for p, h in e.get("leaves", {}).items()})
            ov.deleted.update(int(p) for p in e.get("deleted", []))
        elif kind == "retention":
            ov.removed.update(e.get("removed", []))
            for name, cover in e.get("covers", {}).items():
                ov.covers[name] = [(int(h), bytes.fromhex(x)) for h, x in cover]
    return ov


def read_part(data: bytes) -> pl.DataFrame:
    """The events of a Parquet part's bytes, in file order (an old part's chain column dropped)."""
    table = pq.read_table(pa.BufferReader(data))
    if "chain" in table.column_names:
        table = table.drop_columns(["chain"])
    return from_arrow(table)


def file_leaves(df: pl.DataFrame, entry: dict[str, Any], ov: Overrides) -> np.ndarray:
    """The leaf hashes of a file entry's log range ``[first, end)``: computed from
    its current rows `df`, with the original leaves of erased events put back.
    Raises ValueError when the rows cannot fill the range."""
    first, end = (int(x) for x in entry["leaves"])
    present = np.arange(first, end, dtype=np.int64)
    gone = [p for p in ov.deleted if first <= p < end]
    if gone:
        present = present[~np.isin(present, np.asarray(gone, np.int64))]
    if len(present) != df.height:
        raise ValueError(f"{df.height} events, its log range holds {len(present)}")
    out = np.empty((end - first, 32), np.uint8)
    out[present - first] = leaf_hashes(df)
    for p, leaf in ov.redacted.items():
        if first <= p < end:
            out[p - first] = np.frombuffer(leaf, np.uint8)
    return out
