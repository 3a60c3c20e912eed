"""Sealed evidence: where an export may not write (`check_export_target`).

An export folder's files (its manifest, its rotation documents, its ``parquet/``
tree) are evidence once written; writing anything over them or beside them would
empty or confuse that evidence. Every writer of user-chosen paths (the API's
exports, the CLI's output options) asks here first.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from axon_audit.exceptions import AuditValueError
from axon_audit.io.layout import ExportLayout
from axon_audit.io.location import Location

__all__ = ["check_export_target"]


def _real(loc: Location) -> str:
    """A location's path for comparing places: a local one resolved (a symlink into a folder is inside it)."""
    return Path(loc.path).resolve().as_posix() if loc.is_local else loc.path.rstrip("/")


def check_export_target(target: Location, *, argument: str = "path", force: bool = False,
                        own: Location | Sequence[Location] | None = None) -> None:
    """Refuse to write an export at `target` over sealed evidence: anywhere inside an
    export folder (a folder above it holds a manifest: its rotations, its
    ``parquet/`` tree, the manifest itself) or inside `own` (the writer's own export
    folder, sealed or not yet, and its write-ahead log's folder: a segment written
    over loses acknowledged events), and over an existing file unless `force`. The
    error names `argument`.

    Example:
        >>> import tempfile
        >>> from axon_audit import AuditLogger
        >>> from axon_audit.io.sealed import check_export_target
        >>> from axon_audit.io.location import resolve
        >>> folder = tempfile.mkdtemp()
        >>> with AuditLogger(auto_export_path=folder) as audit:
        ...     _ = audit.log("store")
        >>> check_export_target(resolve(f"{folder}/manifest.json"))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        axon_audit.exceptions.AuditValueError: path: ... lies inside the export folder ...
        >>> check_export_target(resolve(f"{folder}.trail.json"))
    """
    path = _real(target)
    sealed = None
    for place in () if own is None else (own,) if isinstance(own, Location) else own:
        if place.is_local == target.is_local and path.startswith(_real(place) + "/"):
            sealed = place.uri
            break
    parts = path.split("/")
    for i in range(len(parts) - 1, 0, -1):  # the folders above, nearest first
        if sealed is not None:
            break
        folder = Location(target.fs, "/".join(parts[:i]) or "/", "/".join(parts[:i]) or "/", target.endpoint_url)
        if (folder / ExportLayout.MANIFEST_NAME).exists() or (folder / ExportLayout.MANIFESTS_DIR).is_dir():
            sealed = folder.path
    if sealed is not None:
        raise AuditValueError(
            f"{argument}: {target.uri!r} lies inside the export folder {sealed!r}; an export never writes "
            "into an export folder (its files are sealed evidence): choose a path outside it"
        )
    if not force and (os.path.lexists(target.path) if target.is_local else target.exists()):
        raise AuditValueError(f"{argument}: {target.uri!r} already exists; pass force=True to replace it")
