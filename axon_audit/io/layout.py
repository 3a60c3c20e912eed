"""Where the files of an export folder go, and how they are found again: `ExportLayout`.

An export folder (a local `Path`, or a `Location` such as an ``s3://`` prefix) holds::

    audit_2025_01_15_120000.json           rotation documents (the JSON export format);
    audit_2025_01_15_120000_1.json         ``_1``, ``_2``, … when the second is taken locally,
    audit_2025_01_15_120000_<hex>.json     a random suffix on object storage (no lock there)
    parquet/date=2025-01-15/part-….parquet the same events as Parquet, by UTC event day
    manifest.json                          the integrity manifest of a local folder
    manifests/<writer>-<segment>.json      object storage: one manifest per writer

`ExportLayout` is the only place these names are made, parsed and listed: every
writer asks it where a file goes, and every reader, `verify`, retention,
erasure, the lake scan and the CLI ask it which files are there. Hidden names
(a local write in progress uses one) are never listed. Moving the bytes is not
its business: `io.atomic`, `io.json_export` and `io.parquet` write, `Location`
uploads.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Generic, TypeVar, overload

import pyarrow.fs as pafs

from axon_audit.exceptions import AuditValueError
from axon_audit.io.location import Location
from axon_audit.model.timestamps import now_us

__all__ = ["ExportFile", "ExportLayout", "check_export_target", "numbered_names", "unique_object"]

R = TypeVar("R", Path, Location)

_PARTITION = re.compile(r"date=(\d{4}-\d{2}-\d{2})\Z")
_ROTATION = re.compile(r"audit_(\d{4})_(\d{2})_(\d{2})_(\d{2})(\d{2})(\d{2}).*\.json\Z")


def numbered_names(path: Path) -> Iterator[Path]:
    """`path`, then the same name with ``_1``, ``_2``, … before the suffix (without end):
    the local way to a free name where nothing may be overwritten.

    Example:
        >>> from itertools import islice
        >>> from pathlib import Path
        >>> from axon_audit.io.layout import numbered_names
        >>> [p.name for p in islice(numbered_names(Path("audit_2025_01_15_120000.json")), 3)]
        ['audit_2025_01_15_120000.json', 'audit_2025_01_15_120000_1.json', 'audit_2025_01_15_120000_2.json']
    """
    yield path
    n = 0
    while True:
        n += 1
        yield path.with_name(f"{path.stem}_{n}{path.suffix}")


def unique_object(loc: Location) -> Location:
    """`loc` with a random suffix before its extension: an object name no other writer
    picks. pyarrow exposes no create-if-absent upload, so a rotation on object
    storage never relies on a name being free.

    Example:
        >>> from axon_audit.io.layout import unique_object
        >>> from axon_audit.io.location import resolve
        >>> name = unique_object(resolve("s3://lake/audit/audit_2025_01_15_120000.json")).name
        >>> name.startswith("audit_2025_01_15_120000_"), name.endswith(".json"), len(name)
        (True, True, 41)
    """
    stem, dot, suffix = loc.name.rpartition(".")
    return loc.sibling(f"{stem}_{secrets.token_hex(6)}{dot}{suffix}" if dot else f"{loc.name}_{secrets.token_hex(6)}")


@overload
def _free_name(target: Path) -> Path: ...
@overload
def _free_name(target: Location) -> Location: ...
def _free_name(target: Path | Location) -> Path | Location:
    if isinstance(target, Location):
        return unique_object(target)
    return next(p for p in numbered_names(target) if not p.exists())


def _local_files(folder: Path, recursive: bool) -> list[str]:
    """Names (relative, ``/``-separated, sorted) of the files under a local folder,
    hidden ones and those under hidden folders left out. A folder removed while it
    is listed (retention) simply lists nothing."""
    out: list[str] = []
    stack = [("", folder)]
    while stack:
        prefix, current = stack.pop()
        try:
            it = os.scandir(current)
        except (FileNotFoundError, NotADirectoryError):
            continue
        with it:
            for entry in it:
                if entry.name.startswith("."):
                    continue
                try:
                    # Symlinked folders are followed at the top only (as rglob does below it): no cycles.
                    if entry.is_dir(follow_symlinks=not prefix):
                        if recursive:
                            stack.append((f"{prefix}{entry.name}/", Path(entry.path)))
                    elif entry.is_file():
                        out.append(prefix + entry.name)
                except OSError:  # gone since the folder was read
                    continue
    out.sort()
    return out


@dataclass(frozen=True)
class ExportFile(Generic[R]):
    """One listed file: its `path`, its `name` relative to the export folder, the UTC
    `day` of its ``date=`` partition (Parquet parts; else None) and, on a `Location`,
    the listing's `info` (size and mtime without another request)."""

    path: R
    name: str
    day: date | None = None
    info: pafs.FileInfo | None = None


class ExportLayout(Generic[R]):
    """The names and listings of one export folder `root` (a local `Path` or a `Location`).

    Example:
        >>> from datetime import date, datetime, timezone
        >>> from pathlib import Path
        >>> from axon_audit.io.layout import ExportLayout
        >>> layout = ExportLayout(Path("/srv/audit"))
        >>> part = layout.part_path(date(2025, 1, 15))
        >>> part.parent.as_posix(), part.name.startswith("part-"), layout.day_of(layout.name_of(part))
        ('/srv/audit/parquet/date=2025-01-15', True, datetime.date(2025, 1, 15))
        >>> at = datetime(2025, 1, 15, 12, 30, 5, tzinfo=timezone.utc)
        >>> name = ExportLayout.rotation_name(at)
        >>> name, ExportLayout.rotation_time(name) == at, ExportLayout.is_export_document(name)
        ('audit_2025_01_15_123005.json', True, True)
        >>> ExportLayout.is_export_document("manifest.json"), ExportLayout.is_manifest("manifests/w-000001.json")
        (False, True)
    """

    PARQUET_DIR = "parquet"
    MANIFEST_NAME = "manifest.json"
    MANIFESTS_DIR = "manifests"  # object storage: one manifest per writer
    ROTATION_PREFIX = "audit_"
    JSON_SUFFIX = ".json"
    PARQUET_SUFFIX = ".parquet"
    # What DuckDB, polars or Spark read to see every part of a folder.
    PARQUET_GLOB = f"{PARQUET_DIR}/**/*{PARQUET_SUFFIX}"

    def __init__(self, root: R) -> None:
        self.root: R = root

    def __repr__(self) -> str:
        return f"ExportLayout({str(self.root)!r})"

    # ------------------------------------------------------------------ names

    @staticmethod
    def partition_name(day: date) -> str:
        """The folder of one UTC day's parts: ``date=YYYY-MM-DD``."""
        return f"date={day.isoformat()}"

    @staticmethod
    def partition_day(folder_name: str) -> date | None:
        """The day of a partition folder's name (None: not a partition folder).

        Example:
            >>> from axon_audit.io.layout import ExportLayout
            >>> ExportLayout.partition_day("date=2025-01-15"), ExportLayout.partition_day("date=2025-13-01")
            (datetime.date(2025, 1, 15), None)
        """
        m = _PARTITION.match(folder_name)
        if m is None:
            return None
        try:
            return date.fromisoformat(m.group(1))
        except ValueError:  # date=2025-13-01: the shape of a partition, not a day
            return None

    @staticmethod
    def part_name() -> str:
        """A new part's file name: unique and sortable by write time, so it never
        collides across rotations or processes."""
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        return f"part-{stamp}-{now_us() % 1_000_000:06d}-{os.getpid()}-{secrets.token_hex(4)}.parquet"

    @overload
    @staticmethod
    def part_in(parquet_folder: Path, day: date) -> Path: ...
    @overload
    @staticmethod
    def part_in(parquet_folder: Location, day: date) -> Location: ...
    @staticmethod
    def part_in(parquet_folder: Path | Location, day: date) -> Path | Location:
        """A new part of `day` under the Parquet folder `parquet_folder`."""
        return parquet_folder / ExportLayout.partition_name(day) / ExportLayout.part_name()

    def part_path(self, day: date) -> R:
        """A new part of `day` in this folder (``parquet/date=…/part-….parquet``)."""
        return self.part_in(self.parquet_dir, day)

    @classmethod
    def rotation_name(cls, at: datetime | None = None, tag: str = "") -> str:
        """The name of the rotation document exported at `at` (default: now, UTC);
        a `tag` (``erasure``) follows the time, so the name still parses back to it."""
        at = at or datetime.now(timezone.utc)
        return at.strftime(f"{cls.ROTATION_PREFIX}%Y_%m_%d_%H%M%S{f'_{tag}' if tag else ''}{cls.JSON_SUFFIX}")

    @staticmethod
    def rotation_time(name: str) -> datetime | None:
        """The export time (UTC, whole seconds) in a rotation document's name, suffixes
        allowed; None for any other name.

        Example:
            >>> from axon_audit.io.layout import ExportLayout
            >>> ExportLayout.rotation_time("audit_2025_01_15_120000_3.json").isoformat()
            '2025-01-15T12:00:00+00:00'
            >>> ExportLayout.rotation_time("trail.json") is None
            True
        """
        m = _ROTATION.match(name)
        if m is None:
            return None
        try:
            y, mo, d, h, mi, s = (int(g) for g in m.groups())
            return datetime(y, mo, d, h, mi, s, tzinfo=timezone.utc)
        except ValueError:
            return None

    @classmethod
    def is_rotation_document(cls, name: str) -> bool:
        """Whether `name` (relative to the folder) is a rotation's JSON document, the
        kind `verify` requires a manifest to list."""
        return "/" not in name and name.startswith(cls.ROTATION_PREFIX) and name.endswith(cls.JSON_SUFFIX)

    @classmethod
    def is_export_document(cls, name: str) -> bool:
        """Whether `name` (relative to the folder) is a JSON export document a reader
        reads: a visible ``.json`` file at the top, not the manifest."""
        return ("/" not in name and name.endswith(cls.JSON_SUFFIX) and not name.startswith(".")
                and name != cls.MANIFEST_NAME)

    @classmethod
    def is_manifest(cls, name: str) -> bool:
        """Whether `name` (relative to the folder) is an integrity manifest."""
        if name == cls.MANIFEST_NAME:
            return True
        folder, _, file = name.partition("/")
        return (folder == cls.MANIFESTS_DIR and "/" not in file and file.endswith(cls.JSON_SUFFIX)
                and not file.startswith("."))

    @classmethod
    def segment_name(cls, writer: str, segment: int) -> str:
        """The name of a writer's manifest segment: ``manifests/<writer>-<segment>.json``."""
        return f"{cls.MANIFESTS_DIR}/{writer}-{segment:06d}{cls.JSON_SUFFIX}"

    def day_of(self, name: str) -> date | None:
        """The partition day of the file `name` (relative to the folder): that of the
        ``date=`` folder it lies in, directly under the Parquet root."""
        head, sep, rest = name.partition("/")
        if head == self.PARQUET_DIR and sep:
            head, sep, rest = rest.partition("/")
        return self.partition_day(head) if sep else None

    # ------------------------------------------------------------------ places

    @property
    def parquet_dir(self) -> R:
        """Where rotations write their parts: ``<root>/parquet``."""
        return self.root / self.PARQUET_DIR

    @property
    def manifest_path(self) -> R:
        """The local integrity manifest: ``<root>/manifest.json``."""
        return self.root / self.MANIFEST_NAME

    def parquet_root(self) -> R:
        """Where the parts are read from: ``parquet/`` when there is one, else the folder
        itself (it may be the ``parquet/`` folder, or hold parts directly)."""
        sub = self.parquet_dir
        return sub if sub.is_dir() else self.root

    @classmethod
    def folder_of(cls, path: Path) -> Path:
        """The export folder a reader's local `path` stands for: a file's folder, and
        the folder above a ``parquet/`` folder (one without a ``parquet/`` of its own).

        Example:
            >>> from pathlib import Path
            >>> from axon_audit.io.layout import ExportLayout
            >>> ExportLayout.folder_of(Path("/no/such/audit/parquet")).as_posix()
            '/no/such/audit'
        """
        if path.is_file():
            path = path.parent
        if path.name == cls.PARQUET_DIR and not (path / cls.PARQUET_DIR).exists():
            path = path.parent
        return path

    def name_of(self, path: R) -> str:
        """`path` as a ``/``-separated name relative to the folder."""
        if isinstance(path, Location):
            assert isinstance(self.root, Location)
            return self.root.relative(path.path)
        assert isinstance(self.root, Path)
        return path.relative_to(self.root).as_posix()

    def unique_json_path(self, at: datetime | None = None) -> R:
        """Where the next rotation document goes: its name, with ``_1``, ``_2``, … if
        taken (the caller holds the folder lock, so the name stays free until it
        writes). On object storage (no lock): the name with a random suffix."""
        return _free_name(self.root / self.rotation_name(at))

    # ------------------------------------------------------------------ listings

    def _files(self, folder: R, recursive: bool) -> list[tuple[str, pafs.FileInfo | None]]:
        if isinstance(folder, Location):
            return [(folder.relative(i.path), i) for i in folder.files(recursive=recursive)]
        return [(n, None) for n in _local_files(folder, recursive)]

    def parts(self, *, strict: bool = False) -> list[ExportFile[R]]:
        """Every Parquet part now in the folder, sorted by name, with its partition day
        (parts being written are left out: they have hidden names). They are read
        from `parquet_root`; with `strict`, only from ``parquet/``, where writers put
        them (for tools that change or vouch for an export folder's own files).

        Example:
            >>> import tempfile
            >>> from datetime import datetime, timezone
            >>> from pathlib import Path
            >>> from axon_audit import AuditLogger
            >>> from axon_audit.io.layout import ExportLayout
            >>> folder = Path(tempfile.mkdtemp())
            >>> with AuditLogger(auto_export_path=folder) as audit:
            ...     day = datetime(2025, 1, 15, tzinfo=timezone.utc)
            ...     _ = audit.log_batch([{"operation": "store", "timestamp": day}])
            >>> [(p.name[:24], p.day.isoformat()) for p in ExportLayout(folder).parts()]
            [('parquet/date=2025-01-15/', '2025-01-15')]
        """
        top = self.parquet_dir if strict else self.parquet_root()
        base = "" if top is self.root else f"{self.PARQUET_DIR}/"
        return [ExportFile(top / rel, base + rel, self.day_of(base + rel), info)
                for rel, info in self._files(top, recursive=True) if rel.endswith(self.PARQUET_SUFFIX)]

    def partitions(self) -> list[tuple[R, date]]:
        """The partition folders under ``parquet/`` with their days, sorted (each
        holds one UTC day's parts, whatever else lies in it)."""
        parent = self.parquet_dir
        if isinstance(parent, Location):
            infos = parent.fs.get_file_info(pafs.FileSelector(parent.path, allow_not_found=True))
            names = sorted(parent.relative(i.path) for i in infos if i.type == pafs.FileType.Directory)
        else:
            try:
                names = sorted(e.name for e in os.scandir(parent) if e.is_dir())
            except (FileNotFoundError, NotADirectoryError):
                names = []
        out = []
        for name in names:
            day = self.partition_day(name)
            if day is not None:
                out.append((parent / name, day))
        return out

    def json_documents(self) -> list[ExportFile[R]]:
        """Every JSON export document now in the folder, sorted by name (not the
        manifest; documents being written are left out: they have hidden names)."""
        return [ExportFile(self.root / rel, rel, None, info)
                for rel, info in self._files(self.root, recursive=False) if self.is_export_document(rel)]

    def manifest_names(self) -> list[str]:
        """The integrity manifests now in the folder: ``manifest.json`` first, then
        the writers' ``manifests/*.json`` sorted."""
        top = [rel for rel, _ in self._files(self.root, recursive=False) if rel == self.MANIFEST_NAME]
        folder = self.root / self.MANIFESTS_DIR
        return top + [f"{self.MANIFESTS_DIR}/{rel}" for rel, _ in self._files(folder, recursive=False)
                      if self.is_manifest(f"{self.MANIFESTS_DIR}/{rel}")]

    def guess_source(self) -> str:
        """"parquet" when the folder holds Parquet (or a ``parquet/`` folder, or nothing
        yet), "json" when it holds only JSON export documents."""
        if self.parquet_dir.is_dir() or self.parts() or not self.json_documents():
            return "parquet"
        return "json"



def _real(loc: Location) -> str:
    """A location's path for comparing places: a local one resolved (a symlink into a folder is inside it)."""
    return Path(loc.path).resolve().as_posix() if loc.is_local else loc.path.rstrip("/")


def check_export_target(target: Location, *, argument: str = "path", force: bool = False,
                        own: Location | None = None) -> None:
    """Refuse to write an export at `target` over sealed evidence: anywhere inside an
    export folder (a folder above it holds a manifest: its rotations, its
    ``parquet/`` tree, the manifest itself) or inside `own` (the writer's own export
    folder, sealed or not yet), and over an existing file unless `force`. The error
    names `argument`.

    Example:
        >>> import tempfile
        >>> from axon_audit import AuditLogger
        >>> from axon_audit.io.layout import check_export_target
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
    if own is not None and own.is_local == target.is_local and path.startswith(_real(own) + "/"):
        sealed = own.uri
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
