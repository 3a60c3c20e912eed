"""How many threads the export's compiled and Arrow steps may keep busy.

A rotation alone (`FolderTarget.append`, `verify`, a benchmark) may use every core.
The logger's background exporter must leave one core to the threads that log:
they run Python and need a core and the GIL, and every runnable export thread
beyond cores - 1 takes its share of the loggers' core from the OS scheduler (on 2
cores, 3 export lanes side by side halved `log_event`'s rate, measured with
benchmarks/export_pipeline.py sustained). So the exporter asks for
`background_threads()`: 1 on a 2-core machine, which writes an export's parts one
after another on one thread.
"""

from __future__ import annotations

import os

__all__ = ["CORES", "background_threads"]

#: The cores this process may run on.
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def background_threads() -> int:
    """Threads for the logger's background exports: every core but one, at least one.

    Example:
        >>> from axon_audit.io.threads import CORES, background_threads
        >>> background_threads() == max(1, CORES - 1)
        True
    """
    return max(1, CORES - 1)
