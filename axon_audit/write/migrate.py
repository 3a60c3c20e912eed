"""Bringing an Axon audit history into an export folder: `import_axon_export`.

The events of an Axon export file (`io.legacy.load_axon_export`: ids, times and
every value kept) are logged with `log_batch` by an `AuditLogger` exporting to the
folder, so the folder is written, listed in its manifest and sealed like any
other (`verify` passes). Evidence is never lost nor mixed: the whole file is
checked before anything is written; a folder that holds files but is no export
folder is refused, as is one inside an export folder; an id the folder already
holds refuses the whole import (a second import of the same file adds nothing);
and after writing, every imported id is looked up in the folder once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from axon_audit.exceptions import AuditValueError, ExportError
from axon_audit.io.layout import ExportLayout
from axon_audit.io.legacy import load_axon_export
from axon_audit.model.schema import normalize_batch
from axon_audit.read.archive import open_archive
from axon_audit.write.logger import AuditLogger

__all__ = ["check_import_folder", "import_axon_export"]


def check_import_folder(into: str | Path, argument: str = "into") -> Path:
    """`into` as a Path if events may be imported there: a new or empty folder, or an
    export folder (one with a manifest), not inside one. Else `AuditValueError`
    naming `argument`.

    Example:
        >>> import tempfile, pathlib
        >>> from axon_audit.write.migrate import check_import_folder
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "notes.txt").write_text("mine")
        >>> check_import_folder(folder)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        axon_audit.exceptions.AuditValueError: into: ... holds files but is not an axon_audit export folder ...
    """
    if not isinstance(into, (str, Path)):
        raise AuditValueError(f"{argument} must be a folder path, got {type(into).__name__}")
    folder = Path(into)
    real = folder.resolve()
    for above in real.parents:
        if (above / ExportLayout.MANIFEST_NAME).is_file():
            raise AuditValueError(f"{argument}: {str(folder)!r} lies inside the export folder {str(above)!r}; "
                                  "its files are sealed evidence")
    if folder.exists():
        if not folder.is_dir():
            raise AuditValueError(f"{argument}: {str(folder)!r} is a file, expected a folder")
        if any(folder.iterdir()) and not ExportLayout(folder).manifest_names():
            raise AuditValueError(f"{argument}: {str(folder)!r} holds files but is not an axon_audit export folder "
                                  "(no manifest.json); import into a new or empty folder")
    return folder


def import_axon_export(path: str | Path, into: str | Path, **logger_options: Any) -> int:
    """Import the events of the Axon export file `path` (Axon's bare list, or the
    seed's document) into the export folder `into`; return how many. `logger_options`
    go to the `AuditLogger` that writes the folder (`hmac_key`, `signing_key`, ...).

    Example:
        >>> import json, tempfile, pathlib
        >>> from axon_audit import open_archive, verify
        >>> from axon_audit.write.migrate import import_axon_export
        >>> tmp = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (tmp / "legacy.json").write_text(json.dumps([{"event_id": "3d6f0a2e-8c4b-4e1f-9a7d-2b5c8e1f4a6d",
        ...     "timestamp": "2025-01-15T10:30:45.123456", "operation": "store", "status": "success"}]))
        >>> import_axon_export(tmp / "legacy.json", tmp / "audit")
        1
        >>> verify(tmp / "audit").ok, open_archive(tmp / "audit").query_events()[0].event_id
        (True, '3d6f0a2e-8c4b-4e1f-9a7d-2b5c8e1f4a6d')
    """
    folder = check_import_folder(into)
    rows = load_axon_export(path)
    if not rows:
        raise AuditValueError(f"{path}: holds no events; nothing to import")
    ids = [r["event_id"] for r in rows]
    normalize_batch(rows)  # the whole file is checked before the folder is touched
    options = {"max_events": max(10_000, min(len(rows), 1_000_000)), **logger_options}
    with AuditLogger(auto_export_path=folder, **options) as audit:
        audit.log_batch(rows)  # refuses ids the folder already holds
    found = (open_archive(folder).scan(event_id=ids).group_by("event_id").len().collect()
             if ids else pl.DataFrame({"event_id": [], "len": []}))
    if found.height != len(set(ids)) or (found.height and found["len"].max() != 1):
        raise ExportError(f"{folder}: holds {found['len'].sum()} of the {len(ids)} events imported from {path}")
    return len(rows)
