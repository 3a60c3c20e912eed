"""Plugging axon_audit into existing code: `audited`, `audit_context` and
`audit_note` (the stdlib `logging` bridge, `AuditLogHandler`, is in `log_handler`).

`audited(operation)` wraps an async (or plain) function so every call becomes one
audit event: who (user/session from the call or the surrounding `audit_context`),
what (the operation, entry ids, a summary of the arguments), how long, and how it
went (FAILURE with the error message when it raises; the exception propagates).
The user/session of a call are kept in `contextvars`, so nested calls, and tasks
started inside them, inherit them.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from axon_audit.exceptions import AuditError, AuditTypeError, AuditValueError
from axon_audit.model.coerce import coerce_operation, coerce_status, encode_metadata
from axon_audit.model.enums import EventStatus, OperationType

__all__ = ["audit_context", "audit_note", "audited", "current_audit_context"]

F = TypeVar("F", bound=Callable[..., Any])

_log = logging.getLogger("axon_audit")

_USER: contextvars.ContextVar[str | None] = contextvars.ContextVar("axon_audit_user_id", default=None)
_SESSION: contextvars.ContextVar[str | None] = contextvars.ContextVar("axon_audit_session_id", default=None)
# The note of the audited call running now (None outside one): see `audit_note`.
_NOTE: contextvars.ContextVar[_Note | None] = contextvars.ContextVar("axon_audit_note", default=None)

# Argument names the wrapper reads itself instead of summarizing.
_CONTEXT_ARGS = ("user_id", "session_id")
_ENTRY_ARGS = ("entry_id", "entry_ids")
# List arguments kept as they are in the metadata (short lists of short strings only).
_LABEL_ARGS = ("tags", "labels")


def _check_id(value: Any, argument: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise AuditTypeError(f"{argument} must be a str or None, got {type(value).__name__}")
    return value


@contextmanager
def audit_context(user_id: str | None = None, session_id: str | None = None) -> Iterator[None]:
    """Make `user_id`/`session_id` the default of every audited call inside the block.

    A value not given is inherited from the surrounding context; a value given
    to the call itself wins over the context.

    Example:
        >>> from axon_audit import audit_context, current_audit_context
        >>> with audit_context(user_id="user_123", session_id="session_abc"):
        ...     with audit_context(session_id="session_xyz"):
        ...         current_audit_context()
        ('user_123', 'session_xyz')
        >>> current_audit_context()
        (None, None)
    """
    tokens = []
    if user_id is not None:
        tokens.append((_USER, _USER.set(_check_id(user_id, "user_id"))))
    if session_id is not None:
        tokens.append((_SESSION, _SESSION.set(_check_id(session_id, "session_id"))))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def current_audit_context() -> tuple[str | None, str | None]:
    """The `(user_id, session_id)` that an audited call here would be logged with.

    Example:
        >>> from axon_audit import current_audit_context
        >>> current_audit_context()
        (None, None)
    """
    return _USER.get(), _SESSION.get()


class _Note:
    """What the running call adds to its own audit event."""

    __slots__ = ("entry_ids", "error_message", "metadata", "status")

    def __init__(self) -> None:
        self.entry_ids: list[str] = []
        self.metadata: dict[str, Any] = {}
        self.status: EventStatus | None = None
        self.error_message: str | None = None


def audit_note(
    *,
    entry_ids: Sequence[str] | None = None,
    status: EventStatus | str | None = None,
    error_message: str | None = None,
    **metadata: Any,
) -> None:
    """Add to the audit event of the audited call running now: entry ids it
    touched (e.g. the id it just created), metadata, or a PARTIAL status.

    Outside an audited call this does nothing. Metadata must be JSON (checked
    here, so a bad value fails at the line that gave it).

    Example:
        >>> import asyncio
        >>> from axon_audit import AuditLogger, audited, audit_note
        >>> audit = AuditLogger()
        >>> @audited("store", audit_logger=audit)
        ... async def save(text):
        ...     audit_note(entry_ids=["entry_7"], source="api")
        ...     return "entry_7"
        >>> asyncio.run(save("hello"))
        'entry_7'
        >>> e = audit.query_events()[0]
        >>> e.entry_ids, e.metadata
        (['entry_7'], {'text_chars': 5, 'source': 'api'})
    """
    note = _NOTE.get()
    if note is None:
        return
    for key, value in metadata.items():
        try:
            encode_metadata({key: value})  # validates here, so the error points at this call
        except AuditError as exc:
            raise AuditValueError(f"audit_note({key}=...): {exc}") from None
        note.metadata[key] = value
    if entry_ids is not None:
        if isinstance(entry_ids, str):
            entry_ids = [entry_ids]
        note.entry_ids.extend(entry_ids)
    if status is not None:
        note.status = coerce_status(status)
    if error_message is not None:
        note.error_message = error_message


def _summary(name: str, value: Any) -> tuple[str, Any] | None:
    """One metadata item describing an argument without copying its content:
    scalars as they are, text by its length, collections by their size."""
    if isinstance(value, (OperationType, EventStatus)):
        return name, value.value
    # Plain JSON numbers only (an IntEnum, a numpy float64 are int/float subclasses metadata
    # refuses): a summary the door refused would fail the call after it ran, unaudited.
    if isinstance(value, bool):
        return name, bool(value)
    if isinstance(value, int):
        value = int(value)
        return (name, value) if -(2**63) <= value < 2**64 else (f"{name}_bits", value.bit_length())
    if isinstance(value, float):
        value = float(value)
        return (name, value) if math.isfinite(value) else None  # nothing to say; NaN, inf are not JSON
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        return f"{name}_chars", len(value)
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        # Labels (tags) are kept, they are what an auditor reads; any other list may hold content.
        if name in _LABEL_ARGS and isinstance(value, (list, tuple)) and len(value) <= 16 and all(
            isinstance(v, str) and len(v) <= 64 for v in value
        ):
            return name, list(value)
        return f"{name}_count", len(value)
    try:
        return f"{name}_count", len(value)
    except TypeError:
        return f"{name}_type", type(value).__name__


def _entry_ids_of(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    try:
        return [v for v in value if isinstance(v, str)]
    except TypeError:
        return []


def audited(
    operation: OperationType | str,
    *,
    audit_logger: Any = None,
    summarize: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
) -> Callable[[F], F]:
    """Decorator: log one audit event per call of an async (or plain) function.

    The event has the operation, the `user_id`/`session_id` given to the call
    (taken out of the arguments if the function does not accept them) or else
    those of the surrounding `audit_context`, the `entry_id`/`entry_ids`
    arguments plus any added with `audit_note`, the duration, and a metadata
    summary of the other arguments (scalars as given, text as its length,
    collections as their size, a short `tags`/`labels` list as it is; None and
    `self` left out: content never enters the trail; `summarize(arguments)`
    replaces that summary).
    A call that raises is logged as FAILURE with ``"ExcType: message"`` and the
    exception propagates.

    The logger is `audit_logger`, or else the `audit_logger` attribute of the
    method's instance; when that is None the call runs unaudited.

    Example:
        >>> import asyncio
        >>> from axon_audit import AuditLogger, audited, audit_context
        >>> class Store:
        ...     def __init__(self, audit_logger):
        ...         self.audit_logger = audit_logger
        ...     @audited("forget")
        ...     async def delete(self, entry_id):
        ...         if entry_id == "missing":
        ...             raise KeyError(entry_id)
        >>> audit = AuditLogger()
        >>> store = Store(audit)
        >>> async def main():
        ...     with audit_context(user_id="user_123"):
        ...         await store.delete("entry_1", session_id="s1")
        ...         try:
        ...             await store.delete("missing")
        ...         except KeyError:
        ...             pass
        >>> asyncio.run(main())
        >>> [(e.status.value, e.user_id, e.session_id, e.entry_ids, e.error_message)
        ...  for e in audit.query_events()]  # doctest: +NORMALIZE_WHITESPACE
        [('FAILURE', 'user_123', None, ['missing'], "KeyError: 'missing'"),
         ('SUCCESS', 'user_123', 's1', ['entry_1'], None)]
    """
    op = coerce_operation(operation)
    if summarize is not None and not callable(summarize):
        raise AuditTypeError(f"summarize must be callable or None, got {type(summarize).__name__}")

    def decorate(fn: F) -> F:
        if not callable(fn):
            raise AuditTypeError(f"audited() decorates a function, got {type(fn).__name__}")
        sig = inspect.signature(fn)
        params = sig.parameters
        P = inspect.Parameter
        accepts_var_kw = any(p.kind is P.VAR_KEYWORD for p in params.values())
        # Context arguments the function does not take itself are removed before the call.
        strip = tuple(a for a in _CONTEXT_ARGS if a not in params and not accepts_var_kw)
        first = next(iter(params), None)
        is_method = first in ("self", "cls")
        # Worked out once: the per-call path below does dict work only (inspect's bind is slow).
        positional = [n for n, p in params.items() if p.kind is P.POSITIONAL_OR_KEYWORD]
        simple = all(p.kind in (P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY) for p in params.values())
        defaults = {n: p.default for n, p in params.items() if p.default is not P.empty}
        required = frozenset(n for n, p in params.items() if p.default is P.empty)
        names = frozenset(params)
        var_kw = {n for n, p in params.items() if p.kind is P.VAR_KEYWORD}
        summarized = [n for n in params if not ((is_method and n == first) or n in _CONTEXT_ARGS
                                                 or n in _ENTRY_ARGS)]

        def bind(args: tuple, kwargs: dict) -> dict[str, Any]:
            if simple and len(args) <= len(positional) and names.issuperset(kwargs):
                arguments = dict(defaults)
                arguments.update(zip(positional, args, strict=False))
                if not kwargs.keys() & positional[:len(args)]:
                    arguments.update(kwargs)
                    if required.issubset(arguments):
                        return arguments
            bound = sig.bind(*args, **kwargs)  # a wrong call raises TypeError here, unlogged
            bound.apply_defaults()
            return dict(bound.arguments)

        def prepare(args: tuple, kwargs: dict) -> tuple[Any, str | None, str | None, list[str], dict, _Note]:
            logger = audit_logger
            if logger is None and is_method and args:
                logger = getattr(args[0], "audit_logger", None)
            user_id = kwargs.get("user_id")
            session_id = kwargs.get("session_id")
            for name in strip:
                kwargs.pop(name, None)
            if logger is None:
                return None, None, None, [], {}, _Note()
            arguments = bind(args, kwargs)
            if user_id is None:
                user_id = arguments.get("user_id")
            if session_id is None:
                session_id = arguments.get("session_id")
            user_id = _check_id(user_id, "user_id") or _USER.get()
            session_id = _check_id(session_id, "session_id") or _SESSION.get()
            entries: list[str] = []
            for name in _ENTRY_ARGS:
                if name in arguments:
                    entries.extend(_entry_ids_of(arguments[name]))
            if summarize is not None:
                meta = dict(summarize(arguments))
            else:
                meta = {}
                for name in summarized:
                    if name not in arguments:
                        continue
                    value = arguments[name]
                    items = value.items() if name in var_kw else ((name, value),)
                    for key, val in items:
                        item = _summary(key, val)
                        if item is not None:
                            meta[item[0]] = item[1]
            return logger, user_id, session_id, entries, meta, _Note()

        def finish(logger: Any, user_id: Any, session_id: Any, entries: list[str], meta: dict,
                   note: _Note, started: float, exc: BaseException | None) -> None:
            duration = (time.perf_counter() - started) * 1000.0
            meta.update(note.metadata)
            error: str | None
            if exc is not None:
                status = EventStatus.FAILURE
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                status = note.status or EventStatus.SUCCESS
                error = note.error_message
            seen = dict.fromkeys(entries + note.entry_ids)  # ordered, without repeats
            logger.log(op, user_id, session_id, list(seen), meta or None, status, error, duration)

        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                logger, user_id, session_id, entries, meta, note = prepare(args, kwargs)
                if logger is None:
                    return await fn(*args, **kwargs)
                tokens = (_USER.set(user_id), _SESSION.set(session_id), _NOTE.set(note))
                started = time.perf_counter()
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as exc:  # logged, then re-raised unchanged
                    _reset(tokens)
                    _finish_failure(finish, (logger, user_id, session_id, entries, meta, note, started, exc))
                    raise
                _reset(tokens)
                finish(logger, user_id, session_id, entries, meta, note, started, None)
                return result

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            logger, user_id, session_id, entries, meta, note = prepare(args, kwargs)
            if logger is None:
                return fn(*args, **kwargs)
            tokens = (_USER.set(user_id), _SESSION.set(session_id), _NOTE.set(note))
            started = time.perf_counter()
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # logged, then re-raised unchanged
                _reset(tokens)
                _finish_failure(finish, (logger, user_id, session_id, entries, meta, note, started, exc))
                raise
            _reset(tokens)
            finish(logger, user_id, session_id, entries, meta, note, started, None)
            return result

        return sync_wrapper  # type: ignore[return-value]

    return decorate


def _finish_failure(finish: Callable[..., None], args: tuple) -> None:
    """Log the failed call; if even that fails, the call's own exception still wins
    (it carries a note saying its audit event is missing)."""
    try:
        finish(*args)
    except Exception as audit_exc:  # noqa: BLE001 - never hide the caller's exception
        exc = args[-1]
        _log.error("axon_audit: could not log the failure of an audited call: %s", audit_exc)
        if hasattr(exc, "add_note"):
            exc.add_note(f"axon_audit: this failure was not audited: {audit_exc}")


def _reset(tokens: tuple) -> None:
    user, session, note = tokens
    _NOTE.reset(note)
    _SESSION.reset(session)
    _USER.reset(user)
