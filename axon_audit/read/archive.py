"""Export folders as a read-only source: discovery, validation, pruning, `AuditArchive`.

An export folder holds `parquet/date=YYYY-MM-DD/part-….parquet` (hive partitions
by UTC event date) and `audit_*.json` export documents holding the same events;
one JSON file may also be Axon's own export (a bare list of events: `io.legacy`).
Parquet is read when present; a folder of JSON exports (the documents its manifest
lists; without a manifest its `audit_*.json`), or one JSON file, is
read otherwise. Every file is checked once (by path, size and mtime) before it
is used: a corrupt or foreign file raises `ArchiveError` naming it, or, with
`on_error="skip"`, is left out with a warning, never silently half-read. Which
files are there is `io.layout.ExportLayout`'s listing.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import orjson
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from axon_audit.display.cards import archive_card
from axon_audit.exceptions import ArchiveError, AuditError, AuditTypeError, AuditValueError
from axon_audit.io.delta import is_delta
from axon_audit.io.layout import ExportLayout
from axon_audit.io.legacy import axon_rows, is_axon_export
from axon_audit.io.location import Location, StorageOptions, resolve
from axon_audit.model.schema import COLUMNS, normalize_batch
from axon_audit.model.timestamps import naive_time_rule
from axon_audit.query.filters import Filters
from axon_audit.read.api import Reader
from axon_audit.read.delta_source import DeltaFolder, check_as_of
from axon_audit.read.snapshot import Snapshot
from axon_audit.store.hot import CHUNK_ROWS, Chunk

__all__ = ["AuditArchive", "ExportFolder", "open_archive"]

_STRINGISH = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)

_cache_lock = threading.Lock()
_checked: dict[tuple[str, int, int], str | None] = {}  # file key -> error text (None: fine)
_json_chunks: dict[tuple[tuple[str, int, int], str], list[Chunk]] = {}  # by file version and naive-time rule


def _key(path: Path | Location) -> tuple[str, int, int]:
    if isinstance(path, Location):  # object storage: one HEAD request
        info = path.info()
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(path.uri)
        return (path.uri, info.size or 0, info.mtime_ns or 0)
    st = path.stat()
    return (str(path), st.st_size, st.st_mtime_ns)


def _is_text(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return any(check(t) for check in _STRINGISH)


def _parquet_problem(path: Path | Location) -> str | None:
    try:
        schema = pq.read_schema(path.path, filesystem=path.fs) if isinstance(path, Location) else pq.read_schema(path)
    except Exception as exc:  # noqa: BLE001 - any failure to read the footer means corrupt
        return f"not a readable Parquet file ({exc})"
    missing = [c for c in COLUMNS if c not in schema.names]
    if missing:
        return f"not an axon_audit events file: missing columns {missing}"
    t = {name: schema.field(name).type for name in COLUMNS}
    wrong = [c for c in ("event_id", "operation", "user_id", "session_id", "metadata", "status", "error_message")
             if not _is_text(t[c])]
    if not pa.types.is_timestamp(t["timestamp"]):
        wrong.append("timestamp")
    if not pa.types.is_floating(t["duration_ms"]):
        wrong.append("duration_ms")
    et = t["entry_ids"]
    if not ((pa.types.is_list(et) or pa.types.is_large_list(et)) and _is_text(et.value_type)):
        wrong.append("entry_ids")
    if wrong:
        return f"not an axon_audit events file: wrong types for columns {wrong}"
    return None


def _load_json(path: Path | Location, naive_time: str = "local") -> list[Chunk]:
    try:
        doc = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ArchiveError(f"{path}: not a readable JSON export ({exc})") from None
    if is_axon_export(doc):  # Axon's own export: a bare list, naive times meaning UTC
        rows = axon_rows(doc, f"{path}: events")
    else:
        rows = _export_rows(path, doc)
    try:
        df = normalize_batch(rows, naive_time=naive_time)  # our files say Z: only others' naive times follow it
    except AuditError as exc:
        raise ArchiveError(f"{path}: {exc}") from None
    return [Chunk.of(df.slice(s, CHUNK_ROWS).rechunk()) for s in range(0, df.height, CHUNK_ROWS)]


def _export_rows(path: Path | Location, doc: Any) -> list[dict[str, Any]]:
    """The rows of a seed-format document ``{"events": [...], "total_events": n}``."""
    if not isinstance(doc, dict) or not isinstance(doc.get("events"), list):
        raise ArchiveError(f"{path}: not an axon_audit JSON export (no 'events' list, nor Axon's bare list)")
    events = doc["events"]
    if not all(isinstance(e, dict) for e in events):
        raise ArchiveError(f"{path}: not an axon_audit JSON export ('events' holds non-objects)")
    if "total_events" in doc and doc["total_events"] != len(events):
        raise ArchiveError(f"{path}: says total_events={doc['total_events']} but holds {len(events)} events")
    missing = [i for i, e in enumerate(events) if "event_id" not in e or "timestamp" not in e]
    if missing:
        raise ArchiveError(f"{path}: events[{missing[0]}] has no event_id or timestamp")
    # Extra keys may follow the export format's keys: keep only those.
    return [{c: e.get(c) for c in COLUMNS} for e in events]


@dataclass(frozen=True)
class _Part:
    path: Path | Location
    day: date | None
    key: tuple[str, int, int] | None = None  # object storage: (uri, size, mtime) from the listing


class ExportFolder:
    """The files of one export folder (or one export file), checked and pruned.

    Example:
        >>> import tempfile, pathlib
        >>> from axon_audit.read.archive import ExportFolder
        >>> ExportFolder(pathlib.Path(tempfile.mkdtemp())).source
        'parquet'
    """

    def __init__(self, path: str | Path | Location, source: str = "auto", on_error: str = "raise",
                 storage_options: StorageOptions | None = None, naive_time: str | None = None) -> None:
        if not isinstance(path, (str, Path, Location)):
            raise AuditTypeError(f"path must be a str, Path or URI, got {type(path).__name__}")
        if source not in ("auto", "parquet", "json"):
            raise AuditValueError(f"source must be 'auto', 'parquet' or 'json', got {source!r}")
        if on_error not in ("raise", "skip"):
            raise AuditValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if isinstance(path, Location) or (isinstance(path, str) and "://" in path):
            loc = resolve(path, storage_options=storage_options)
            # A local URI is a plain folder; object storage keeps its Location.
            self.path: Path | Location = loc.local_path() if loc.is_local else loc
        else:
            self.path = Path(path)
        self.layout: ExportLayout = ExportLayout(self.path)
        self.on_error = on_error
        self.naive_time = naive_time_rule(naive_time)
        if source == "auto":
            source = self._guess()
        self.source = source

    def _guess(self) -> str:
        p = self.path
        if p.is_file():  # one export file: its suffix says which
            return "json" if p.name.lower().endswith(".json") else "parquet"
        return self.layout.guess_source()

    def _problem(self, path: Path | Location, message: str) -> None:
        if self.on_error == "skip":
            warnings.warn(f"axon_audit: skipped {path}: {message}", stacklevel=4)
            return
        raise ArchiveError(f"{path}: {message}")

    def _served(self, files: list[Any]) -> list[Any]:
        """`ExportLayout.served`: a file no manifest lists is left out, with a warning
        unless an export's intent names it (one in progress, or cut off by a crash)."""
        kept = self.layout.served(files)
        if len(kept) < len(files):
            left = {f.name for f in files} - {f.name for f in kept}
            for name in sorted(left - {n for names in self.layout.intents().values() for n in names}):
                warnings.warn(f"axon_audit: {self.path}: {name} is not listed in the manifest, not served "
                              "(an inserted file? see verify)", stacklevel=5)
        return kept

    # ------------------------------------------------------------------ Parquet

    def _parts(self) -> list[_Part]:
        p = self.path
        if isinstance(p, Location):
            if p.is_file():
                info = p.info()
                return [_Part(p, None, (p.uri, info.size or 0, info.mtime_ns or 0))]
            # One listing of the prefix (no request per file): the keys come with it.
            return [_Part(f.path, f.day, (f.path.uri, f.info.size or 0, f.info.mtime_ns or 0) if f.info else None)
                    for f in self._served(self.layout.parts())]
        if p.is_file():
            return [_Part(p, None)]
        # Local files are stat'ed when checked, so one removed since the listing is simply left out.
        # Only what a manifest lists (where there is one): files of an uncommitted export are no evidence.
        return [_Part(f.path, f.day) for f in self._served(self.layout.parts())]

    def parts(self) -> list[_Part]:
        """Every Parquet file now in the folder (unchecked), with its partition day."""
        return self._parts() if self.source == "parquet" else []

    def parquet_files(self, f: Filters | None = None, parts: list[_Part] | None = None) -> list[Path | Location]:
        """The checked Parquet files (of `parts`, default: all now) a query with
        filters `f` has to read: files in `date=` partitions outside the filters'
        days are not even opened."""
        if self.source != "parquet":
            return []
        lo, hi = f.dates() if f is not None else (None, None)
        out = []
        for part in self._parts() if parts is None else parts:
            if part.day is not None and ((lo and part.day < lo) or (hi and part.day > hi)):
                continue
            try:
                key = part.key or _key(part.path)
            except FileNotFoundError:
                continue  # removed since listed (e.g. retention): not part of this snapshot
            with _cache_lock:
                known = key in _checked
                problem = _checked.get(key)
            if not known:
                problem = _parquet_problem(part.path)
                with _cache_lock:
                    _checked[key] = problem
            if problem is not None:
                self._problem(part.path, problem)
                continue
            out.append(part.path)
        return out

    def check_readable(self, files: list[Path | Location]) -> bool:
        """After a read over `files` failed: read each in full, and record the
        first that cannot be read (later reads raise naming it, or skip it).
        Returns whether one was found."""
        for path in files:
            try:
                if isinstance(path, Location):
                    pq.read_table(path.path, filesystem=path.fs, page_checksum_verification=True)
                else:
                    pq.read_table(path, page_checksum_verification=True)
            except Exception as exc:  # noqa: BLE001 - any failure to decode means corrupt
                try:
                    key = _key(path)
                except FileNotFoundError:
                    return True  # removed meanwhile: the next listing will not have it
                with _cache_lock:
                    _checked[key] = f"corrupt Parquet data ({type(exc).__name__}: {exc})"
                return True
        return False

    # ------------------------------------------------------------------ JSON

    def json_chunks(self) -> list[Chunk]:
        """The events of the JSON export files, as chunks (loaded once per file version)."""
        if self.source != "json":
            return []
        p = self.path
        files = [p] if p.is_file() else self._json_documents()
        chunks: list[Chunk] = []
        for f in files:
            try:
                key = (_key(f), self.naive_time)
            except FileNotFoundError:
                continue
            with _cache_lock:
                got = _json_chunks.get(key)
            if got is None:
                try:
                    got = _load_json(f, self.naive_time)
                except ArchiveError as exc:
                    self._problem(f, str(exc).removeprefix(f"{f}: "))
                    continue
                with _cache_lock:
                    _json_chunks[key] = got
            chunks.extend(got)
        return chunks

    def _json_documents(self) -> list[Path | Location]:
        """The JSON documents served: those the folder's manifests list (what `verify`
        vouches for; `_served`), or, in a folder without one, its rotation documents
        (``audit_*.json``). Any other ``.json`` lying there is not evidence."""
        docs = self._served(self.layout.json_documents())
        if not self.layout.manifest_names():
            docs = [d for d in docs if ExportLayout.is_rotation_document(d.name)]
        return [d.path for d in docs]

    def snapshot(self) -> Snapshot:
        return Snapshot(old=self.json_chunks(), folder=self, events_are_archived=True)


class AuditArchive(Reader):
    """A read-only view of an export folder written by any logger, in any process:
    the same queries, statistics, SQL and exports as `AuditLogger`.

    `path` is an `auto_export_path` folder, its `parquet/` folder, a folder of JSON
    exports, or one JSON export file. `source` forces "parquet" or "json" (default:
    Parquet when there is any). `on_error="skip"` leaves corrupt or foreign files
    out with a warning instead of raising `ArchiveError`. `naive_time` ("local" or
    "utc"; default ``$AXON_AUDIT_NAIVE_TIME`` or "local") is how naive times read:
    query bounds, SQL params, and times without an offset in the files (our own
    exports always carry one; "utc" for sources whose naive times are UTC).
    A Delta lake (``lake_format="delta"``) is read at its newest version, or at
    `as_of`: a version number or a timezone-aware time (the version current then).

    Example:
        >>> import tempfile
        >>> from axon_audit import AuditLogger, AuditArchive
        >>> folder = tempfile.mkdtemp()
        >>> with AuditLogger(auto_export_path=folder) as audit:
        ...     _ = audit.log("store", user_id="user_123", entry_ids=["entry_1"])
        >>> archive = AuditArchive(folder)
        >>> [e.user_id for e in archive.query_events(operation="STORE")]
        ['user_123']
        >>> archive.sql("SELECT count(*) AS n FROM archived")["n"][0]
        1
    """

    def __init__(
        self,
        path: str | Path,
        *,
        source: Literal["auto", "parquet", "json"] = "auto",
        on_error: Literal["raise", "skip"] = "raise",
        storage_options: StorageOptions | None = None,
        naive_time: Literal["local", "utc"] | None = None,
        as_of: int | datetime | None = None,
    ) -> None:
        self._folder: ExportFolder | DeltaFolder = ExportFolder(path, source, on_error, storage_options, naive_time)
        self._naive_time = self._folder.naive_time
        if not self._folder.path.exists():
            raise AuditValueError(f"path {str(path)!r} does not exist")
        check_as_of(as_of)
        if is_delta(self._folder.path) and not self._folder.path.is_file():  # a Delta lake: read its log
            self._folder = DeltaFolder(self._folder.path, as_of, storage_options, self._naive_time)
            self._folder.parts()  # a wrong as_of raises here, naming the argument
        elif as_of is not None:
            raise AuditValueError(f"as_of: {str(path)!r} is not a Delta lake (no _delta_log); "
                                  "as_of reads earlier versions of lake_format='delta' exports only")

    @property
    def path(self) -> Path | str:
        """The folder: a `Path`, or the URI of an object-store prefix."""
        p = self._folder.path
        return p.uri if isinstance(p, Location) else p

    @property
    def source(self) -> str:
        """"parquet" or "json": which files are read."""
        return self._folder.source

    def files(self, **filters: Any) -> list[Path] | list[str]:
        """The files a query with these filters reads (Parquet: after partition pruning).

        Example:
            >>> import tempfile
            >>> from axon_audit import AuditArchive
            >>> AuditArchive(tempfile.mkdtemp()).files()
            []
        """
        f = Filters.of(filters, naive_time=self._naive_time)
        if isinstance(self._folder, ExportFolder) and self._folder.source == "json":
            p = self._folder.path
            files = [p] if p.is_file() else self._folder._json_documents()
        else:
            files = self._folder.parquet_files(f)
        if isinstance(self._folder.path, Location):  # object storage: URIs
            return [x.uri for x in files if isinstance(x, Location)]
        return [x for x in files if isinstance(x, Path)]

    def _snapshot(self, include_archived: bool | None = True, small: bool = False) -> Snapshot:
        return self._folder.snapshot()

    def __repr__(self) -> str:
        return f"AuditArchive({str(self.path)!r}, source={self.source!r})"

    def _repr_html_(self) -> str:
        return archive_card(self)


def open_archive(
    path: str | Path,
    *,
    source: Literal["auto", "parquet", "json"] = "auto",
    on_error: Literal["raise", "skip"] = "raise",
    storage_options: StorageOptions | None = None,
    naive_time: Literal["local", "utc"] | None = None,
    as_of: int | datetime | None = None,
) -> AuditArchive:
    """`AuditArchive(path, ...)`.

    Example:
        >>> import tempfile
        >>> from axon_audit import open_archive
        >>> open_archive(tempfile.mkdtemp()).get_statistics()["total_events"]
        0
    """
    return AuditArchive(path, source=source, on_error=on_error, storage_options=storage_options,
                        naive_time=naive_time, as_of=as_of)
