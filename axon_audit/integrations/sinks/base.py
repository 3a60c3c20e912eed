"""The delivery loop shared by the sinks: batches off a live subscription, POSTed in order, never lost.

A `Sink` subscribes to its logger (``batches=True, on_overflow="block"``) and runs
one thread of its own; `log()` does no work for it. The thread keeps the batches
it has read (at most `max_pending` events) and POSTs them one at a time, in log
order: a batch that fails (connection error, timeout, any non-2xx answer) is
retried, the same bytes under the same ``Idempotency-Key``, after an exponential
backoff with full jitter capped at `max_backoff` seconds, until the receiver
takes it. Nothing is skipped: while the receiver is away the sink stops reading
once it holds `max_pending` events, so its subscription's queue fills and then
its delivery thread waits ("block"), the sealed chunks wait in memory, and no
accepted event is dropped. When the receiver returns, the backlog goes out in
order.

Ends: closing the logger ends the subscription after everything logged before;
the sink delivers all of it and its thread ends (`join()`). `close()` first
waits until every event logged before it is with the sink, then delivers for up
to `drain_timeout` seconds; what is still undelivered then stays in
`undelivered` (DataFrames, in order) and is logged as an ERROR with its count.

Durable delivery (``cursor=``): the sink records how far the receiver has
acknowledged on the export folder's log, re-delivers from the folder on start,
and sends a batch refused for good (HTTP 4xx but 408/429) to a dead-letter file
after `max_attempts`: `axon_audit.integrations.sinks.durable`.

Subclasses say what a batch looks like on the wire (`encode`; `target` and
`check_answer` when the URL or the answer need more; `check_url` and `transmit`
for a transport other than HTTP, as the syslog sink).

Example:
    >>> from axon_audit import AuditLogger
    >>> from axon_audit.integrations.sinks import Sink
    >>> class CsvSink(Sink):
    ...     kind = "csv"
    ...     def encode(self, batch, batch_id):
    ...         return batch.select("event_id", "operation").write_csv().encode(), "text/csv"
    >>> sink = CsvSink(AuditLogger(), "http://127.0.0.1:9/in", max_batch=2, max_pending=4)
    >>> import polars as pl
    >>> sink.encode(pl.DataFrame({"event_id": ["evt_1"], "operation": ["STORE"]}), "evt_1..evt_1")
    (b'event_id,operation\\nevt_1,STORE\\n', 'text/csv')
    >>> sink.pending, sink.target()
    (0, 'http://127.0.0.1:9/in')
"""

from __future__ import annotations

import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path
from typing import Any, TypeVar

import polars as pl

from axon_audit.exceptions import AuditValueError
from axon_audit.integrations.sinks.durable import Cursor, DeadLetter, Redelivery, Refusal, export_folder, is_permanent
from axon_audit.query.filters import Filters
from axon_audit.write.subscription import Subscription

__all__ = ["Sink"]

log = logging.getLogger("axon_audit")
_S = TypeVar("_S", bound="Sink")


def _positive(name: str, value: Any, kind: type = float) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int) or not value > 0:
        expected = "a number of seconds > 0" if kind is float else "an int >= 1"
        raise AuditValueError(f"{name} must be {expected}, got {value!r}")
    return value


class Sink:
    """Ships a logger's matching events to a receiver (HTTP unless `transmit` says otherwise), in order.

    Counters: `delivered` (events the receiver accepted), `batches` (batches
    accepted), `retries` (attempts after a failed one), `failures` (failed
    attempts), `pending` (events read but not yet accepted), `redelivered`
    (events re-sent from the export folder on start, with a `cursor`), `recovered` (then sent,
    with a `cursor`, of the events the logger held unexported: e.g. recovered from its WAL),
    `dead_lettered` (events of batches refused for good, see `dead_letter`).

    `cursor`: a file that makes delivery durable across crashes (see
    `axon_audit.integrations.sinks.durable`; needs a local `auto_export_path`).
    `max_attempts` (3): attempts at a batch the receiver refuses for good (HTTP
    4xx but 408/429) before it goes to `dead_letter`, a JSON-lines file (default
    with a cursor: beside it, ``<cursor stem>.dead-letter.jsonl``; without
    either, such batches are kept in `dead`, in memory). Both are logged as ERRORs.
    """

    #: What the thread is called (subclasses name their kind).
    kind = "sink"

    def __init__(self, audit_logger: Any, url: str, *, max_batch: int = 1000, max_pending: int = 10_000,
                 timeout: float = 10.0, backoff: float = 0.1, max_backoff: float = 5.0,
                 drain_timeout: float = 30.0, interval: float = 0.2, headers: dict[str, str] | None = None,
                 cursor: str | Path | None = None, dead_letter: str | Path | None = None, max_attempts: int = 3,
                 **filters: Any) -> None:
        self.check_url(url)
        self.url = url
        self.max_batch = _positive("max_batch", max_batch, int)
        self.max_pending = _positive("max_pending", max_pending, int)
        if self.max_pending < self.max_batch:
            raise AuditValueError(f"max_pending ({max_pending}) must be >= max_batch ({max_batch})")
        self.timeout = _positive("timeout", timeout)
        self.backoff = _positive("backoff", backoff)
        self.max_backoff = _positive("max_backoff", max_backoff)
        self.drain_timeout = _positive("drain_timeout", drain_timeout)
        self.interval = _positive("interval", interval)
        self.headers = dict(headers or {})
        self.max_attempts = _positive("max_attempts", max_attempts, int)
        self._cursor = Cursor(cursor) if cursor is not None else None
        self._root = export_folder(audit_logger) if cursor is not None else None
        if dead_letter is None and self._cursor is not None:
            dead_letter = self._cursor.path.with_suffix(".dead-letter.jsonl")
        self._dead_letter = DeadLetter(dead_letter) if dead_letter is not None else None
        self._redelivery: Redelivery | None = None
        self._overlap: set[str] = set()  # re-delivered ids the live feed may bring again
        self.redelivered = 0
        self.recovered = 0
        self.dead_lettered = 0
        self.dead: list[pl.DataFrame] = []
        self.delivered = 0
        self.batches = 0
        self.retries = 0
        self.failures = 0
        self.undelivered: list[pl.DataFrame] = []
        self._audit = audit_logger
        # A bad filter fails here, not in start(); re-delivery filters the folder's events with it.
        self._expr = Filters.of(filters, allow_limit=False).expr()
        self._filters = filters
        self._sub: Subscription | None = None
        self._held: deque[pl.DataFrame] = deque()  # read from the subscription, not yet in a batch
        self._held_events = 0
        self._current: tuple[pl.DataFrame, str] | None = None  # the batch being sent, and its id
        self._lock = threading.Lock()
        self._wake = threading.Event()  # cuts a backoff short when the deadline comes
        self._settled: threading.Event | None = None  # set by `close()`: what to deliver before stopping
        self._deadline: float | None = None
        self._thread: threading.Thread | None = None
        self._warned = False

    # ------------------------------------------------------------------ subclass hooks

    def encode(self, batch: pl.DataFrame, batch_id: str) -> tuple[bytes, str]:
        """The request body of one batch and its content type."""
        raise NotImplementedError

    def target(self) -> str:
        """Where batches are POSTed."""
        return self.url

    def check_url(self, url: Any) -> None:
        """Refuse a `url` this sink cannot send to (here: anything but http:// or https://)."""
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise AuditValueError(f"url must be an http:// or https:// URL, got {url!r}")

    def transmit(self, body: bytes, headers: dict[str, str]) -> str | None:
        """One attempt at a batch; None when the receiver took it, else what went wrong
        (then the batch is retried). Here: a POST; a sink with another transport overrides it."""
        return self._post(body, headers)

    # ------------------------------------------------------------------ life cycle

    def start(self: _S) -> _S:
        """Subscribe and start the delivery thread: events logged from now on are shipped."""
        if self._thread is not None:
            raise AuditValueError(f"this {self.kind} has already been started")
        if self._cursor is not None and self._root is not None:
            self._redelivery = Redelivery(self._root, self._cursor)  # the log's size before subscribing
        # `max_events=max_batch`: each read is at most one batch, and the subscription's
        # own queue (bounded by it) is what holds events once we hold `max_pending`.
        self._sub = self._audit.subscribe(batches=True, on_overflow="block", max_events=self.max_batch,
                                          interval=self.interval, backlog=self._redelivery is not None,
                                          **self._filters)
        if self._redelivery is not None:  # unexported events (a WAL's, say): sent after the folder's
            self._redelivery.memory, self._sub.backlog = self._sub.backlog, []  # held until sent, not after
        self._thread = threading.Thread(target=self._run, name=f"axon-audit-{self.kind}", daemon=True)
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end (the logger closed and everything was delivered); False on timeout."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def close(self) -> None:
        """Deliver every event logged before this call (for up to `drain_timeout` seconds), then stop.

        Events still undelivered at the deadline are kept in `undelivered` and logged as an ERROR.
        """
        sub, thread = self._sub, self._thread
        if sub is None or thread is None or self._settled is not None:
            return
        with self._lock:
            self._settled = sub.settle()
            self._deadline = time.monotonic() + self.drain_timeout
        thread.join(max(0.0, self._deadline - time.monotonic()))
        self._wake.set()  # cuts a backoff short; a request in flight ends within its `timeout`
        thread.join()
        self._keep_rest(sub)
        sub.close()
        left = self.pending
        if left:
            log.error("axon_audit: the %s to %s stopped with %d events not delivered (not taken within "
                      "drain_timeout=%ss, or the sink failed); they are in %s.undelivered", self.kind,
                      self.target(), left, self.drain_timeout, type(self).__name__)

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def subscription(self) -> Subscription | None:
        """The live subscription the sink reads (None before `start()`)."""
        return self._sub

    @property
    def redelivery(self) -> Redelivery | None:
        """With a cursor: what `start()` re-delivers from the folder (its `duplicates`: events re-sent, maybe twice)."""
        return self._redelivery

    @property
    def pending(self) -> int:
        """Events the sink holds that the receiver has not accepted yet."""
        with self._lock:
            current = self._current[0].height if self._current is not None else 0
            return current + self._held_events + sum(df.height for df in self.undelivered)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.target()!r}, delivered={self.delivered}, retries={self.retries}, "
                f"failures={self.failures}, pending={self.pending}, redelivered={self.redelivered}, "
                f"dead_lettered={self.dead_lettered})")

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        sub = self._sub
        assert sub is not None
        try:
            if self._redelivery is not None and not self._redeliver():
                return
            while True:
                if self._settled is not None and self._past_deadline():
                    return  # closing, and out of time: what is left is kept
                if self._current is None:
                    self._read(sub, wait=not self._held)
                    if not self._held:
                        if sub.ended or self._drained(sub):
                            return
                        continue
                    self._next_batch()
                    if self._current is None:
                        continue
                if not self._send() and self._past_deadline():
                    return
        except Exception:
            # Not expected (encoding a batch or a subclass hook failed); the events are kept all the same.
            log.exception("axon_audit: the %s to %s stopped on an error; its events are kept for close()",
                          self.kind, self.target())
        finally:
            self._keep_held()

    def _redeliver(self) -> bool:
        """Send what the export folder holds after the cursor, in order; False when closing cut it short."""
        red = self._redelivery
        assert red is not None
        for batch, next_leaf in red.batches(self.max_batch, self._expr):
            ids = batch["event_id"]
            with self._lock:
                self._current = (batch, f"{ids[0]}..{ids[-1]}")
            red.batch_leaf = next_leaf
            self.redelivered += batch.height
            if not self._send():
                return False  # closing: the batch is kept in `undelivered`; the cursor is behind it
        rest = red.memory_batches(self.max_batch, self._expr)
        self._overlap = red.overlap
        red.finished(self.delivered)
        for batch in rest:
            with self._lock:
                self._current = (batch, f"{batch['event_id'][0]}..{batch['event_id'][-1]}")
            self.recovered += batch.height
            if not self._send():
                return False  # as above: the rest stays with the logger (memory, WAL, folder)
        return True

    def _record(self, batch: pl.DataFrame) -> None:
        """After an acknowledged (or dead-lettered) batch: with a cursor, move it past the batch."""
        if self._redelivery is not None:
            self._redelivery.acked(batch, self.delivered)

    def _read(self, sub: Subscription, *, wait: bool) -> None:
        """Take what the subscription has queued, up to `max_pending` held events."""
        timeout = self.interval if wait else 0.0
        # A read brings at most `max_batch` events: read only while that fits under `max_pending`.
        while self._held_events + (self._current[0].height if self._current else 0) + self.max_batch \
                <= self.max_pending:
            df = sub.poll(timeout)
            if df is None:
                return
            with self._lock:
                self._held.append(df)
                self._held_events += df.height
            timeout = 0.0

    def _next_batch(self) -> None:
        """The held frames at the head, up to `max_batch` events, as the next batch (fixed from now on)."""
        parts, n = [], 0
        with self._lock:
            while self._held and n + self._held[0].height <= self.max_batch:
                df = self._held.popleft()
                parts.append(df)
                n += df.height
            self._held_events -= n
            batch = pl.concat(parts, rechunk=False) if len(parts) > 1 else parts[0]
            if self._overlap:  # sent already, from the folder (exported while the re-delivery ran)
                batch = batch.filter(~pl.col("event_id").is_in(list(self._overlap)))
                if not batch.height:
                    return
            ids = batch["event_id"]
            self._current = (batch, f"{ids[0]}..{ids[-1]}")

    def _send(self) -> bool:
        """Attempts at the current batch until it is accepted (True) or the drain deadline passes."""
        assert self._current is not None
        batch, batch_id = self._current
        body, content_type = self.encode(batch, batch_id)
        headers = {**self.headers, "Content-Type": content_type, "Idempotency-Key": batch_id}
        attempt = 0
        while True:
            error = self.transmit(body, headers)
            if error is None:
                with self._lock:
                    self._current = None
                    self.delivered += batch.height
                    self.batches += 1
                self._record(batch)
                if self._warned:
                    self._warned = False
                    log.warning("axon_audit: the %s to %s delivers again", self.kind, self.target())
                return True
            self.failures += 1
            if is_permanent(error) and attempt + 1 >= self.max_attempts:
                self._give_up(batch, batch_id, error, attempt + 1)
                return True
            if not self._warned:
                self._warned = True
                log.warning("axon_audit: the %s to %s failed (%s); retrying with backoff, events are kept",
                            self.kind, self.target(), error)
            if self._past_deadline():
                return False
            delay = self.backoff_delay(attempt)
            attempt += 1
            if self._deadline is not None:
                delay = min(delay, max(0.0, self._deadline - time.monotonic()))
            self._pause(delay)
            if self._past_deadline():
                return False
            self.retries += 1

    def _give_up(self, batch: pl.DataFrame, batch_id: str, error: str, attempts: int) -> None:
        """A batch refused for good: to the dead-letter file (or `dead`), logged, counted; delivery goes on."""
        if self._dead_letter is not None:
            self._dead_letter.append(batch, batch_id, error, attempts, sink=self.kind, target=self.target())
            where = str(self._dead_letter.path)
        else:
            self.dead.append(batch)
            where = f"{type(self).__name__}.dead"
        with self._lock:
            self._current = None
            self.dead_lettered += batch.height
        log.error("axon_audit: the %s to %s refused batch %s for good (%s, %d attempts); its %d events are in %s",
                  self.kind, self.target(), batch_id, error, attempts, batch.height, where)
        self._record(batch)

    def backoff_delay(self, attempt: int) -> float:
        """Seconds to wait before retry `attempt` + 1 (0-based): uniform in [0, min(max_backoff,
        backoff × 2**attempt)]. Full jitter, so senders coming back together do not hit the
        receiver in step; the cap bounds how long a returned receiver waits for the backlog."""
        return random.uniform(0, min(self.max_backoff, self.backoff * 2 ** min(attempt, 60)))

    def _pause(self, delay: float) -> None:
        """Wait out a backoff, reading what the subscription queued meanwhile (so it blocks only when we are full)."""
        end = time.monotonic() + delay
        sub = self._sub
        while (left := end - time.monotonic()) > 0:
            if self._wake.wait(min(left, 0.05)):
                return
            if sub is not None:
                self._read(sub, wait=False)

    def _post(self, body: bytes, headers: dict[str, str]) -> str | None:
        """One attempt; None when the receiver took it, else what went wrong."""
        request = urllib.request.Request(self.target(), data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = response.read()
                status = response.status
        except urllib.error.HTTPError as e:
            return Refusal.of_status(e.code)
        except (OSError, ValueError) as e:  # refused, reset, timed out, a broken answer
            return f"{type(e).__name__}: {e}"
        if not 200 <= status < 300:
            return Refusal.of_status(status)
        return self.check_answer(answer)

    def check_answer(self, answer: bytes) -> str | None:
        """A 2xx answer's body; a subclass may read a refusal in it (None: accepted)."""
        return None

    def _drained(self, sub: Subscription) -> bool:
        """Closing, and everything logged before `close()` has been read (and nothing is held)."""
        settled = self._settled
        return settled is not None and settled.is_set() and sub.pending == 0

    def _past_deadline(self) -> bool:
        return self._wake.is_set() or (self._deadline is not None and time.monotonic() >= self._deadline)

    def _keep_held(self) -> None:
        """The thread stops: what it holds goes to `undelivered`, in order."""
        with self._lock:
            if self._current is not None:
                self.undelivered.append(self._current[0])
            self.undelivered += self._held
            self._current = None
            self._held.clear()
            self._held_events = 0

    def _keep_rest(self, sub: Subscription) -> None:
        """After the thread: what the subscription still has of the events logged before `close()`
        goes to `undelivered` too (reading its queue unblocks its delivery thread, which then
        queues the rest, up to the mark of `settle()`)."""
        settled = self._settled
        while True:
            df = sub.poll(0.01)
            if df is not None:
                with self._lock:
                    self.undelivered.append(df)
            elif sub.ended or settled is None or (settled.is_set() and sub.pending == 0):
                return
