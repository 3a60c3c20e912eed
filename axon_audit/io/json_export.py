"""The seed's JSON export format: one document ``{"events": [...], "total_events": n,
"exported_at": "..."}`` with one event object per line.

`event_objects` makes each event's object text (vectorized). `write_json_export` writes a document
atomically to a local path, or as one upload to object storage.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Protocol, overload

import polars as pl

from axon_audit.exceptions import ExportError
from axon_audit.io.atomic import atomic_write_hashed
from axon_audit.io.layout import unique_object
from axon_audit.io.location import Location
from axon_audit.model.json_text import export_object, field_literals
from axon_audit.model.timestamps import format_us, now_us

__all__ = ["JSON_PIECE_ROWS", "ObjectLines", "event_objects", "write_json_export", "write_json_stream"]

JSON_PIECE_ROWS = 200_000
NATIVE_PIECE_ROWS = 32_768


def event_objects(df: pl.DataFrame) -> pl.Series:
    """One JSON object text per event, the fixed keys in the export order
    (vectorized; the object is defined in `axon_audit.model.json_text.export_object`).

    Example:
        >>> from axon_audit.io.json_export import event_objects
        >>> from axon_audit.model.schema import normalize_batch
        >>> df = normalize_batch([{"event_id": "evt_1", "timestamp": "2025-01-15T12:00:00Z", "operation": "store"}])
        >>> event_objects(df)[0]
        '{"event_id":"evt_1","timestamp":"2025-01-15T12:00:00.000000Z","operation":"STORE","user_id":null,"session_id":null,"entry_ids":[],"metadata":{},"status":"SUCCESS","error_message":null,"duration_ms":null}'
    """
    return df.lazy().select(export_object(field_literals(df)).alias("export")).collect().to_series()


class ObjectLines(Protocol):
    """What writes the export objects of a range of events, `sep` between them
    (`axon_audit.integrity.native.EventBuffers`)."""

    def lines(self, start: int, n: int, sep: bytes = b",\n") -> bytes: ...


def _series_lines(fh: IO[bytes], df: pl.DataFrame, objects: pl.Series | None) -> None:
    """The objects of `objects` (made here from `df` when None), ",\\n" between them."""
    n = df.height
    for start in range(0, n, JSON_PIECE_ROWS):
        piece = (event_objects(df.slice(start, JSON_PIECE_ROWS)) if objects is None
                 else objects.slice(start, JSON_PIECE_ROWS))
        lines = piece.to_frame()
        if start + JSON_PIECE_ROWS >= n:  # the last object takes no comma
            lines, last = lines.head(-1), lines[-1, 0]
        else:
            last = None
        if lines.height:
            # polars writes the lines natively, each object followed by ",\n"; joining them
            # into one Python str and encoding it cost twice as much (measured).
            lines.write_csv(fh, include_header=False, quote_style="never", line_terminator=",\n")
        if last is not None:
            fh.write(last.encode() + b"\n")


def write_json_stream(fh: IO[bytes], df: pl.DataFrame, exported_at_us: int | None = None,
                      objects: pl.Series | ObjectLines | None = None) -> None:
    """The export document, written piece by piece to bound memory, one event
    object per line (`verify` names a broken event by its line); `objects` may
    pass the objects' texts when the caller already made them, or what writes them.

    Example:
        >>> import io
        >>> from axon_audit.io.json_export import write_json_stream
        >>> from axon_audit.model.schema import normalize_batch
        >>> df = normalize_batch([{"event_id": f"evt_{i}", "timestamp": "2025-01-15T12:00:00Z", "operation": "store"}
        ...                       for i in (1, 2)])
        >>> out = io.BytesIO()
        >>> write_json_stream(out, df, exported_at_us=0)
        >>> [line[:24] for line in out.getvalue().decode().splitlines()]
        ['{"events": [', '{"event_id":"evt_1","tim', '{"event_id":"evt_2","tim', '], "total_events": 2, "e']
    """
    fh.write(b'{"events": [\n')
    if objects is None or isinstance(objects, pl.Series):
        _series_lines(fh, df, objects)
    else:
        n = df.height
        for start in range(0, n, NATIVE_PIECE_ROWS):  # ~8 MB a piece: the allocator reuses it
            k = min(NATIVE_PIECE_ROWS, n - start)
            fh.write(objects.lines(start, k))
            fh.write(b",\n" if start + k < n else b"\n")
    exported = format_us(now_us() if exported_at_us is None else exported_at_us)
    fh.write(f'], "total_events": {df.height}, "exported_at": "{exported}"}}\n'.encode())


@overload
def write_json_export(df: pl.DataFrame, path: str | os.PathLike[str], *, replace: bool = True,
                      objects: pl.Series | ObjectLines | None = None,
                      digests: list[tuple[str, int]] | None = None) -> Path: ...
@overload
def write_json_export(df: pl.DataFrame, path: Location, *, replace: bool = True,
                      objects: pl.Series | ObjectLines | None = None,
                      digests: list[tuple[str, int]] | None = None) -> Path | Location: ...
def write_json_export(df: pl.DataFrame, path: str | os.PathLike[str] | Location, *, replace: bool = True,
                      objects: pl.Series | ObjectLines | None = None,
                      digests: list[tuple[str, int]] | None = None) -> Path | Location:
    """Write `df` as one export document at `path` (atomically). On object storage
    one upload of the whole document; `replace=False` there gives the name a
    random suffix (no overwrite across writers). Returns where it was written;
    `digests`, if given, receives the document's (SHA-256 hex, size), hashed as written.

    Example:
        >>> import json, pathlib, tempfile
        >>> from axon_audit.io.json_export import write_json_export
        >>> from axon_audit.model.schema import normalize_batch
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "trail.json"
        >>> df = normalize_batch([{"operation": "store", "user_id": "u1"}])
        >>> json.loads(write_json_export(df, path).read_text())["events"][0]["user_id"]
        'u1'
        >>> write_json_export(df, path, replace=False).name
        'trail_1.json'
    """
    def write(fh: IO[bytes]) -> None:
        write_json_stream(fh, df, objects=objects)

    try:
        if isinstance(path, Location) and not path.is_local:
            target = path if replace else unique_object(path)
            digest = target.put(write)
            if digests is not None:
                digests.append(digest)
            return target
        if isinstance(path, Location):
            path = path.local_path()
        done, digest = atomic_write_hashed(Path(path), write, replace=replace)
        if digests is not None:
            digests.append(digest)
        return done
    except OSError as exc:
        raise ExportError(exc.errno, f"cannot write JSON export {path}: {exc.strerror or exc}") from exc
