"""Opening an export folder for reading: the one place the CLI and the demo get a reader.

`open_source(path)` is the archive (`open_archive`); callers use its read API
(`scan`, `query_events`, `sql`, `get_statistics`, `get_user_statistics`,
`export_to_file`, `files`) and `newest` below, so another reader (an
object-store URI, say) is a change here only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from ._archive import AuditArchive, open_archive
from ._errors import ArchiveError
from ._query import Filters

__all__ = ["newest", "open_source"]


def newest(source: Any, *, limit: int | None = None, **filters: Any) -> pl.DataFrame:
    """The events of `source` matching `filters` as a frame, newest first, at most `limit`.

    Example:
        >>> import tempfile
        >>> from axon_audit import AuditLogger
        >>> from axon_audit._source import newest, open_source
        >>> folder = tempfile.mkdtemp()
        >>> with AuditLogger(auto_export_path=folder) as audit:
        ...     for op in ("store", "recall", "forget"):
        ...         _ = audit.log(op)
        >>> newest(open_source(folder), limit=2)["operation"].to_list()
        ['FORGET', 'RECALL']
    """
    Filters.build(limit=limit)  # checks it
    lf = source.scan(**filters).sort(["timestamp", "event_id"], descending=True)
    if limit is not None:
        lf = lf.head(limit)
    try:
        return lf.collect()
    except (pl.exceptions.ComputeError, OSError) as exc:
        raise ArchiveError(f"cannot read the events under {getattr(source, 'path', source)}: {exc}") from None


def open_source(path: str | Path) -> AuditArchive:
    """A read-only reader for the export folder (or export file) at `path`.

    Example:
        >>> from axon_audit._source import open_source
        >>> open_source("/no/such/folder")
        Traceback (most recent call last):
        ...
        axon_audit._errors.AuditValueError: path '/no/such/folder' does not exist
    """
    return open_archive(path)
