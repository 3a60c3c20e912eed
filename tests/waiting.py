"""Waiting in tests for something another thread does (a receiver's count, a sink's drain)."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll `cond` every 10 ms; fail the test if it is not true within `timeout` seconds."""
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)
