"""Live subscriptions to a logger: every accepted event that matches, in log order, once.

Nothing happens per event on the logging path. When the buffer seals rows into
a chunk (`HotBuffer.flush_locked`, or a `log_batch` frame), it hands that frame
(a reference, no copy) to each subscription's inbox: one short lock per chunk
and subscriber, none when nobody subscribes. Each subscription has its own
delivery thread, which filters the chunk with the subscription's compiled
polars expression (vectorized) and puts the matching rows into a bounded queue
that the consumer reads, as events or as DataFrames. A quiet logger still
delivers: an idle delivery thread seals the buffer at most every `interval`
seconds (from its own thread, never from `log()`).

Slow consumers: the queue holds at most `max_events` events. "drop_oldest"
drops the oldest queued events (counted in `dropped`, one logging warning);
"block" makes the delivery thread wait for room, never `log()`, so the
sealed chunks wait in the inbox meanwhile (memory grows with the backlog).

    AuditLogger.subscribe ─► Subscribers (on the HotBuffer) ─► Subscription ─► consumer
                  flush_locked ─► inbox ─► delivery thread: filter ─► queue ─►
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator, Sized
from typing import Any, Literal, Protocol

import polars as pl

from axon_audit.exceptions import AuditTypeError, AuditValueError
from axon_audit.model.event import AuditEvent
from axon_audit.model.schema import frame_to_events
from axon_audit.query.filters import Filters

__all__ = ["OVERFLOW_POLICIES", "Subscribers", "Subscription", "subscribe"]

log = logging.getLogger("axon_audit")

#: What a full queue does: drop its oldest events, or make the delivery thread wait.
OVERFLOW_POLICIES = ("drop_oldest", "block")
_END = None  # in an inbox: the logger closed; nothing comes after it
_IDLE = object()


class _Buffer(Protocol):
    """What the subscriptions use of `write.buffer.HotBuffer` (a protocol: the buffer imports this module)."""

    @property
    def lock(self) -> threading.RLock: ...

    @property
    def rows(self) -> Sized: ...

    def flush_locked(self, n: int | None = None) -> None: ...

    def reset_check(self) -> None: ...

    def backlog_locked(self) -> list[pl.DataFrame]: ...


class Subscribers:
    """A buffer's subscriptions. `subs` is replaced, never mutated, under the buffer's
    lock, so the sealing code reads it with one attribute test."""

    def __init__(self, buffer: _Buffer) -> None:
        self._buffer = buffer
        self.subs: tuple[Subscription, ...] = ()
        self._last_flush = 0.0

    def add(self, sub: Subscription, backlog: bool = False) -> None:
        with self._buffer.lock:
            # A clean cut: what was logged before this is sealed (and delivered to the
            # subscriptions that were there), so the new one gets exactly what follows.
            self._buffer.flush_locked()
            self._buffer.reset_check()
            if backlog:  # what came before the cut and is not exported yet, at this same instant
                sub.backlog = self._buffer.backlog_locked()
            self.subs = (*self.subs, sub)

    def remove(self, sub: Subscription) -> None:
        with self._buffer.lock:
            self.subs = tuple(s for s in self.subs if s is not sub)

    def offer_locked(self, df: pl.DataFrame) -> None:
        """A newly sealed chunk, in log order (the caller holds the buffer's lock)."""
        for sub in self.subs:
            sub._offer(df)

    def end_all_locked(self) -> None:
        """The logger closes: each subscription ends after what was sealed so far."""
        for sub in self.subs:
            sub._offer(_END)
        self.subs = ()

    def flush_if_quiet(self, interval: float) -> None:
        """Seal buffered rows for idle subscribers, at most once per `interval` for all of them."""
        now = time.monotonic()
        if not self._buffer.rows or now - self._last_flush < interval:
            return
        self._last_flush = now
        with self._buffer.lock:
            self._buffer.flush_locked()
            self._buffer.reset_check()


class Subscription:
    """A live feed of one logger's events matching `filters`, in log order, each once.

    Iterate it (`for` or `async for`) for `AuditEvent`s, or for polars DataFrames
    (the hot frame's columns) when made with ``batches=True``. Iteration ends when
    the subscription is closed (`close()`, or leaving its ``with`` / ``async with``
    block: what is queued is discarded) or when the logger is closed (after
    every event logged before `close()` was delivered). Several threads may
    iterate one subscription: each event goes to one of them.

    Counters: `delivered` (matching events queued), `dropped` (of those, dropped
    by "drop_oldest"), `pending` (queued now). `backlog` (with ``backlog=True``):
    the logger's events not yet exported when it subscribed, unfiltered, in logging order.
    """

    def __init__(self, subscribers: Subscribers, filters: Filters, *, batches: bool, max_events: int,
                 on_overflow: str, interval: float) -> None:
        self.filters = filters
        self.batches = batches
        self.max_events = max_events
        self.on_overflow = on_overflow
        self.interval = interval
        self.delivered = 0
        self.dropped = 0
        self.backlog: list[pl.DataFrame] = []
        self._subscribers = subscribers
        self._expr = filters.expr()
        self._matches_nothing = filters.is_empty
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # the delivery thread: inbox filled, or room freed
        self._ready = threading.Condition(self._lock)  # consumers: queue filled, or the end
        self._inbox: deque[pl.DataFrame | threading.Event | None] = deque()
        self._queue: deque[pl.DataFrame] = deque()
        self._queued = 0
        self._ended = False  # nothing more comes after the queue
        self._closed = False
        self._warned = False
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._events: deque[AuditEvent] = deque()  # the batch being handed out event by event
        self._read_lock = threading.Lock()
        # The thread holds the subscription only while it works, so a logger and its
        # subscriptions that nobody references any more are collected (and it ends).
        self._thread = threading.Thread(target=_deliver_while_alive, args=(weakref.ref(self),),
                                        name="axon-audit-subscription", daemon=True)

    # ------------------------------------------------------------------ producer side

    def _offer(self, df: pl.DataFrame | threading.Event | None) -> None:
        with self._lock:
            if not self._closed:
                self._inbox.append(df)
                self._work.notify()

    def _step(self) -> bool:
        """One item of the inbox delivered (or, when it is empty, the buffer sealed);
        False when the delivery has ended."""
        with self._lock:
            if self._closed:
                return False
            item = self._inbox.popleft() if self._inbox else _IDLE
        if item is _IDLE:
            self._subscribers.flush_if_quiet(self.interval)  # outside our lock: sealing offers to us
        elif item is _END:
            with self._lock:
                self._ended = True
                self._wake_locked()
            return False
        elif isinstance(item, threading.Event):  # a `settle()` mark: what came before it is queued
            item.set()
        else:
            assert isinstance(item, pl.DataFrame)
            self._deliver(item)
        return True

    def _deliver(self, chunk: pl.DataFrame) -> None:
        if self._matches_nothing:
            return
        part = chunk if self._expr is None else chunk.filter(self._expr)
        if part.height == 0:
            return
        with self._lock:
            if self.on_overflow == "block":
                cap = self.max_events
                for start in range(0, part.height, cap):
                    piece = part.slice(start, cap)
                    while self._queued and self._queued + piece.height > cap and not self._closed:
                        self._work.wait()
                    if self._closed:
                        return
                    self._push_locked(piece)
                    self._wake_locked()  # before waiting for room again: the reader must know
            else:
                self._push_locked(part)
                self._drop_oldest_locked()
                self._wake_locked()

    def _push_locked(self, df: pl.DataFrame) -> None:
        self._queue.append(df)
        self._queued += df.height
        self.delivered += df.height

    def _drop_oldest_locked(self) -> None:
        over = self._queued - self.max_events
        if over <= 0:
            return
        self.dropped += over
        self._queued -= over
        while over:
            first = self._queue[0]
            if first.height <= over:
                self._queue.popleft()
                over -= first.height
            else:
                self._queue[0] = first.slice(over)
                over = 0
        if not self._warned:
            self._warned = True
            log.warning("axon_audit: a subscription's consumer is slower than the logger; its oldest queued "
                        "events are dropped (max_events=%d; see Subscription.dropped)", self.max_events)

    def _wake_locked(self) -> None:
        self._ready.notify_all()
        waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, fut)
            except RuntimeError:  # that event loop is closed: nobody waits there any more
                pass

    # ------------------------------------------------------------------ consumer side

    def _take_locked(self) -> pl.DataFrame:
        df = self._queue.popleft()
        self._queued -= df.height
        self._work.notify()  # a blocked delivery may have room now
        return df

    def _take(self, timeout: float | None) -> pl.DataFrame | None:
        with self._lock:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._queue:
                if self._ended or self._closed:
                    return None
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._ready.wait(left)
            return self._take_locked()

    def poll(self, timeout: float | None = None) -> pl.DataFrame | None:
        """The next queued batch, waiting up to `timeout` seconds (None: until one comes);
        None on timeout or when the subscription has ended (see `ended`)."""
        return self._take(timeout)

    @property
    def ended(self) -> bool:
        """Closed, or the logger closed and everything it delivered has been read."""
        with self._lock:
            return self._closed or (self._ended and not self._queue and not self._events)

    @property
    def pending(self) -> int:
        """Matching events queued, not yet read."""
        return self._queued

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if self.batches:
            df = self._take(None)
            if df is None:
                raise StopIteration
            return df
        with self._read_lock:
            if not self._events:
                df = self._take(None)
                if df is None:
                    raise StopIteration
                self._events.extend(frame_to_events(df))
            return self._events.popleft()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Any:
        if not self.batches and self._events:
            return self._events.popleft()
        df = await self._atake()
        if df is None:
            raise StopAsyncIteration
        if self.batches:
            return df
        self._events.extend(frame_to_events(df))
        return self._events.popleft()

    async def _atake(self) -> pl.DataFrame | None:
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                if self._queue:
                    return self._take_locked()
                if self._ended or self._closed:
                    return None
                fut: asyncio.Future[None] = loop.create_future()
                self._waiters.append((loop, fut))
            await fut

    def settle(self) -> threading.Event:
        """Seal what the logger buffers; the Event returned is set once every matching
        event logged before this call is queued (a consumer that must not lose events,
        such as a sink, reads until then before `close()`). Already set when the
        logger's close is on its way: the subscription ends after everything anyway."""
        mark = threading.Event()
        buffer = self._subscribers._buffer
        with buffer.lock:  # the logger's close offers its end under this lock too
            with self._lock:
                if self._ended or self._closed or any(item is _END for item in self._inbox):
                    mark.set()
                    return mark
            buffer.flush_locked()  # offers the chunk to the inbox, before the mark
            buffer.reset_check()
            self._offer(mark)
        return mark

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Stop: no more deliveries, what is queued is discarded, iteration ends."""
        self._subscribers.remove(self)
        with self._lock:
            self._closed = True
            self._inbox.clear()
            self._inbox.append(_END)  # wakes the delivery thread, which sees `_closed`
            self._queue.clear()
            self._queued = 0
            self._events.clear()
            self._work.notify_all()
            self._wake_locked()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "ended" if self._ended else "live"
        return (f"Subscription({state}, batches={self.batches}, on_overflow={self.on_overflow!r}, "
                f"delivered={self.delivered}, dropped={self.dropped}, pending={self._queued})")


def _deliver_while_alive(ref: weakref.ref[Subscription]) -> None:
    """The delivery thread: waits holding only the inbox, steps holding the subscription."""
    sub = ref()
    if sub is None:
        return
    work, inbox, interval = sub._work, sub._inbox, sub.interval
    del sub
    while True:
        with work:
            if not inbox:
                work.wait(interval)
        sub = ref()
        if sub is None or not sub._step():
            return
        del sub


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def subscribe(
    self: Any,
    *,
    batches: bool = False,
    max_events: int = 100_000,
    on_overflow: Literal["drop_oldest", "block"] = "drop_oldest",
    interval: float = 0.2,
    backlog: bool = False,
    **filters: Any,
) -> Subscription:
    """A live `Subscription` to the events logged from now on that match `filters`
    (the keywords of `query_events`, without `limit`), in log order, each once.

    Iterate it with ``for`` (a thread-safe blocking iterator) or ``async for``;
    ``batches=True`` yields polars DataFrames instead of `AuditEvent`s. Events
    arrive in batches as the buffer is sealed, and at most about `interval`
    seconds late when the logger is quiet. At most `max_events` matching events
    wait for the consumer; beyond that `on_overflow` applies: "drop_oldest"
    (counted in `Subscription.dropped`) or "block" (the delivery waits; `log()`
    never does). `close()` on the logger ends every subscription after it has
    delivered what was logged before. ``backlog=True`` also hands over, in
    `Subscription.backlog`, the frames of the events logged before that are not
    exported yet (recovered from a WAL, or in memory), taken at the same cut.

    Example:
        >>> from axon_audit import AuditLogger
        >>> audit = AuditLogger()
        >>> with audit.subscribe(operation="forget") as sub:
        ...     _ = audit.log("store", user_id="u1"); _ = audit.log("forget", user_id="u2")
        ...     audit.close()
        ...     [e.user_id for e in sub]
        ['u2']
    """
    for name, flag in (("batches", batches), ("backlog", backlog)):
        if type(flag) is not bool:
            raise AuditTypeError(f"{name} must be True or False, got {flag!r}")
    if isinstance(max_events, bool) or not isinstance(max_events, int) or max_events < 1:
        raise AuditValueError(f"max_events must be an int >= 1, got {max_events!r}")
    if on_overflow not in OVERFLOW_POLICIES:
        raise AuditValueError(f"on_overflow must be one of {', '.join(OVERFLOW_POLICIES)}, got {on_overflow!r}")
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not 0 < interval < float("inf"):
        raise AuditValueError(f"interval must be a number of seconds > 0, got {interval!r}")
    subscribers: Subscribers = self._hot.subscribers
    sub = Subscription(subscribers, Filters.of(filters, allow_limit=False), batches=batches,
                       max_events=max_events, on_overflow=on_overflow, interval=float(interval))
    subscribers.add(sub, backlog)
    sub._thread.start()
    return sub
