"""Export folders written before the export log (manifest format
``axon_audit.manifest/1``): their per-event hash chain, still checked by `verify`.

There, per event, ``chain = sha256(previous chain || event text)`` where the
event text is the export format's JSON object of the event (fixed keys only)
and the first previous value of a folder is 64 zeros; JSON exports carry it as
an extra ``"chain"`` key, Parquet parts as a ``chain`` column, and each file's
manifest entry its ``chain_start`` and ``chain_end``. New exports no longer
write a chain (the log's leaves need nothing stored per event).
"""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from axon_audit.io.json_export import event_objects
from axon_audit.model.schema import from_arrow

__all__ = ["GENESIS", "chain_digests", "check_json", "check_parquet", "is_v1_entry"]

GENESIS = "0" * 64
_CHAIN_SUFFIX_LEN = len(',"chain":"') + 64 + len('"}')


def is_v1_entry(entry: dict[str, Any]) -> bool:
    """Whether a manifest file entry belongs to the old chain (it has ``chain_start``)."""
    return "chain_start" in entry


def _string_buffers(texts: pl.Series) -> tuple[bytes, list[int]]:
    arr = texts.to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.large_string())
    n = len(arr)
    _, offs, data = arr.buffers()
    offsets = np.frombuffer(offs, dtype=np.int64)[arr.offset : arr.offset + n + 1]
    return (data.to_pybytes() if data is not None else b""), offsets.tolist()


def chain_digests(texts: pl.Series, start_hex: str) -> list[bytes]:
    """The chained SHA-256 of each text: ``h_i = sha256(h_{i-1} + text_i)``.

    Sequential by nature (each link needs the previous one), so one hashlib call
    per event: the old format's cost, paid only when checking old folders.

    Example:
        >>> import hashlib, polars as pl
        >>> from axon_audit.integrity.chain_v1 import GENESIS, chain_digests
        >>> chain_digests(pl.Series(["a"]), GENESIS)[0] == hashlib.sha256(bytes(32) + b"a").digest()
        True
    """
    data, offs = _string_buffers(texts)
    sha = hashlib.sha256
    h = bytes.fromhex(start_hex)
    out: list[bytes] = []
    push = out.append
    for a, b in itertools.pairwise(offs):
        h = sha(h + data[a:b]).digest()
        push(h)
    return out


def _event_id_of(line: bytes, i: int) -> str:
    try:
        return str(orjson.loads(line).get("event_id")) + f" (event #{i})"
    except Exception:  # noqa: BLE001 - the line itself is damaged
        return f"#{i} (unparseable)"


def check_json(data: bytes, entry: dict[str, Any], problems: list[str]) -> int:
    """Chain-check an old JSON export line by line (one event object per line);
    return how many events were checked."""
    name = entry["file"]
    lines = data.split(b"\n")
    body = [ln[:-1] if ln.endswith(b",") else ln for ln in lines[1:-2]] if len(lines) >= 3 else []
    if len(lines) < 3 or not lines[0].startswith(b'{"events": [') or not lines[-2].startswith(b"]"):
        problems.append(f"{name}: not an axon_audit JSON export (layout altered)")
        return 0
    h = bytes.fromhex(entry["chain_start"])
    sha = hashlib.sha256
    for i, ln in enumerate(body):
        tail = ln[-_CHAIN_SUFFIX_LEN:]
        ok = tail.startswith(b',"chain":"') and tail.endswith(b'"}')
        if ok:
            h = sha(h + ln[:-_CHAIN_SUFFIX_LEN] + b"}").digest()
            ok = tail[10:74] == h.hex().encode()
        if not ok:
            problems.append(f"{name}: event {_event_id_of(ln, i)}: hash chain broken "
                            "(event altered, deleted, inserted or reordered at or before it)")
            return i
    if len(body) != entry["rows"]:
        problems.append(f"{name}: {len(body)} events, the manifest says {entry['rows']} (events removed or added)")
    elif body and h.hex() != entry["chain_end"]:
        problems.append(f"{name}: last event's chain does not match the manifest (tail altered)")
    return len(body)


def check_parquet(data: bytes, entry: dict[str, Any], problems: list[str]) -> int:
    """Chain-check an old Parquet part; return how many events were checked."""
    name = entry["file"]
    try:
        table = pq.read_table(pa.BufferReader(data))
        df = from_arrow(table.drop_columns(["chain"]) if "chain" in table.column_names else table)
    except Exception as exc:  # noqa: BLE001 - any read failure is a finding
        problems.append(f"{name}: cannot be read as Parquet ({exc})")
        return 0
    if "chain" not in table.column_names:
        problems.append(f"{name}: has no chain column")
        return 0
    stored = table.column("chain").to_pylist()
    computed = chain_digests(event_objects(df), entry["chain_start"])
    bad = next((i for i, (s, c) in enumerate(zip(stored, computed, strict=False)) if s != c.hex()), None)
    if bad is not None:
        problems.append(f"{name}: event {df['event_id'][bad]} (row {bad}): hash chain broken "
                        "(event altered, deleted, inserted or reordered at or before it)")
        return bad
    if df.height != entry["rows"]:
        problems.append(f"{name}: {df.height} events, the manifest says {entry['rows']} (events removed or added)")
    elif computed and computed[-1].hex() != entry["chain_end"]:
        problems.append(f"{name}: last event's chain does not match the manifest (tail altered)")
    return df.height
