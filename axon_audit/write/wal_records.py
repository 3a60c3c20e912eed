"""The write-ahead log's record format: segment files, records, and reading them back.

Layout: a folder of segment files ``wal-<epoch>.log``, one per epoch. Record
format (append-friendly; a crash can tear only the tail)::

    b"AW" | kind (1 byte) | payload length (u32 LE) | CRC-32 of payload (u32 LE) | payload

kind ``R``: an orjson list of buffer rows (`model.row` layout); kind ``F``: an
Arrow IPC stream of a hot frame (from `log_batch`). Recovery reads whole
records; a torn or corrupt region is skipped up to the next valid record and
its size is reported (and the torn tail is cut off the file).
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

from axon_audit.model.enums import EventStatus, OperationType

__all__ = ["MAGIC", "Recovery", "encode_frame", "encode_record", "existing_epochs", "recover", "scan_segment",
           "segment_path"]

MAGIC = b"AW"
_HEADER = struct.Struct("<2scII")
_SEGMENT = re.compile(r"^wal-(\d{8})\.log$")


def segment_path(folder: Path, epoch: int) -> Path:
    return folder / f"wal-{epoch:08d}.log"


def encode_record(kind: bytes, payload: bytes) -> bytes:
    return _HEADER.pack(MAGIC, kind, len(payload), zlib.crc32(payload)) + payload


def encode_frame(df: pl.DataFrame) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, df.to_arrow().schema) as writer:
        writer.write_table(df.to_arrow())
    return sink.getvalue()


_OPS = {m.value: m for m in OperationType}
_STATUSES = {m.value: m for m in EventStatus}


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


