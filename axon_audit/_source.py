"""Opening an export folder for reading: the one place the CLI and the demo get a reader.

`open_source(path)` is the archive (`open_archive`); callers use its read API
(`scan`, `query_events`, `sql`, `get_statistics`, `get_user_statistics`,
`export_to_file`, `files`) and `newest` below, so another reader is a change
here only. `parquet_listing` lists the Parquet files of a folder as they land
(for `tail`), local or on object storage alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import polars as pl
import pyarrow.fs as pafs

from ._archive import AuditArchive, open_archive
from ._errors import ArchiveError
from ._fs import StorageOptions, resolve
from ._query import Filters

__all__ = ["newest", "open_source", "parquet_listing"]


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


def open_source(path: str | Path, *, storage_options: StorageOptions | None = None) -> AuditArchive:
    """A read-only reader for the export folder (or export file) at `path`, a local
    path or an `s3://` URI (`storage_options` configure S3; a local path ignores them).

    Example:
        >>> from axon_audit._source import open_source
        >>> open_source("/no/such/folder")
        Traceback (most recent call last):
        ...
        axon_audit._errors.AuditValueError: path '/no/such/folder' does not exist
    """
    return open_archive(path, storage_options=storage_options)


def parquet_listing(
    path: str | Path, *, storage_options: StorageOptions | None = None
) -> tuple[pafs.FileSystem, Callable[[], list[str]]]:
    """The filesystem of the export folder at `path` and a function listing its
    Parquet files now (paths inside that filesystem, sorted; files still being
    written are left out). A local folder lists through pyarrow's LocalFileSystem,
    an `s3://` prefix through S3: one code path for both. An export file lists nothing.

    Example:
        >>> import tempfile
        >>> from axon_audit import AuditLogger
        >>> from axon_audit._source import parquet_listing
        >>> folder = tempfile.mkdtemp()
        >>> fs, listing = parquet_listing(folder)
        >>> listing()
        []
        >>> with AuditLogger(auto_export_path=folder) as audit:
        ...     _ = audit.log("store")
        >>> [p.split("/parquet/")[1][:5] for p in listing()]
        ['date=']
    """
    loc = resolve(path, storage_options=storage_options)
    if loc.is_file():
        return loc.fs, list
    # The whole folder when parquet/ is not there yet: the listing is recursive, so
    # it still finds parquet/ once the first rotation lands.
    root = loc / "parquet" if (loc / "parquet").is_dir() else loc

    def listing() -> list[str]:
        return [info.path for info in root.files() if info.path.endswith(".parquet")]

    return loc.fs, listing
