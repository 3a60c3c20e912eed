"""The export backlog is bounded by default: a logger whose exports cannot keep up
slows its callers down (or, with backlog_policy="raise", refuses events) instead of
growing memory without limit; only an explicit `max_backlog=None` is unbounded.

The default floor (1 M events) is lowered in most tests so that a bound of a few
rotations is reached in milliseconds; the rule that computes the bound is the real one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from axon_audit import AuditLogger, AuditUnavailableError, AuditValueError
from axon_audit.write import backpressure
from tests.exported import listed_ids

MAX_EVENTS = 100
FLOOR = 1_000  # the default bound in these tests: max(4 * 100, 1_000) = 10 rotations




@pytest.fixture
def small_default(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(backpressure, "DEFAULT_MAX_BACKLOG", FLOOR)
    bound = backpressure.default_max_backlog(MAX_EVENTS)
    assert bound == FLOOR
    return bound


def slow_exports(audit: AuditLogger, seconds: float, seen: list[int]) -> None:
    """Make every export take `seconds` longer; record the backlog each one starts with."""
    assert audit._exporter is not None
    target = audit._exporter.target
    real = target.export

    def export(*args: Any) -> None:
        seen.append(audit.get_stats()["pending_export_events"])
        time.sleep(seconds)
        real(*args)

    target.export = export  # type: ignore[method-assign]


class Sampler:
    """Samples `pending_export_events` on its own thread until stopped."""

    def __init__(self, audit: AuditLogger) -> None:
        self.audit = audit
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self.audit.get_stats()["pending_export_events"])
            time.sleep(0.001)

    def __enter__(self) -> Sampler:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


@pytest.fixture
def held_writer() -> Iterator[threading.Event]:
    """Set the event to let a writer thread held with `Exporter.submit_call` go on."""
    gate = threading.Event()
    yield gate
    gate.set()  # never leave a writer thread waiting, whatever the test did


# --------------------------------------------------------------------------- the default value


def test_the_default_bound_is_a_few_rotations_deep_and_only_with_exports(tmp_path: Path) -> None:
    def bound(**kw: Any) -> Any:
        return AuditLogger(**kw).get_stats()["max_backlog"]

    assert backpressure.DEFAULT_MAX_BACKLOG == 1_000_000
    assert bound(max_events=100_000, auto_export_path=tmp_path / "a") == 1_000_000  # 10 rotations
    assert bound(max_events=10_000, auto_export_path=tmp_path / "b") == 1_000_000  # the floor
    assert bound(max_events=500_000, auto_export_path=tmp_path / "c") == 2_000_000  # 4 rotations
    assert bound(max_events=100_000, auto_export_path=tmp_path / "d", max_backlog="default") == 1_000_000
    # Nothing ever waits for export without a folder or without rotation.
    assert bound(max_events=100_000) is None
    assert bound(max_events=100_000, auto_export_path=tmp_path / "e", enable_rotation=False) is None
    # Explicit choices are kept.
    assert bound(max_events=100_000, auto_export_path=tmp_path / "f", max_backlog=None) is None
    assert bound(max_events=100_000, auto_export_path=tmp_path / "g", max_backlog=250) == 250
    with pytest.raises(AuditValueError, match='max_backlog must be an int >= 1, "default" or None'):
        AuditLogger(auto_export_path=tmp_path / "h", max_backlog="unbounded")


# --------------------------------------------------------------------------- blocking


async def test_slow_exports_block_log_event_at_the_default_bound_and_lose_nothing(
        tmp_path: Path, small_default: int) -> None:
    folder = tmp_path / "exports"
    audit = AuditLogger(max_events=MAX_EVENTS, auto_export_path=folder)
    started: list[int] = []
    slow_exports(audit, 0.02, started)  # ~5 000 events/s exported, far slower than logging
    ids: list[str] = []
    with Sampler(audit) as sampler:
        for i in range(40 * MAX_EVENTS):  # 40 rotations: 4 times the bound
            ids.append((await audit.log_event("store", user_id="u", metadata={"i": i})).event_id)
    stats = audit.get_stats()
    samples = sampler.samples + started
    # Callers were held back: the backlog reached the bound and never went past it
    # (one thread, rotations of exactly MAX_EVENTS, a bound of whole rotations).
    assert stats["blocked_waits"] >= 1
    assert max(samples) == small_default
    assert stats["pending_export_events"] <= small_default
    # Logging waited for exports: 30 of the 40 rotations were written before it returned.
    assert stats["exported_events"] >= 30 * MAX_EVENTS
    audit.close()
    stats = audit.get_stats()
    assert stats["exported_events"] == stats["total_events_logged"] == len(ids)
    assert stats["pending_export_events"] == 0 and stats["events_in_memory"] == 0
    assert listed_ids(folder) == ids  # each event once, in logging order


def test_many_threads_blocked_at_the_default_bound_all_finish_and_lose_nothing(
        tmp_path: Path, small_default: int) -> None:
    folder = tmp_path / "exports"
    audit = AuditLogger(max_events=MAX_EVENTS, auto_export_path=folder)
    started: list[int] = []
    slow_exports(audit, 0.01, started)
    threads_n, per = 4, 1_500
    ids: list[list[str]] = [[] for _ in range(threads_n)]

    def host(k: int) -> None:
        for i in range(per):
            ids[k].append(audit.log("store", user_id=f"t{k}", metadata={"i": i}).event_id)

    threads = [threading.Thread(target=host, args=(k,)) for k in range(threads_n)]
    with Sampler(audit) as sampler:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert not any(t.is_alive() for t in threads)  # no deadlock
    assert audit.get_stats()["blocked_waits"] >= 1
    # With several threads the rotation that crosses the bound may carry a row per
    # thread more, and the bound is checked before a rotation, not in its middle.
    assert max(sampler.samples + started) <= small_default + MAX_EVENTS + threads_n
    audit.close()
    stats = audit.get_stats()
    assert stats["exported_events"] == threads_n * per
    on_disk = listed_ids(folder)
    assert sorted(on_disk) == sorted(i for part in ids for i in part)  # each event exactly once
    for part in ids:  # each thread's events in its own order
        pos = {e: n for n, e in enumerate(on_disk)}
        assert [pos[e] for e in part] == sorted(pos[e] for e in part)


def test_a_held_writer_blocks_callers_until_it_goes_on(tmp_path: Path, small_default: int,
                                                        held_writer: threading.Event) -> None:
    folder = tmp_path / "exports"
    audit = AuditLogger(max_events=MAX_EVENTS, auto_export_path=folder)
    assert audit._exporter is not None
    audit._exporter.submit_call(held_writer.wait)  # no export is written until the gate opens
    ids: list[str] = []
    done = threading.Event()

    def host() -> None:
        for i in range(3 * small_default):
            ids.append(audit.log("store", metadata={"i": i}).event_id)
        done.set()

    t = threading.Thread(target=host)
    t.start()
    deadline = time.monotonic() + 10
    while audit.get_stats()["pending_export_events"] < small_default and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    stats = audit.get_stats()
    assert not done.is_set()  # blocked
    assert stats["pending_export_events"] == small_default  # and the backlog stopped growing there
    assert stats["total_events_logged"] == small_default  # nothing taken while blocked
    held_writer.set()
    t.join(60)
    assert done.is_set()
    audit.close()
    assert audit.get_stats()["exported_events"] == len(ids) == 3 * small_default
    assert listed_ids(folder) == ids


# --------------------------------------------------------------------------- explicit choices


def test_explicit_none_stays_unbounded(tmp_path: Path, small_default: int, held_writer: threading.Event) -> None:
    folder = tmp_path / "exports"
    audit = AuditLogger(max_events=MAX_EVENTS, auto_export_path=folder, max_backlog=None)
    assert audit._exporter is not None
    audit._exporter.submit_call(held_writer.wait)
    n = 5 * small_default
    ids: list[str] = []
    t = threading.Thread(target=lambda: ids.extend(audit.log("store").event_id for _ in range(n)))
    t.start()
    t.join(60)
    assert not t.is_alive()  # never blocked although nothing was exported
    stats = audit.get_stats()
    assert stats["max_backlog"] is None and stats["blocked_waits"] == 0
    assert stats["pending_export_events"] == n > small_default
    held_writer.set()
    audit.close()
    assert audit.get_stats()["exported_events"] == n
    assert listed_ids(folder) == ids


def test_raise_policy_at_the_default_bound_names_max_backlog(tmp_path: Path, small_default: int,
                                                              held_writer: threading.Event) -> None:
    folder = tmp_path / "exports"
    audit = AuditLogger(max_events=MAX_EVENTS, auto_export_path=folder, backlog_policy="raise")
    assert audit._exporter is not None
    audit._exporter.submit_call(held_writer.wait)
    accepted: list[str] = []
    with pytest.raises(AuditUnavailableError, match=rf"backlog full: .*max_backlog={small_default}\)"):
        for i in range(3 * small_default):
            accepted.append(audit.log("store", metadata={"i": i}).event_id)
    stats = audit.get_stats()
    assert len(accepted) == small_default and stats["refused_events"] == 1
    assert stats["total_events_logged"] == len(accepted)  # the refused event was not taken
    with pytest.raises(AuditUnavailableError, match="max_backlog"):
        audit.log_batch([{"operation": "store"}])  # a batch is refused whole
    assert audit.get_stats()["total_events_logged"] == len(accepted)
    held_writer.set()
    audit.flush()  # the backlog is written: room again
    accepted.append(audit.log("store").event_id)
    audit.close()
    assert listed_ids(folder) == accepted
