"""The write-ahead log's record format: segment files, records, and reading them back.

Layout: a folder of segment files ``wal-<epoch>.log``, one per epoch. Record
format (append-friendly; a crash can tear only the tail)::

    b"AW" | kind (1 byte) | payload length (u32 LE) | CRC-32 of payload (u32 LE) | payload

kind ``R``: an orjson list of buffer rows (`model.row` layout); kind ``F``: an
Arrow IPC stream of a hot frame (from `log_batch`). Recovery reads whole
records; a torn or corrupt region is skipped up to the next valid record and
its size is reported (and the torn tail is cut off the file).

The file ``released`` holds the last released epoch, so a logger opening an
emptied folder numbers on from there: an epoch number is never reused in a
folder (a live reader, `axon_audit.read.live_tail`, follows segments by number).
"""

from __future__ import annotations

import io
import os
import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pyarrow as pa

from axon_audit.io.atomic import atomic_write
from axon_audit.model.enums import EventStatus, OperationType
from axon_audit.model.schema import rows_to_frame

__all__ = ["MAGIC", "MAX_PAYLOAD", "Recovery", "decode_records", "encode_frame", "encode_frames", "encode_record",
           "encode_rows", "existing_epochs", "frame_too_large", "last_released", "mark_released", "recover",
           "row_too_large", "scan_segment", "segment_path"]

MAGIC = b"AW"
_HEADER = struct.Struct("<2scII")
#: The largest payload one record holds: its length is a u32 in the header.
MAX_PAYLOAD = 2**32 - 1
ROW_SLACK = 512  # an encoded row's bytes besides its texts: brackets, numbers, enum names, quotes, commas
_SEGMENT = re.compile(r"^wal-(\d{8})\.log$")
_RELEASED = "released"


def segment_path(folder: Path, epoch: int) -> Path:
    return folder / f"wal-{epoch:08d}.log"


def last_released(folder: Path) -> int:
    """The last epoch released in `folder` (0 if none was)."""
    try:
        return int((folder / _RELEASED).read_bytes())
    except (OSError, ValueError):
        return 0


def mark_released(folder: Path, epoch: int) -> None:
    """Record that epochs <= `epoch` are released (before their files go: the mark
    is never behind a deleted segment). Written whole and fsynced: one per export."""
    body = str(epoch).encode()
    atomic_write(folder / _RELEASED, lambda fh: fh.write(body))


def encode_record(kind: bytes, payload: bytes) -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"a write-ahead log record holds at most {MAX_PAYLOAD} bytes (u32 length), "
                         f"got {len(payload)}")
    return _HEADER.pack(MAGIC, kind, len(payload), zlib.crc32(payload)) + payload


def row_too_large(row: tuple[Any, ...]) -> int | None:
    """The encoded size of `row` if it cannot fit in one record, else None. Cheap on
    the logging path: the texts' lengths bound the size (orjson writes a character in
    at most 6 bytes, ``\\u00XX``); only a row near the limit is encoded to measure it."""
    chars = len(row[4] or "") + len(row[5] or "") + len(row[7] or "") + len(row[9] or "") + sum(map(len, row[6]))
    if 6 * chars + 3 * len(row[6]) + ROW_SLACK <= MAX_PAYLOAD:  # an entry id adds its quotes and comma
        return None
    size = len(orjson.dumps([row]))
    return size if size > MAX_PAYLOAD else None


def frame_too_large(df: pl.DataFrame) -> int | None:
    """The bytes of the largest row of `df` if one row cannot fit in one record,
    else None (a frame is split into records of whole rows, so only one row's size
    matters)."""
    if df.estimated_size() + ROW_SLACK <= MAX_PAYLOAD:
        return None
    texts = [pl.col(c).cast(pl.String).str.len_bytes().fill_null(0) for c, t in df.schema.items()
             if t in (pl.String, pl.Categorical) or isinstance(t, pl.Enum)]
    lists = [pl.col(c).list.eval(pl.element().cast(pl.String).str.len_bytes()).list.sum().fill_null(0)
             for c, t in df.schema.items() if isinstance(t, pl.List)]
    biggest = df.select(pl.max_horizontal(pl.sum_horizontal([*texts, *lists, pl.lit(ROW_SLACK)])).max()).item()
    return int(biggest) if biggest is not None and biggest > MAX_PAYLOAD else None


def encode_rows(rows: list[tuple[Any, ...]]) -> list[bytes]:
    """Row records holding `rows` in order, split so each payload fits the u32 length."""
    payload = orjson.dumps(rows)
    if len(payload) <= MAX_PAYLOAD or len(rows) == 1:
        return [encode_record(b"R", payload)]  # one row too large raises (refused at the door before)
    half = len(rows) // 2
    return encode_rows(rows[:half]) + encode_rows(rows[half:])


def encode_frames(df: pl.DataFrame) -> list[bytes]:
    """Frame records holding `df`'s rows in order, split so each payload fits."""
    payload = encode_frame(df)
    if len(payload) <= MAX_PAYLOAD or df.height <= 1:
        return [encode_record(b"F", payload)]
    half = df.height // 2
    return encode_frames(df.slice(0, half)) + encode_frames(df.slice(half))


def encode_frame(df: pl.DataFrame) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, df.to_arrow().schema) as writer:
        writer.write_table(df.to_arrow())
    return sink.getvalue()


# Checks each value (a KeyError is a corrupt record) and keeps the row's plain str (model.row).
_OPS = {m.value: m.value for m in OperationType}
_STATUSES = {m.value: m.value for m in EventStatus}


def _decode_rows(payload: bytes) -> list[tuple]:
    # Recovery only: per-row Python restores the exact tuples `log()` made.
    rows = orjson.loads(payload)
    return [
        (r[0], r[1], r[2], _OPS[r[3]], r[4], r[5], tuple(r[6]), r[7], _STATUSES[r[8]], r[9], r[10])
        for r in rows
    ]


def _decode_frame(payload: bytes) -> pl.DataFrame:
    with pa.ipc.open_stream(payload) as reader:
        df = pl.from_arrow(reader.read_all())
    assert isinstance(df, pl.DataFrame)
    return df


def decode_records(records: list[tuple[str, bytes]]) -> list[pl.DataFrame]:
    """Records (as `scan_segment` gives them) as hot frames, in order: the rows of
    consecutive ``R`` records make one frame (one per record cost ~0.6 ms: a
    logger under ``sync="always"`` writes one record per fsync), ``F`` frames go as they are."""
    out: list[pl.DataFrame] = []
    rows: list[tuple] = []
    for kind, payload in records:  # per record, not per event
        if kind == "R":
            rows += _decode_rows(payload)
            continue
        if rows:
            out.append(rows_to_frame(rows))
            rows = []
        out.append(_decode_frame(payload))
    if rows:
        out.append(rows_to_frame(rows))
    return out


@dataclass
class Recovery:
    """What a WAL folder held: per epoch, the rows and frames in log order."""

    records: list[tuple[int, str, Any]] = field(default_factory=list)  # (epoch, "R"|"F", rows|frame)
    epochs: list[int] = field(default_factory=list)
    dropped_bytes: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def events(self) -> int:
        return sum(len(p) if k == "R" else p.height for _, k, p in self.records)


def scan_segment(data: bytes) -> tuple[list[tuple[str, bytes]], list[tuple[int, int]], int]:
    """Whole records of one segment; the (offset, length) of skipped regions; the
    end of the last whole record."""
    out: list[tuple[str, bytes]] = []
    skipped: list[tuple[int, int]] = []
    pos, n, good_end = 0, len(data), 0
    hs = _HEADER.size
    while pos < n:
        ok = False
        if pos + hs <= n:
            magic, kind, length, crc = _HEADER.unpack_from(data, pos)
            end = pos + hs + length
            if magic == MAGIC and kind in (b"R", b"F") and end <= n and zlib.crc32(data[pos + hs:end]) == crc:
                out.append((kind.decode(), data[pos + hs:end]))
                pos = good_end = end
                ok = True
        if not ok:
            nxt = data.find(MAGIC, pos + 1)
            while nxt != -1:  # resynchronize on the next header whose CRC checks
                if nxt + hs <= n:
                    magic, kind, length, crc = _HEADER.unpack_from(data, nxt)
                    end = nxt + hs + length
                    if kind in (b"R", b"F") and end <= n and zlib.crc32(data[nxt + hs:end]) == crc:
                        break
                nxt = data.find(MAGIC, nxt + 1)
            stop = n if nxt == -1 else nxt
            skipped.append((pos, stop - pos))
            pos = stop
    return out, skipped, good_end


def existing_epochs(folder: Path) -> list[int]:
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _SEGMENT.match(p.name)))


def recover(folder: Path, skip_epochs: set[int] | frozenset[int] = frozenset()) -> Recovery:
    """Read every segment (except `skip_epochs`), oldest first. A torn tail is cut
    off its file so later appends and recoveries start from a whole record."""
    rec = Recovery()
    for epoch in existing_epochs(folder):
        if epoch in skip_epochs:
            continue
        path = segment_path(folder, epoch)
        data = path.read_bytes()
        records, skipped, good_end = scan_segment(data)
        rec.epochs.append(epoch)
        for kind, payload in records:
            rec.records.append((epoch, kind, _decode_rows(payload) if kind == "R" else _decode_frame(payload)))
        for off, length in skipped:
            rec.dropped_bytes += length
            where = "torn tail" if off + length == len(data) else "corrupt region"
            rec.problems.append(f"{path.name}: {where} of {length} bytes at offset {off} dropped")
        if skipped and skipped[-1][0] + skipped[-1][1] == len(data):
            with open(path, "r+b") as fh:  # cut the torn tail so the next append starts clean
                fh.truncate(good_end)
                os.fsync(fh.fileno())
    return rec


