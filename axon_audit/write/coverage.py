"""What a logger's read covers: the whole trail or memory only, and saying so.

A logger that exports (`auto_export_path`) reads its whole trail by default
(memory, exports being written, and the export folder); `include_archived=False`
asks for memory only. A read that leaves accepted events out logs one warning
(per logger and cause) through the "axon_audit" logger, naming how many and how
to include them; `get_statistics()` reports the same as `covers` and
`events_not_covered`. A logger without exports pays one flag test per read.
"""

from __future__ import annotations

import logging
from typing import Any

from axon_audit.write.buffer import HotBuffer
from axon_audit.write.exporter import Exporter

__all__ = ["Coverage"]

log = logging.getLogger("axon_audit")


class Coverage:
    """The coverage rule of one logger (`whole`, `not_covered`, `fields`)."""

    __slots__ = ("_exporter", "_hot", "_warned_dropped", "_warned_memory")

    def __init__(self, hot: HotBuffer, exporter: Exporter | None) -> None:
        self._hot = hot
        self._exporter = exporter
        self._warned_memory = False  # include_archived=False while events were exported
        self._warned_dropped = False  # rotation without an export folder dropped events

    def whole(self, include_archived: bool | None) -> bool:
        """Whether a read covers the trail outside memory: None means "when this logger exports"."""
        if include_archived is None:
            return self._exporter is not None
        return include_archived

    def not_covered(self, whole: bool) -> int:
        """Accepted events such a read leaves out: dropped at rotation, and (memory
        only) those this logger exported or is exporting."""
        ex = self._exporter
        outside = 0 if whole or ex is None else ex.exported_events + ex.pending_events
        return self._hot.dropped + outside

    def check(self, include_archived: bool | None) -> bool:
        """`whole(include_archived)`, warning once if the read leaves events out."""
        whole = self.whole(include_archived)
        if self._hot.dropped and not self._warned_dropped:
            self._warned_dropped = True
            log.warning("axon_audit: reads cover the events in memory only: %s events were dropped at rotation "
                        "(no auto_export_path) and are not covered; set auto_export_path to keep them",
                        f"{self._hot.dropped:,}")
        if not whole and self._exporter is not None and not self._warned_memory:
            if n := self.not_covered(False):
                self._warned_memory = True
                log.warning("axon_audit: include_archived=False reads the events in memory only: %s exported "
                            "events are not covered; pass include_archived=True (or leave it unset) to read "
                            "the whole trail", f"{n:,}")
        return whole

    def fields(self, include_archived: bool | None) -> dict[str, Any]:
        """`covers` ("trail" or "memory") and `events_not_covered` for `get_statistics`."""
        whole = self.whole(include_archived) and self._exporter is not None
        return {"covers": "trail" if whole else "memory", "events_not_covered": self.not_covered(whole)}
