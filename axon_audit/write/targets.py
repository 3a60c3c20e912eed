"""Export targets: the commit protocol of one export, written once per storage kind.

An export is one rotated snapshot written as a JSON export document plus one
Parquet part per UTC day (side by side, each hashed as it is written), its
events appended to the export log (`integrity.log`), then committed to an
integrity manifest with the log's new tree head.
The manifest write is the commit point: before it, the export's files are
unlisted and are undone on failure; after it, they are evidence.

- `FolderTarget`: a local folder, shared by any number of writers (threads or
  processes) through the folder lock and its one ``manifest.json`` chain.
- `ObjectStoreTarget`: an object-store prefix, where writers never coordinate:
  each logger commits to its own writer manifest (see `integrity.manifest`).
- `write.delta_target.DeltaTarget` (``lake_format="delta"``): a Delta table.

Every writer of export evidence goes through a target: the logger's exporter,
GDPR's sealed rewrite (`append`), and write-ahead-log recovery, which asks the
target what a commit left listed (`committed_files`) and removes the rest.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import orjson
import polars as pl

from axon_audit.integrity import manifest as _integrity
from axon_audit.integrity.checkpoint import SigningKey
from axon_audit.integrity.global_log import GlobalLog
from axon_audit.integrity.leaf import export_texts, objects_and_leaves
from axon_audit.integrity.log import tree_of, writer_log
from axon_audit.io.atomic import atomic_write, fsync_dir
from axon_audit.io.json_export import write_json_export
from axon_audit.io.layout import ExportLayout
from axon_audit.io.location import Location, StorageOptions
from axon_audit.io.parquet import plan_parquet, put_export, write_parquet_planned
from axon_audit.io.threads import background_threads
from axon_audit.model.timestamps import format_us, now_us
from axon_audit.write.delta_target import DeltaTarget
from axon_audit.write.global_commit import publish_globally, publish_if_missing

__all__ = ["Attempt", "ExportJob", "ExportTarget", "FolderTarget", "ObjectStoreTarget", "append_export", "target_for"]

#: Called with an export's planned file names (and, on object storage, the manifest
#: that will commit them) before anything is written; returns the job record it made.
RecordFn = Callable[[list[str], "str | None"], "Path | None"]


@dataclass(eq=False)
class ExportJob:
    """A rotated snapshot on its way to disk; queryable as archived until written.

    `wal_first`..`wal_last`: the write-ahead log epochs holding exactly these
    events (None without a WAL); they are deleted once the export is committed.
    """

    df: pl.DataFrame
    at: datetime
    failed: bool = False
    files: list[Any] = field(default_factory=list)
    wal_first: int | None = None
    wal_last: int | None = None
    done: bool = False
    poison: bool = False  # the last try failed on the data, not the storage (see write.exporter)
    # Object storage: the JSON object and Parquet plan of the first attempt. A retry
    # reuses the names, so objects of an attempt whose commit is in doubt are overwritten,
    # never left beside a second copy.
    remote: tuple[Any, list[Any]] | None = None


@dataclass(eq=False)
class Attempt:
    """What one try of an export has written so far (undone if it fails)."""

    written: list[Any] = field(default_factory=list)
    job_file: Path | None = None
    intent: Any = None  # the intent naming the files (a Path, or a Location on object storage)

    def undo(self) -> None:
        """Remove what this try wrote, so a retry writes no duplicate."""
        left = False
        for path in self.written:
            try:
                path.unlink(missing_ok=True)
            except OSError:  # the store refuses even that: the intent stays, naming the leftover
                left = True
        for record in (self.job_file, None if left else self.intent):
            if record is not None:
                record.unlink(missing_ok=True)


def _entries(names: list[str], plan: list[Any], df: pl.DataFrame, first: int,
             digests: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """The manifest entries of one export: its JSON document (every event of the
    commit, log positions from `first`), then each Parquet part (its slice)."""
    entries = [_integrity.file_entry(names[0], "json", df, first, digests[0])]
    for name, (_, a, n), digest in zip(names[1:], plan, digests[1:], strict=True):
        entries.append(_integrity.file_entry(name, "parquet", df.slice(a, n), first + a, digest))
    return entries


class _Lane:
    """A thread of its own for one part of an export (the events' texts and leaf
    hashes; the JSON document), run while the export thread writes Parquet: each runs
    mostly without the GIL (polars, Arrow's Parquet writer, hashlib on large
    blocks), so the parts share the cores instead of queueing on one."""

    def __init__(self, inline: bool = False) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._inline = inline  # one thread for the whole export: run where called

    def run(self, fn: Callable[[], Any]) -> Future[Any]:
        if self._inline:
            return _now(fn)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="axon-audit-json")
        try:
            return self._pool.submit(fn)
        except RuntimeError:  # interpreter shutdown (the atexit export): write it here
            return _now(fn)


def _now(fn: Callable[[], Any]) -> Future[Any]:
    """`fn` run here, as a done Future."""
    done: Future[Any] = Future()
    try:
        done.set_result(fn())
    except BaseException as exc:  # noqa: BLE001 - handed to the caller like a thread's error
        done.set_exception(exc)
    return done


class ExportTarget(Protocol):
    """Where a logger's exports are written and committed."""

    def export(self, job: ExportJob, df: pl.DataFrame, attempt: Attempt, record: RecordFn | None) -> None:
        """Chain, write and commit `df` (the job's events in time order); raises on
        failure, having listed in `attempt` what must be undone."""

    def recovering(self) -> contextlib.AbstractContextManager[None]:
        """Held while recovery undoes exports that a crash cut off."""

    def committed_files(self, record: dict[str, Any]) -> set[str]:
        """The files the commit point of a WAL job `record` lists (raises when the
        store cannot tell, so recovery never deletes committed files by guess)."""

    def remove(self, name: str) -> None:
        """Delete the export file `name` (relative to the root), if it is there."""


class FolderTarget:
    """A local export folder under its lock, with one manifest chain for every writer.

    Example:
        >>> import tempfile, pathlib
        >>> import polars as pl
        >>> from axon_audit.model.schema import normalize_batch
        >>> from axon_audit.write.targets import FolderTarget
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> files = FolderTarget(root, key=None).append(normalize_batch([{"operation": "STORE"}]))
        >>> sorted(p.suffix for p in files), (root / "manifest.json").exists()
        (['.json', '.parquet'], True)
    """

    def __init__(self, root: Path, key: bytes | None, signing_key: SigningKey | None = None, *,
                 threads: int | None = None) -> None:
        self.root = root
        self.key = key
        self.signing_key = signing_key
        self.threads = threads  # None: every core (see io.threads); 1: the whole export on the calling thread
        self._listed: set[str] | None = None  # recovery: the manifest's files, read once
        self._json, self._leaves = _Lane(inline=threads == 1), _Lane(inline=threads == 1)

    def export(self, job: ExportJob, df: pl.DataFrame, attempt: Attempt, record: RecordFn | None) -> None:
        root = self.root
        # The export texts, then the leaf hashes, on a lane of their own (they depend on the
        # events alone): the JSON lane writes the objects while the leaves are hashed.
        texts = self._leaves.run(lambda: export_texts(df, self.threads))
        leaves = self._leaves.run(lambda: texts.result()[1]())  # after texts: the lane runs one job at a time
        with _integrity.folder_lock(root):
            manifest = _integrity.load_manifest(root)
            tree = tree_of(manifest.get("entries", []))
            first = tree.size
            layout = ExportLayout(root)
            json_path = layout.unique_json_path(job.at)
            plan = plan_parquet(df, layout.parquet_dir)
            planned = [layout.name_of(p) for p in [json_path, *(p for p, _, _ in plan)]]
            if record is not None:
                attempt.job_file = record(planned, None)
            attempt.intent = _intend(layout, planned)  # durable before any file: a crash leaves it naming them
            json_digest: list[tuple[str, int]] = []
            part_digests: list[tuple[str, int]] = []
            json_done = self._json.run(lambda: write_json_export(df, json_path, replace=False, digests=json_digest,
                                                                 objects=texts.result()[0]))
            try:
                attempt.written += write_parquet_planned(df, plan, part_digests, self.threads)
                tree.extend(leaves.result())
            except BaseException:
                with contextlib.suppress(BaseException):  # wait for it: its file is undone too
                    attempt.written.append(json_done.result())
                with contextlib.suppress(BaseException):
                    leaves.result()
                raise
            attempt.written.append(json_done.result())
            if layout.name_of(attempt.written[-1]) != planned[0]:  # the name the JSON document got
                _intend(layout, [*planned, layout.name_of(attempt.written[-1])], attempt.intent)
                planned[0] = layout.name_of(attempt.written[-1])
            entries = _entries(planned, plan, df, first, json_digest + part_digests)
            try:
                _integrity.append_entries(root, manifest, entries, self.key, format_us(now_us()), tree,
                                          self.signing_key)
            except BaseException:
                if not self._committed(planned):  # the commit landed although its last step raised
                    raise
            with contextlib.suppress(OSError):  # committed: a stale intent names only listed files
                attempt.intent.unlink()
            attempt.intent = None

    def undo_interrupted(self) -> int:
        """Remove the files of exports a crash cut off before their commit (named in
        an intent, listed by no manifest; their events were never committed), and
        those intents: run by each logger that starts on the folder. The same
        protocol as the write-ahead log's recovery (`recovering`, `committed_files`,
        `remove`). Returns the files removed.

        Example:
            >>> import tempfile, pathlib
            >>> from axon_audit.write.targets import FolderTarget
            >>> FolderTarget(pathlib.Path(tempfile.mkdtemp()), key=None).undo_interrupted()
            0
        """
        if not ExportLayout(self.root).intents():
            return 0
        removed = 0
        with self.recovering():  # under the folder lock: no export is running, every intent is stale
            listed = self.committed_files({})
            for intent, files in ExportLayout(self.root).intents().items():
                for name in files:
                    if name not in listed and (self.root / name).exists():
                        self.remove(name)
                        removed += 1
                (self.root / intent).unlink(missing_ok=True)
        return removed

    def append(self, df: pl.DataFrame) -> list[Path]:
        """Write `df` as one more sealed export of the folder (all or nothing) and
        return its files: the same protocol as a rotation, outside any logger."""
        return append_export(self, df)

    def _committed(self, planned: list[str]) -> bool:
        try:
            listed = {e.get("file") for e in _integrity.load_manifest(self.root).get("entries", [])}
        except Exception:  # noqa: BLE001 - unreadable: not committed
            return False
        return bool(planned) and all(f in listed for f in planned)

    @contextlib.contextmanager
    def recovering(self) -> Iterator[None]:
        # Other writers of the folder may be exporting: undo only under the lock.
        with _integrity.folder_lock(self.root):
            _integrity.remove_stale_temps(self.root)
            self._listed = None
            try:
                yield
            finally:
                self._listed = None

    def committed_files(self, record: dict[str, Any]) -> set[str]:
        if self._listed is None:
            self._listed = {e.get("file") for e in _integrity.load_manifest(self.root).get("entries", [])}
        return self._listed

    def remove(self, name: str) -> None:
        (self.root / name).unlink(missing_ok=True)


def _intend(layout: ExportLayout[Path], files: list[str], path: Path | None = None) -> Path:
    """Record (durably) that an export is about to write `files`: its intent."""
    if path is None:
        folder = layout.root / layout.INTENTS_DIR
        if not folder.is_dir():
            folder.mkdir(exist_ok=True)
            fsync_dir(layout.root)
        path = folder / f"{secrets.token_hex(8)}.json"
    body = orjson.dumps({"files": files})
    atomic_write(path, lambda fh: fh.write(body))
    return path


class ObjectStoreTarget:
    """An object-store prefix: no lock there, so this logger commits to its own
    writer manifest, written only by its one export thread."""

    def __init__(self, root: Location, key: bytes | None, signing_key: SigningKey | None = None) -> None:
        self.root = root
        self.key = key
        self.signing_key = signing_key
        self.manifest: _integrity.WriterManifest | None = None  # made at the first export
        self.global_log = GlobalLog(root, key, signing_key)  # the lake's one log across writers
        self._listed: dict[str, set[str]] = {}

    def export(self, job: ExportJob, df: pl.DataFrame, attempt: Attempt, record: RecordFn | None) -> None:
        root = self.root
        if self.manifest is None:
            self.manifest = _integrity.WriterManifest(root, self.key, self.signing_key)
        manifest = self.manifest
        objects, leaves = objects_and_leaves(df)  # uploads are latency-bound: made first, then sent side by side
        tree = manifest.tree
        first = tree.size
        layout = ExportLayout(root)
        if job.remote is None:
            job.remote = (layout.unique_json_path(job.at), plan_parquet(df, layout.parquet_dir))
        json_path, plan = job.remote
        names = [layout.name_of(p) for p in [json_path, *(p for p, _, _ in plan)]]
        if record is not None:
            attempt.job_file = record(names, manifest.commit_name)
        # The intent (one PUT) before any object: a crash before the commit leaves leftovers that
        # verify can tell from inserted objects. No writer removes another's: it may still be running.
        intent = root / layout.INTENTS_DIR / f"{manifest.writer}-{secrets.token_hex(6)}.json"
        body = orjson.dumps({"files": names})
        intent.put(lambda fh: fh.write(body))
        attempt.intent = intent
        attempt.written = [json_path, *(p for p, _, _ in plan)]  # before the upload: one may fail midway
        digests = put_export(df, json_path, plan, objects)
        tree.extend(leaves)
        entries = _entries(names, plan, df, first, digests)
        before = (manifest.segment, manifest.doc)
        try:
            manifest.commit(entries, format_us(now_us()), tree)
        except BaseException:
            try:
                landed = manifest.landed()
            except OSError:
                # Cannot tell whether the commit took effect: keep the objects and the WAL's
                # job record (recovery decides from the manifest); the retry reuses the names.
                attempt.written, attempt.job_file = [], None
                raise
            if not landed:
                raise
        publish_globally(self.global_log, manifest, before, attempt)
        with contextlib.suppress(OSError):  # committed: a stale intent names only listed objects
            intent.unlink(missing_ok=True)
        attempt.intent = None

    @contextlib.contextmanager
    def recovering(self) -> Iterator[None]:
        # Each job names the writer manifest that commits it; only this WAL's logger wrote
        # those files and that manifest, so no lock is needed to undo what it left halfway.
        self._listed = {}
        yield
        # A commit cut off between its manifest and its global entry is finished first.
        for name, listed in self._listed.items():
            if listed:
                publish_if_missing(self.global_log, name)
        # Then that writer's intents are stale: what they name is now removed or committed.
        dead = {writer_log(name).rpartition("/")[2] for name in self._listed}  # manifests/<writer>
        for name in ExportLayout(self.root).intents() if dead else ():
            if name.rpartition("/")[2].removesuffix(ExportLayout.JSON_SUFFIX).rpartition("-")[0] in dead:
                with contextlib.suppress(OSError):
                    (self.root / name).unlink(missing_ok=True)

    def committed_files(self, record: dict[str, Any]) -> set[str]:
        name = record.get("manifest")
        if not name:
            return set()
        if name not in self._listed:
            self._listed[name] = _integrity.listed_files(self.root, name)
        return self._listed[name]

    def remove(self, name: str) -> None:
        (self.root / name).unlink(missing_ok=True)


def append_export(target: ExportTarget, df: pl.DataFrame) -> list[Any]:
    """Write `df` through `target` as one more export (all or nothing), outside any
    logger, and return what it wrote: GDPR's and maintenance's own records."""
    attempt = Attempt()
    try:
        target.export(ExportJob(df, datetime.now(timezone.utc)), df.sort("timestamp", maintain_order=True),
                      attempt, None)
    except BaseException:
        attempt.undo()
        raise
    return attempt.written


def target_for(root: Path | Location, key: bytes | None, signing_key: SigningKey | None = None,
               lake_format: str = "parquet", storage_options: StorageOptions | None = None, *,
               threads: int | None = None) -> FolderTarget | ObjectStoreTarget | DeltaTarget:
    """The logger's target for an export root: a local folder, an object-store
    prefix, or (``lake_format="delta"``) a Delta table at either. A local export
    keeps at most `threads` busy, by default what the background leaves to the
    threads that log (`axon_audit.io.threads`)."""
    if lake_format == "delta":
        return DeltaTarget(root, key, signing_key, storage_options)
    if isinstance(root, Location):
        return ObjectStoreTarget(root, key, signing_key)
    return FolderTarget(root, key, signing_key, threads=threads or background_threads())
