"""Durable delivery for the sinks: a cursor on the export log, re-delivery after a crash, the dead-letter file.

A sink made with ``cursor="path/to/sink.cursor.json"`` keeps, in that file, how far
its receiver has acknowledged the logger's events, on the export log of the
logger's export folder (a local `auto_export_path`: the manifest gives every
exported event a log position, `axon_audit.read.log_order`). The file is one
JSON object, rewritten atomically (`axon_audit.io.atomic.atomic_write`, fsynced)
after every acknowledged batch::

    {"format": "axon_audit.sink_cursor/1", "log": "manifest.json", "next_leaf": 1200,
     "live": 150, "event_id": "evt_…", "max_time_us": 1736942400000000, "delivered": 1350,
     "updated_at": "…Z"}

meaning: every exported event at a log position below `next_leaf` was delivered
(or was there before the cursor was first made), and so were the first `live`
matching events the logger logged after that point (delivered live, before
their export: `event_id` is the last of them, `max_time_us` their latest time).

On `start()` the sink first re-delivers, from the folder, in log order, every
exported event after that point (matching its filters; counted in
`redelivered`), then goes on with its live subscription; events both in the
folder and in the live feed (exported by the same logger while the re-delivery
ran) go out once. The `live` events are found by counting, commit by commit
(the folder's commits hold the logger's events in logging order, each commit
sorted by time): whole commits are skipped; in the commit where the count ends,
the first `live` in time order are skipped when they are provably the ones
delivered (every event of the commit up to `max_time_us` is among them, as when
times grow with logging), else the whole commit is sent again (counted in the
sink's ``redelivery.duplicates``, logged as a WARNING): a duplicate, never a gap.

Then come the events its logger holds but has not exported when the sink
subscribes (`Redelivery.memory`: recovered from the logger's WAL after a crash,
or logged before `start()`; counted in `recovered`), in logging order, each
once: those exported while the re-delivery ran went out from the folder, those
whose export was committed but not yet marked done in the logger when the sink
subscribed are exported (below the cursor: not sent again), and
the `live` count goes on into them (they are the events logged after the
folder's end, as the live ones were), checked by `event_id`; when the check
fails they are all sent (duplicates, counted and logged, never a gap).

So after a crash (the process killed while the receiver was away: the events
were exported, or are recovered from the WAL by the new logger; their batches
were only in the sink's memory) a new sink with the same cursor delivers each
of them, in order, and nothing twice, but for the one batch a receiver may
have taken just before the crash without the cursor recording it (delivery is
at least once: the receiver dedupes by ``Idempotency-Key`` for a retried batch,
by event id across a crash). Events neither exported nor in a WAL are lost
with the process: there is nothing to re-deliver for them.

Limits: one logger writes the folder (the cursor follows the folder's one log;
the live feed is the sink's own logger), and the folder is local (on object
storage each writer keeps its own log).

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
    >>> cursor.save(next_leaf=12, delivered=12)
    >>> Cursor(path).load()["next_leaf"]
    12
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import orjson
import polars as pl

from axon_audit.exceptions import AuditValueError
from axon_audit.io.atomic import atomic_write
from axon_audit.io.json_export import event_objects
from axon_audit.io.layout import ExportLayout
from axon_audit.io.location import Location, resolve
from axon_audit.model.timestamps import format_us, now_us
from axon_audit.read.log_order import log_parts, log_size, read_log_part

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
    """Whether a failed attempt was a permanent refusal (see `Refusal`).

    Example:
        >>> is_permanent(Refusal("HTTP 404")), is_permanent("ConnectionRefusedError: ..."), is_permanent(None)
        (True, False, False)
    """
    return isinstance(error, Refusal)


class Cursor:
    """The cursor file of a durable sink (see the module): `load()` and an atomic `save()`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if not isinstance(path, (str, os.PathLike)) or not str(path):
            raise AuditValueError(f"cursor must be a file path, got {path!r}")
        self.path = Path(path)
        self._folder_made = False

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

    def save(self, *, next_leaf: int, delivered: int, live: int = 0, event_id: str | None = None,
             max_time_us: int | None = None) -> None:
        """Record the position atomically (a reader, or a crash, sees the old or the new one)."""
        body = orjson.dumps({"format": CURSOR_FORMAT, "log": ExportLayout.MANIFEST_NAME, "next_leaf": next_leaf,
                             "live": live, "event_id": event_id, "max_time_us": max_time_us,
                             "delivered": delivered, "updated_at": format_us(now_us())})
        if not self._folder_made:  # once: a save follows every batch
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._folder_made = True
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
        with open(self.path, "ab") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())


def export_folder(audit_logger: Any) -> Location:
    """The local export folder a durable sink re-delivers from (its logger's `auto_export_path`).

    Example:
        >>> from axon_audit import AuditLogger
        >>> export_folder(AuditLogger())
        Traceback (most recent call last):
        ...
        axon_audit.exceptions.AuditValueError: cursor needs a logger with a local auto_export_path (it re-delivers \
from the export folder's log), got auto_export_path=None
    """
    root = getattr(audit_logger, "auto_export_path", None)
    if not isinstance(root, Path):
        raise AuditValueError(f"cursor needs a logger with a local auto_export_path (it re-delivers from the "
                              f"export folder's log), got auto_export_path={root!r}")
    return resolve(root)


class Redelivery:
    """What a durable sink re-delivers on start: the exported events after its cursor, in log order.

    Made before the sink subscribes (`before`: the log's size then); `batches()`,
    run after, reads the log again and yields ``(batch, next_leaf)`` up to its end
    then (`end`); `overlap` holds the ids of the events from `before` on, which
    the live feed may bring again; `duplicates` counts events re-sent that the
    receiver may have had (see the module).

    Example:
        >>> import tempfile, pathlib
        >>> from axon_audit import AuditLogger
        >>> tmp = pathlib.Path(tempfile.mkdtemp())
        >>> with AuditLogger(auto_export_path=tmp / "audit") as audit:
        ...     _ = [audit.log("store", user_id=f"u{i}") for i in range(3)]
        >>> cursor = Cursor(tmp / "c.json")
        >>> cursor.save(next_leaf=1, delivered=1)  # the first event went out before
        >>> red = Redelivery(resolve(tmp / "audit"), cursor)
        >>> [(df["user_id"].cast(str).to_list(), after) for df, after in red.batches(10, None)]
        [(['u1', 'u2'], 3)]
    """

    def __init__(self, root: Location, cursor: Cursor) -> None:
        self.root = root
        self.cursor = cursor
        self.state = cursor.load()
        self.before = log_size(log_parts(root))
        self.end = self.before
        self.overlap: set[str] = set()
        self.duplicates = 0
        self.batch_leaf: int | None = None  # a re-delivered batch in flight: the log position after it
        self.memory: list[pl.DataFrame] = []  # the logger's unexported events when the sink subscribed
        self._seen: set[str] = set()  # of those, the ones `batches()` found in the folder
        self._live_left = 0  # the cursor's `live` count not used up by the folder's commits
        self._live = 0  # live events acknowledged (or dead-lettered) after the re-delivery
        self._max_us: int | None = None  # the latest time among them
        self._last: str | None = None  # the last of them

    def acked(self, batch: pl.DataFrame, delivered: int) -> None:
        """The receiver took `batch` (or it was dead-lettered): the cursor moves past it."""
        if self.batch_leaf is not None:
            self.cursor.save(next_leaf=self.batch_leaf, delivered=delivered)
            return
        self._count_live(batch)
        self.cursor.save(next_leaf=self.end, delivered=delivered, live=self._live, event_id=self._last,
                         max_time_us=self._max_us)

    def _count_live(self, batch: pl.DataFrame) -> None:
        self._live += batch.height  # counted as `batches()` will count them again
        newest = cast(int, batch["timestamp"].dt.epoch("us").max())
        self._max_us = newest if self._max_us is None else max(self._max_us, newest)
        self._last = batch["event_id"][-1]

    def finished(self, delivered: int) -> None:
        """The re-delivery is done: everything exported before `end` is delivered (and the events of
        `memory` that `memory_batches` found delivered before); `memory_batches` and live events follow."""
        self.batch_leaf = None
        self.cursor.save(next_leaf=self.end, delivered=delivered, live=self._live, event_id=self._last,
                         max_time_us=self._max_us)

    def memory_batches(self, max_batch: int, expr: pl.Expr | None) -> list[pl.DataFrame]:
        """After `batches()`: the events of `memory` matching `expr` that are still to send, in logging
        order (not found in the folder, nor among the first `live` the cursor counts), in batches."""
        frames, self.memory = self.memory, []  # not kept once sent
        if not frames:
            return []
        df = pl.concat(frames, how="vertical_relaxed", rechunk=False)
        if expr is not None:
            df = df.filter(expr.fill_null(False))
        if self._seen:
            df = df.filter(~pl.col("event_id").is_in(list(self._seen)))
        j, last = self._live_left, (self.state or {}).get("event_id")
        if j and j <= df.height and df["event_id"][j - 1] == last:
            self._count_live(df.head(j))  # delivered live before the crash: the cursor keeps counting them
            df = df.slice(j)
        elif j:
            self.duplicates += min(j, df.height)
            log.warning("axon_audit: a sink re-sends the %d events its logger holds unexported (recovered from "
                        "its WAL, or logged before the sink started): the cursor counts %d of them delivered "
                        "but their last is not %s", df.height, j, last)
        return [df.slice(i, max_batch) for i in range(0, df.height, max_batch)]

    def _commits(self, start: int, expr: pl.Expr | None) -> Iterator[tuple[pl.DataFrame, np.ndarray]]:
        """The matching events at log positions >= `start`, one export commit at a time (memory: one commit)."""
        parts = [p for p in log_parts(self.root) if p.manifest == ExportLayout.MANIFEST_NAME]
        self.end = log_size(parts)
        for _, group in itertools.groupby((p for p in parts if p.end > start), key=lambda p: p.commit):
            frames, positions = [], []
            for part in group:
                # A part that cannot be read stops the sink (its cursor stays): never skipped.
                df, pos = read_log_part(self.root, part)
                keep = pos >= start
                if expr is not None:
                    keep &= df.select(expr.fill_null(False).alias("m"))["m"].to_numpy()
                frames.append(df.filter(pl.Series(keep)))
                positions.append(pos[keep])
            yield pl.concat(frames), np.concatenate(positions)

    def _exported_before(self, start: int, ids: pl.Series) -> None:
        """Mark as seen the events of `memory` (ids `ids`) exported below `start`: an export that
        was committed but not yet marked done in the logger when the sink subscribed. They are
        delivered (or were there before the cursor was made), not unexported: sent from memory
        they went out twice (and the cursor's live count took them, so a restart re-sent the
        events after them). Such exports are the newest commits (exports commit in logging
        order): read from the newest back to the first holding none of them (usually one part)."""
        parts = [p for p in log_parts(self.root) if p.manifest == ExportLayout.MANIFEST_NAME and p.first < start]
        commits = [list(group) for _, group in itertools.groupby(parts, key=lambda p: p.commit)]
        wanted = ids.implode()
        for group in reversed(commits):
            hits = pl.concat([read_log_part(self.root, part)[0].filter(pl.col("event_id").is_in(wanted))["event_id"]
                              for part in group])
            if hits.is_empty():
                return
            self._seen.update(hits.to_list())

    def batches(self, max_batch: int, expr: pl.Expr | None) -> Iterator[tuple[pl.DataFrame, int]]:
        state = self.state if self.state is not None else {"next_leaf": self.before}  # new: from the start on
        live = int(state.get("live") or 0)  # events delivered live, exported from `next_leaf` on
        ids = pl.concat([m["event_id"] for m in self.memory]) if self.memory else None
        if ids is not None:
            self._exported_before(int(state["next_leaf"]), ids)
        for df, pos in self._commits(int(state["next_leaf"]), expr):
            if ids is not None:  # exported after the sink subscribed (or just before): not sent from memory
                self._seen.update(df.filter(pl.col("event_id").is_in(ids))["event_id"].to_list())
            if live >= df.height:  # the whole commit went out live
                live -= df.height
                continue
            if live:
                skip = self._delivered_prefix(df, live, state)
                df, pos, live = df.slice(skip), pos[skip:], 0
            late = pos >= self.before
            if late.any():
                self.overlap.update(df.filter(pl.Series(late))["event_id"].to_list())
            for i in range(0, df.height, max_batch):
                yield df.slice(i, max_batch), int(pos[min(i + max_batch, df.height) - 1]) + 1
        self._live_left = live  # the rest of the count: events delivered live that are not in the folder

    def _delivered_prefix(self, commit: pl.DataFrame, j: int, state: dict[str, Any]) -> int:
        """Of a commit whose first `j` events in logging order went out live (the last of them `event_id`),
        how many of its first in log order to skip: `j` when those are provably the same events, else 0
        (all re-sent: duplicates, never a gap). The commit is sorted by time, stably (ties stay in logging
        order), so they are when every event up to the latest time delivered (`max_time_us`) is among the
        `j`, or when the last one delivered has that time and sits at position ``j - 1``."""
        t_max, last = state.get("max_time_us"), state.get("event_id")
        if isinstance(t_max, int):
            ts = commit["timestamp"].dt.epoch("us")
            if int((ts <= t_max).sum()) == j:
                return j
            if commit["event_id"][j - 1] == last and ts[j - 1] == t_max:
                return j
        self.duplicates += j
        log.warning("axon_audit: a sink re-sends a whole export commit of %d events (%d of them were delivered "
                    "before; the export put them in time order, not in the order they were logged)",
                    commit.height, j)
        return 0

    def __repr__(self) -> str:
        return f"Redelivery({str(self.cursor.path)!r}, before={self.before}, end={self.end})"
