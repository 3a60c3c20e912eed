"""The interpreter's thread switch interval while a background export runs.

A logging thread runs Python without pause; the export thread beside it needs the
GIL back after each compiled step (polars, Arrow, the Merkle log's C, every file
call), and CPython hands it over only when the holder has run a whole switch
interval, 5 ms by default. An export of 100 K events takes the GIL back ~100 times,
so beside a busy logger it took 1.05-1.11 s instead of 0.37 s, fell behind, and the
backlog's bound then stopped the loggers. With 0.5 ms while exports run it took
0.42-0.47 s and the busy thread kept 86-95 % of its rate (/tmp figures of this
session's gaps script, now benchmarks/export_pipeline.py sustained).

So `shorter_switch_interval()` lowers the interval to `EXPORT_SWITCH_INTERVAL`
while any export runs and puts the previous one back after the last, unless
someone else changed it meanwhile. It only ever lowers it. Set the environment
variable ``AXON_AUDIT_EXPORT_SWITCH_INTERVAL`` to a number of seconds, or to
``off`` to leave the interpreter's setting alone.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator

__all__ = ["EXPORT_SWITCH_INTERVAL", "shorter_switch_interval"]


def _setting(text: str | None) -> float | None:
    if text is None or not text.strip():
        return 0.0005
    if text.strip().lower() in ("off", "none", "0"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"AXON_AUDIT_EXPORT_SWITCH_INTERVAL must be a number of seconds or 'off', "
                         f"got {text!r}") from None
    if not 0 < value < 1:
        raise ValueError(f"AXON_AUDIT_EXPORT_SWITCH_INTERVAL must be between 0 and 1 second, got {text!r}")
    return value


#: The switch interval while exports run (seconds), None: left alone.
EXPORT_SWITCH_INTERVAL = _setting(os.environ.get("AXON_AUDIT_EXPORT_SWITCH_INTERVAL"))

_lock = threading.Lock()
_running = 0
_saved: float | None = None  # the interval before the first running export lowered it
_ours: float | None = None  # what we set: someone else's later change is theirs to keep


@contextlib.contextmanager
def shorter_switch_interval(interval: float | None = None) -> Iterator[None]:
    """Run the block with the switch interval at most `interval` (default
    `EXPORT_SWITCH_INTERVAL`); nested and concurrent uses share one saved value.

    Example:
        >>> import sys
        >>> from axon_audit.write.switching import shorter_switch_interval
        >>> before = sys.getswitchinterval()
        >>> with shorter_switch_interval(0.0005):
        ...     round(sys.getswitchinterval(), 6)
        0.0005
        >>> sys.getswitchinterval() == before
        True
    """
    global _running, _saved, _ours
    interval = EXPORT_SWITCH_INTERVAL if interval is None else interval
    if interval is None:
        yield
        return
    with _lock:
        if _running == 0:
            _saved = sys.getswitchinterval()
            if interval < _saved:
                sys.setswitchinterval(interval)
            _ours = sys.getswitchinterval()
        _running += 1
    try:
        yield
    finally:
        with _lock:
            _running -= 1
            if _running == 0 and _saved is not None:
                if sys.getswitchinterval() == _ours:
                    sys.setswitchinterval(_saved)
                _saved = _ours = None
