"""Bringing an Axon audit history into an export folder: `import_axon_export`.

The events of an Axon export file (`io.legacy.load_axon_export`: ids, times and
every value kept) are logged with `log_batch` by an `AuditLogger` exporting to the
folder, so the folder is written, listed in its manifest and sealed like any
other (`verify` passes). Evidence is never lost nor mixed: the whole file is
checked before anything is written; a folder that holds files but is no export
folder is refused, as is one inside an export folder; an id the folder already
holds refuses the whole import (a second import of the same file adds nothing),
or with `skip_known` is skipped when the event is the very same; and after
writing, every imported id is looked up in the folder once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from axon_audit.exceptions import AuditValueError, ExportError
from axon_audit.io.layout import ExportLayout
from axon_audit.io.legacy import load_axon_export
from axon_audit.model.event import AuditEvent
from axon_audit.model.schema import frame_to_events, normalize_batch
from axon_audit.read.archive import open_archive
from axon_audit.write.logger import AuditLogger

__all__ = ["ImportResult", "check_import_folder", "import_axon_export"]


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
    if "://" in str(into):  # a URI as a Path would make a local folder named "s3:"
        raise AuditValueError(f"{argument}: {str(into)!r} is a URI; import into a local folder (then copy it "
                              "to object storage as a whole)")
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


@dataclass(frozen=True)
class ImportResult:
    """What `import_axon_export` did: events written, and identical events skipped
    (`skip_known`: already in the folder, or in an earlier file of the same import)."""

    imported: int
    already_there: int = 0


def _known_and_new(files: list[list[dict[str, Any]]], folder: Path, paths: list[Path]) -> tuple[list[Any], int]:
    """The events not yet held (by the folder or an earlier file), after checking that
    every repeated id is the very same event: a conflicting one refuses the import."""
    seen: dict[str, tuple[dict[str, Any], Path]] = {}
    new: list[Any] = []
    repeated = 0
    for rows, path in zip(files, paths, strict=True):
        for event in frame_to_events(normalize_batch(rows)):
            mine = event.to_dict()
            earlier = seen.get(event.event_id)
            if earlier is not None:
                if earlier[0] != mine:
                    raise AuditValueError(f"{path}: event {event.event_id!r} differs from the event with that id "
                                          f"in {earlier[1]}; an event id names one event")
                repeated += 1
                continue
            seen[event.event_id] = (mine, path)
            new.append(event)
    if ExportLayout(folder).manifest_names():
        held = open_archive(folder).query_events(event_id=list(seen))
        for event in held:
            mine, path = seen[event.event_id]
            if event.to_dict() != mine:
                raise AuditValueError(f"{path}: event {event.event_id!r} differs from the event with that id "
                                      f"already in {folder}; an event id names one event")
        known = {e.event_id for e in held}
        repeated += len(known)
        new = [e for e in new if e.event_id not in known]
    return new, repeated


def import_axon_export(paths: str | Path | Iterable[str | Path], into: str | Path, *, skip_known: bool = False,
                       **logger_options: Any) -> ImportResult:
    """Import the events of Axon export files (Axon's bare list, or the seed's
    document) into the export folder `into`. An id the folder (or an earlier file)
    already holds refuses the whole import, unless `skip_known`: then an event
    identical to the one held is skipped (Axon's daily exports of its in-memory
    log overlap), and a different one with that id still refuses it.
    `logger_options` go to the `AuditLogger` that writes the folder (`hmac_key`,
    `signing_key`, ...).

    Example:
        >>> import json, tempfile, pathlib
        >>> from axon_audit import open_archive, verify
        >>> from axon_audit.write.migrate import import_axon_export
        >>> tmp = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (tmp / "legacy.json").write_text(json.dumps([{"event_id": "3d6f0a2e-8c4b-4e1f-9a7d-2b5c8e1f4a6d",
        ...     "timestamp": "2025-01-15T10:30:45.123456", "operation": "store", "status": "success"}]))
        >>> import_axon_export(tmp / "legacy.json", tmp / "audit")
        ImportResult(imported=1, already_there=0)
        >>> verify(tmp / "audit").ok, open_archive(tmp / "audit").query_events()[0].event_id
        (True, '3d6f0a2e-8c4b-4e1f-9a7d-2b5c8e1f4a6d')
        >>> import_axon_export(tmp / "legacy.json", tmp / "audit", skip_known=True)
        ImportResult(imported=0, already_there=1)
    """
    if not isinstance(skip_known, bool):
        raise AuditValueError(f"skip_known must be a bool, got {skip_known!r}")
    sources = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    folder = check_import_folder(into)
    files = [load_axon_export(p) for p in sources]
    if not any(files):
        raise AuditValueError(f"{', '.join(map(str, sources)) or 'paths'}: no events; nothing to import")
    repeated = 0
    batch: list[Any]
    if skip_known:
        batch, repeated = _known_and_new(files, folder, sources)
    else:
        batch = [row for rows in files for row in rows]
        try:
            normalize_batch(batch)  # the whole input is checked before the folder is touched
        except AuditValueError as exc:
            if "occurs more than once" in str(exc) and len(sources) > 1:
                raise AuditValueError(f"{exc} (overlapping exports? skip_known imports each event once)") from None
            raise
    if batch:
        options = {"max_events": max(10_000, min(len(batch), 1_000_000)), **logger_options}
        with AuditLogger(auto_export_path=folder, **options) as audit:
            audit.log_batch(batch)  # refuses ids the folder already holds
        ids = [e.event_id if isinstance(e, AuditEvent) else e["event_id"] for e in batch]
        found = open_archive(folder).scan(event_id=ids).group_by("event_id").len().collect()
        if found.height != len(ids) or found["len"].max() != 1:
            raise ExportError(f"{folder}: holds {found['len'].sum()} of the {len(ids)} events imported")
    return ImportResult(len(batch), repeated)
