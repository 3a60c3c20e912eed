"""Durable delivery for the sinks: a cursor on the export log, re-delivery after a crash, the dead-letter file.

A sink made with ``cursor="path/to/sink.cursor.json"`` keeps, in that file, how far
its receiver has acknowledged the logger's events, on the export log of the
logger's export folder (a local `auto_export_path`: the manifest gives every
exported event a log position, `axon_audit.read.log_order`). The file is one
JSON object, rewritten atomically (`axon_audit.io.atomic.atomic_write`, fsynced)
after every acknowledged batch::

    {"format": "axon_audit.sink_cursor/1", "log": "manifest.json",
     "next_leaf": 1200, "event_id": "evt_…", "delivered": 1350, "updated_at": "…Z"}

meaning: every exported event at a log position below `next_leaf` was delivered
(or was there before the cursor was first made), and, when `event_id` is set,
so was every event up to that one in log order (an event delivered live, before
its export; when it is exported it lies at `next_leaf` or after).

On `start()` the sink first re-delivers, from the folder, in log order, every
exported event after that point (matching its filters; counted in
`redelivered`), then goes on with its live subscription; events both in the
folder and in the live feed (exported by the same logger while the re-delivery
ran) go out once. So after a crash (the process killed while the receiver was
away: the events were exported, their batches were only in the sink's memory) a
new sink with the same cursor delivers each of them, in order, and nothing
twice, but for the one batch a receiver may have taken just before the crash
without the cursor recording it (delivery is at least once: the receiver
dedupes by ``Idempotency-Key`` for a retried batch, by event id across a
crash). An event id the cursor names but the folder does not hold was never
exported (delivered live, then lost with the process, or waiting in a WAL):
everything exported is then behind the cursor.

Limits: one logger writes the folder (the cursor follows the folder's one log;
the live feed is the sink's own logger), the sink starts before its logger logs
(events logged before `start()` and exported after it are in neither), and the
folder is local (on object storage each writer keeps its own log).

Permanent refusals: an HTTP 4xx other than 408 and 429 (`Refusal`) is retried
like any failure, but after `max_attempts` attempts the batch goes to the
dead-letter file (`DeadLetter`, one JSON line per batch, fsynced) and delivery
goes on; it is counted in `dead_lettered` and logged as an ERROR.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "hook.cursor.json"
    >>> cursor = Cursor(path)
    >>> cursor.load() is None
    True
    >>> cursor.save(next_leaf=12, event_id=None, delivered=12)
    >>> Cursor(path).load()["next_leaf"]
    12
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from axon_audit.exceptions import AuditValueError
from axon_audit.io.atomic import atomic_write
from axon_audit.io.json_export import event_objects
from axon_audit.io.layout import ExportLayout
from axon_audit.io.location import Location, resolve
from axon_audit.model.timestamps import format_us, now_us
from axon_audit.read.log_order import LogPart, log_parts, log_size, read_log_part

__all__ = ["CURSOR_FORMAT", "Cursor", "DeadLetter", "Redelivery", "Refusal", "is_permanent"]

log = logging.getLogger("axon_audit")
CURSOR_FORMAT = "axon_audit.sink_cursor/1"
_RETRYABLE_4XX = (408, 429)  # request timeout, too many requests: the receiver asks to come back


class Refusal(str):
    """A failed attempt's description that is a permanent refusal (HTTP 4xx but 408/429): retrying the
    same bytes cannot help, so after `max_attempts` the batch is dead-lettered.

    Example:
        >>> is_permanent(Refusal.of_status(400)), is_permanent(Refusal.of_status(429)), is_permanent("HTTP 503")
        (True, False, False)
    """

    @staticmethod
    def of_status(code: int) -> str:
        """``"HTTP <code>"``: a `Refusal` for a 4xx other than 408/429, a plain string otherwise."""
        text = f"HTTP {code}"
        return Refusal(text) if 400 <= code < 500 and code not in _RETRYABLE_4XX else text


def is_permanent(error: str | None) -> bool:
    """Whether a failed attempt was a permanent refusal (see `Refusal`)."""
    return isinstance(error, Refusal)


class Cursor:
    """The cursor file of a durable sink (see the module): `load()` and an atomic `save()`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if not isinstance(path, (str, os.PathLike)) or not str(path):
            raise AuditValueError(f"cursor must be a file path, got {path!r}")
        self.path = Path(path)

    def load(self) -> dict[str, Any] | None:
        """The recorded position, or None when there is no cursor file yet."""
        try:
            doc = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise AuditValueError(f"cursor {str(self.path)!r} cannot be read ({e})") from e
        if not isinstance(doc, dict) or doc.get("format") != CURSOR_FORMAT or not isinstance(doc.get("next_leaf"), int):
            raise AuditValueError(f"cursor {str(self.path)!r} is not a sink cursor ({CURSOR_FORMAT})")
        return doc

    def save(self, *, next_leaf: int, event_id: str | None, delivered: int) -> None:
        """Record the position atomically (a reader, or a crash, sees the old or the new one)."""
        body = orjson.dumps({"format": CURSOR_FORMAT, "log": ExportLayout.MANIFEST_NAME, "next_leaf": next_leaf,
                             "event_id": event_id, "delivered": delivered, "updated_at": format_us(now_us())})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, lambda fh: fh.write(body))


class DeadLetter:
    """The dead-letter file: one JSON object per line and batch, appended and fsynced::

        {"sink": "webhook", "target": "…", "batch_id": "evt_a..evt_b", "count": 2, "error": "HTTP 400",
         "attempts": 3, "at": "…Z", "events": [<export-format event objects>]}

    Example:
        >>> import tempfile, pathlib, json
        >>> from axon_audit.model.schema import normalize_batch
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "dead.jsonl"
        >>> df = normalize_batch([{"event_id": "evt_1", "timestamp": "2025-01-15T12:00:00Z", "operation": "store"}])
        >>> DeadLetter(path).append(df, "evt_1..evt_1", "HTTP 400", 3, sink="webhook", target="http://x")
        >>> doc = json.loads(path.read_text().splitlines()[0])
        >>> doc["count"], doc["error"], doc["events"][0]["event_id"]
        (1, 'HTTP 400', 'evt_1')
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if not isinstance(path, (str, os.PathLike)) or not str(path):
            raise AuditValueError(f"dead_letter must be a file path, got {path!r}")
        self.path = Path(path)

    def append(self, batch: pl.DataFrame, batch_id: str, error: str, attempts: int, *, sink: str,
               target: str) -> None:
        head = orjson.dumps({"sink": sink, "target": target, "batch_id": batch_id, "count": batch.height,
                             "error": str(error), "attempts": attempts, "at": format_us(now_us())})
        line = head[:-1] + b',"events":[' + ",".join(event_objects(batch).to_list()).encode() + b"]}\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh: IO[bytes]
        with open(self.path, "ab") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())


def export_folder(audit_logger: Any) -> Location:
    """The local export folder a durable sink re-delivers from (its logger's `auto_export_path`)."""
    root = getattr(audit_logger, "auto_export_path", None)
    if not isinstance(root, Path):
        raise AuditValueError(f"cursor needs a logger with a local auto_export_path (it re-delivers from the "
                              f"export folder's log), got auto_export_path={root!r}")
    return resolve(root)


def _ids(root: Location, part: LogPart) -> list[str]:
    table = pq.read_table(pa.BufferReader((root / part.file).read_bytes()), columns=["event_id"])
    return [str(x) for x in table.column(0).to_pylist()]


class Redelivery:
    """What a durable sink re-delivers on start: the exported events after its cursor, in log order.

    Made before the sink subscribes (`before`: the log's size then); `batches()`,
    run after, reads the log again and yields ``(batch, next_leaf)`` up to its end
    then (`end`); `overlap` holds the ids of the events from `before` on, which
    the live feed may bring again.
    """

    def __init__(self, root: Location, cursor: Cursor) -> None:
        self.root = root
        self.cursor = cursor
        self.state = cursor.load()
        self.before = log_size(log_parts(root))
        self.end = self.before
        self.overlap: set[str] = set()

    def _start(self, parts: list[LogPart]) -> int:
        """The first log position not delivered yet."""
        state = self.state
        if state is None:
            return self.before  # a new cursor: from the sink's start on
        start = int(state["next_leaf"])
        after = state.get("event_id")
        if after is None:
            return start
        for part in parts:
            if part.end <= start or part.manifest != ExportLayout.MANIFEST_NAME:
                continue
            ids = _ids(self.root, part)
            if after in ids:
                return max(start, int(part.positions[ids.index(after)]) + 1)
        return self.end  # never exported: everything exported is behind it (see the module)

    def batches(self, max_batch: int, expr: pl.Expr | None) -> Iterator[tuple[pl.DataFrame, int]]:
        parts = [p for p in log_parts(self.root) if p.manifest == ExportLayout.MANIFEST_NAME]
        self.end = log_size(parts)
        start = self._start(parts)
        for part in parts:
            if part.end <= start:
                continue
            # A part that cannot be read stops the sink (its cursor stays): never skipped.
            df, positions = read_log_part(self.root, part)
            keep = positions >= start
            pos = positions[keep]
            df = df.filter(pl.Series(keep)) if not keep.all() else df
            if expr is not None:
                matching = df.select(expr.alias("m"))["m"].fill_null(False).to_numpy()
                df, pos = df.filter(pl.Series(matching)), pos[matching]
            late = pos >= self.before
            if late.any():
                self.overlap.update(df.filter(pl.Series(late))["event_id"].to_list())
            for i in range(0, df.height, max_batch):
                chunk = df.slice(i, max_batch)
                yield chunk, int(pos[min(i + max_batch, df.height) - 1]) + 1

    def __repr__(self) -> str:
        return f"Redelivery({str(self.cursor.path)!r}, before={self.before}, end={self.end})"
