"""Erasure (GDPR art. 17): a data subject's identifiers pseudonymized or removed.

`erase_subject` rewrites a logger's memory and the affected files of export
folders, then records the erasure itself as an audit event. In a folder sealed
by an integrity manifest the erasure is appended to the manifest (one
``erasure`` entry, `_SealedErasure`; its form is `integrity.replay`'s): the
export log, its tree heads and every checkpoint handed out stay valid.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pyarrow.parquet as pq

from axon_audit.compliance.erasure_files import Rewrite, check_columns, file_writer, load_plain, plan_file
from axon_audit.compliance.erasure_rewrite import SubjectRewrite as _Rewriter
from axon_audit.compliance.lake_maintenance import LakeErasure, lake_of, lake_subject_events, record_in_lake
from axon_audit.compliance.subject_access import check_subject
from axon_audit.display.html import card
from axon_audit.exceptions import ArchiveError, AuditTypeError, AuditValueError
from axon_audit.integrity import manifest as _integrity
from axon_audit.integrity.checkpoint import SigningKey
from axon_audit.integrity.log import signing_key_of
from axon_audit.integrity.replay import overrides_of
from axon_audit.io.atomic import atomic_write, atomic_write_hashed
from axon_audit.io.json_export import write_json_export
from axon_audit.io.layout import ExportLayout
from axon_audit.io.location import Location, StorageOptions, local_folder
from axon_audit.io.parquet import write_parquet_partitions
from axon_audit.model.schema import normalize_batch
from axon_audit.read.sources import scan_sources
from axon_audit.write.targets import FolderTarget

__all__ = ["ErasureResult", "erase_subject"]


@dataclass
class ErasureResult:
    """What `erase_subject` did. `pseudonym` is None when identifiers were removed.

    Example:
        >>> from axon_audit import AuditLogger, erase_subject
        >>> audit = AuditLogger()
        >>> _ = audit.log("store", user_id="ann")
        >>> r = erase_subject(audit, "ann", mode="remove")
        >>> r.pseudonym, r.events, r.files_rewritten
        (None, 1, [])
    """

    mode: str
    pseudonym: str | None
    events: int  # events of the subject found (and rewritten)
    memory_events_rewritten: int
    files_rewritten: list[Path | Location]  # local files, or objects of a lake
    audit_event_id: str

    def _repr_html_(self) -> str:
        items = {k: v for k, v in self.__dict__.items() if k != "files_rewritten"}
        return card("GDPR erasure", items, {f"{len(self.files_rewritten)} files rewritten": self.files_rewritten})


def _folders(items: list[Any], storage_options: StorageOptions | None = None) -> list[Path]:
    out: list[Path] = []
    for s in items:
        path = None
        if lake_of(s, storage_options) is not None:
            continue  # an object-store lake: `compliance.lake_maintenance`
        if isinstance(s, (str, Path)):
            path = local_folder(s, argument="source", task="erase_subject")
        elif getattr(s, "auto_export_path", None) is not None:
            path = local_folder(s.auto_export_path, argument="source", task="erase_subject")
        elif isinstance(getattr(s, "path", None), (str, Path)):  # an archive (of a URI: its uri)
            path = local_folder(s.path, argument="source", task="erase_subject")
        if path is not None:
            path = ExportLayout.folder_of(path)  # an archive of one JSON export, or of the parquet/ folder
            if path not in out:
                out.append(path)
    return out


def _parts(folder: Path) -> list[Path]:
    """An export folder's own Parquet parts (under ``parquet/``)."""
    return [p.path for p in ExportLayout(folder).parts(strict=True)]


def _documents(folder: Path) -> list[Path]:
    """An export folder's JSON export documents."""
    return [d.path for d in ExportLayout(folder).json_documents()]


def _is_sealed(folder: Path) -> bool:
    return ExportLayout(folder).manifest_path.exists()


def _rewrite_plain(path: Path, kind: str, fn: _Rewriter) -> bool:
    """Erase in a file of a folder without a manifest; whether it changed."""
    raw = path.read_bytes()
    if kind == "json" and not any(n in raw for n in fn.needles):  # plain text: a byte search tells
        return False
    df, exported = load_plain(raw, path, kind, chain=False)  # never drop a column silently
    new = fn(df)
    if new.equals(df):
        return False
    atomic_write(path, file_writer(kind, new, exported))
    return True


def erase_subject(
    source: Any,
    user_id: str,
    *,
    mode: str = "pseudonymize",
    requested_by: str | None = None,
    hmac_key: str | bytes | None = None,
    signing_key: Any = None,
    storage_options: StorageOptions | None = None,
) -> ErasureResult:
    """Erase `user_id` from `source`: a logger (its memory and its export folder), an
    archive, an export folder path or ``s3://`` lake, or a list of them.

    The user's id, their session ids, and whole-token occurrences of either in the
    string values of their own events' metadata (decoded: keys, numbers, booleans
    and null are never touched), error messages and entry ids are replaced by one
    random pseudonym per erasure (``mode="pseudonymize"``; no mapping is kept) or
    removed (``mode="remove"``: ids become null, text says ``[erased]``). In other
    people's events only a metadata string value that is the id or a session id,
    whole (``{"shared_with": "ann"}``), and a session of the subject's change
    (`axon_audit.compliance.erasure_rewrite` has the exact rule). Affected Parquet
    and JSON files are rewritten atomically. A folder sealed by an integrity
    manifest gets one ``erasure`` entry appended (HMAC: `hmac_key`, default the
    logger's) with the rewritten files' new SHA-256 and the altered events'
    original leaf hashes; earlier entries, tree heads and checkpoints stay valid,
    so `verify` passes and lists the erasure. A sealed file holding the subject
    that differs from its SHA-256, or is an old chained one (manifest format /1),
    is refused. A logger with a write-ahead log exports its (erased) memory so
    the log is released. Every file is checked first: an erasure that cannot
    complete changes nothing. The erasure is then recorded as a FORGET event
    (``gdpr_erasure``) in the first logger, else as an export in the first folder
    (`signing_key` signs its tree head, needed where that folder's are signed).
    In an object-store lake the rewritten objects are recorded in one signed
    ``maintenance`` entry of its global log instead, and a lake without a logger
    records the FORGET event as an export of its own
    (`axon_audit.compliance.lake_maintenance`; `storage_options` as for
    `open_archive`, for a lake given as a URI).

    Example:
        >>> from axon_audit import AuditLogger, erase_subject
        >>> audit = AuditLogger()
        >>> _ = audit.log("store", user_id="ann", session_id="s-ann", metadata={"by": "ann"})
        >>> result = erase_subject(audit, "ann", requested_by="dpo")
        >>> audit.query_events(user_id="ann")
        []
        >>> e = audit.query_events(operation="store")[0]
        >>> e.user_id == result.pseudonym, e.metadata["by"] == result.pseudonym
        (True, True)
        >>> audit.query_events(user_id="dpo")[0].metadata["gdpr_erasure"]
        True
    """
    user_id = check_subject(user_id)
    if mode not in ("pseudonymize", "remove"):
        raise AuditValueError(f"mode must be 'pseudonymize' or 'remove', got {mode!r}")
    items = list(source) if isinstance(source, (list, tuple)) else [source]
    if not items:
        raise AuditTypeError("source must be a logger, an archive, a folder or a list of them, got an empty list")
    loggers = [s for s in items if callable(getattr(s, "_rewrite_memory", None))]
    folders = _folders(items, storage_options)
    lakes = list({lk.uri: lk for s in items if (lk := lake_of(s, storage_options)) is not None}.values())
    exporting = set(_folders(loggers))  # a logger's folder appears with its first export: none yet is fine
    for f in folders:
        if f not in exporting and not f.is_dir():
            raise AuditValueError(f"source: export folder {f} does not exist")
    for lk in lakes:
        if not lk.is_dir() and not any(lake_of(lg) == lk for lg in loggers):
            raise AuditValueError(f"source: lake {lk} holds no objects")
    scannable = [s for s in items if callable(getattr(s, "scan", None))]
    for s in items:
        if s not in scannable and not isinstance(s, (str, Path)):
            raise AuditTypeError(f"source: cannot erase from {type(s).__name__}")

    # Check every file before changing anything: an erasure that would stop halfway is refused whole.
    for lg in loggers:
        lg._settle()  # exports of the events logged so far land first (a cut; a failed one stays in memory)
    sealed = {f for f in folders if _is_sealed(f)}
    for f in folders:
        for p in _parts(f):
            check_columns(p, set(pq.read_schema(p).names) - ({"chain"} if f in sealed else set()))
    if hmac_key is None and loggers:
        hmac_key = getattr(loggers[0], "_hmac_key", None)
    key = _integrity._key_bytes(hmac_key)
    for f in sealed:  # a keyed manifest is re-signed only with its key
        if "hmac" in _integrity.load_manifest(f) and key is None:
            raise AuditValueError(f"hmac_key: {f} has a signed manifest; erasure must re-sign it, give the key")
    signer = signing_key_of(signing_key if signing_key is not None or not loggers
                            else getattr(getattr(loggers[0], "_config", None), "signing_key", None))
    for f in sealed:  # the erasure entry is covered by a new signed head there
        if _integrity.signs_its_heads(_integrity.load_manifest(f)) and signer is None:
            raise AuditValueError(f"signing_key: {f} signs its tree heads; the erasure must be signed, give the key")

    # The subject's sessions, from every source that can be scanned (live and archived).
    own = (scan_sources(scannable, user_id=user_id).select("event_id", "session_id").collect()
           if scannable else pl.DataFrame(schema={"event_id": pl.String, "session_id": pl.String}))
    for f in folders:  # folders given as paths are read straight from their files
        own = pl.concat([own, _folder_events(f, user_id)])
    for lk in lakes:  # and lakes from their Parquet parts
        own = pl.concat([own, lake_subject_events(lk, user_id)])
    own = own.unique("event_id")
    sessions = sorted(own["session_id"].drop_nulls().unique().to_list())
    pseudonym = f"erased_{secrets.token_hex(8)}" if mode == "pseudonymize" else None
    fn = _Rewriter(user_id, sessions, mode, pseudonym)
    seals = {f: _SealedErasure(f, fn, key, signer) for f in folders if f in sealed}
    for s in seals.values():
        s.check()
    lake_seals = [LakeErasure(lk, fn, key, signer) for lk in lakes]
    for ls in lake_seals:
        ls.check()

    in_memory = sum(lg._rewrite_memory(fn) for lg in loggers)
    for lg in loggers:
        if getattr(lg, "_wal", None) is not None and lg.auto_export_path is not None:
            lg.close()  # the write-ahead log still holds the original rows: export (erased) memory to release it
    # Folders sealed only by the export above hold their old files unlisted: rewritten as plain ones.
    plain = [f for f in folders if f not in sealed]
    # Listed again: a rotation may have written since the check.
    written: list[Path | Location] = [p for f in plain for p in _parts(f) if _rewrite_plain(p, "parquet", fn)]
    written += [p for f in plain for p in _documents(f) if _rewrite_plain(p, "json", fn)]
    summary = {"gdpr_erasure": True, "mode": mode, "subject": pseudonym, "events": own.height,
               "sessions": len(sessions)}
    for s in seals.values():
        written += s.commit(summary)
    for ls in lake_seals:
        written += ls.commit(summary)

    record = {**summary, "files_rewritten": len(written)}
    if loggers:
        event_id = loggers[0].log("FORGET", user_id=requested_by, metadata=record).event_id
        loggers[0]._settle(exports=False)  # the record fsynced (WAL); later rotations are not waited for
    elif folders:
        df = normalize_batch([{"operation": "FORGET", "user_id": requested_by, "metadata": record}])
        if _is_sealed(folders[0]):
            _append_sealed_export(folders[0], df, key, signer)
        else:
            layout = ExportLayout(folders[0])
            write_json_export(df, layout.root / layout.rotation_name(tag="erasure"), replace=False)
            write_parquet_partitions(df, layout.parquet_dir)
        event_id = df["event_id"][0]
    elif lakes:
        df = normalize_batch([{"operation": "FORGET", "user_id": requested_by, "metadata": record}])
        record_in_lake(lakes[0], df, key, signer)
        event_id = df["event_id"][0]
    else:
        raise AuditTypeError("source: erasure needs a logger or an export folder to record the erasure in")
    return ErasureResult(mode, pseudonym, own.height, in_memory, written, event_id)


class _SealedErasure:
    """Erasure in a sealed folder, append-only (`integrity.replay`): the files holding
    the subject are rewritten, then ONE ``erasure`` entry records their new
    ``sha256``/``bytes``/``rows`` (``replaced``), each altered event's original
    leaf hash by log position (``leaves``) and the positions whose events left
    their file (``deleted``: none, erasure keeps every event). Refused, changing
    nothing, for a file holding the subject that differs from its SHA-256 or is
    an old chained (format /1) one."""

    def __init__(self, root: Path, fn: _Rewriter, key: bytes | None, signer: SigningKey | None) -> None:
        self.root, self.fn, self.key, self.signer = root, fn, key, signer
        self._seen: dict[tuple[str, str], Rewrite | None] = {}  # (file, SHA-256 listed): its plan

    def _plan(self, manifest: dict[str, Any]) -> list[Rewrite]:
        entries = manifest.get("entries", [])
        ov = overrides_of(entries)
        plan = []
        for e in entries:
            if e.get("kind") not in ("json", "parquet") or e.get("file") in ov.removed:
                continue  # deleted by retention: nothing left to erase in it
            seen = (e["file"], str(ov.replaced.get(e["file"], e).get("sha256")))
            if seen not in self._seen:
                self._seen[seen] = plan_file(self.root, e, ov, self.fn)
            if (rewrite := self._seen[seen]) is not None:
                plan.append(rewrite)
        return sorted(plan, key=lambda r: r.kind != "parquet")  # parts first

    def check(self) -> None:
        """Plan the erasure before anything changes (raises if it cannot complete)."""
        with _integrity.folder_lock(self.root):
            self._plan(_integrity.load_manifest(self.root))

    def commit(self, summary: dict[str, Any]) -> list[Path]:
        """Rewrite the files (each atomically) and append the erasure entry; on
        failure the files are put back. Returns the files rewritten."""
        root = self.root
        with _integrity.folder_lock(root):
            manifest = _integrity.load_manifest(root)
            plan = self._plan(manifest)  # files exported since `check` are planned too
            if not plan:
                return []
            replaced: dict[str, dict[str, Any]] = {}
            done: list[Rewrite] = []
            try:
                for r in plan:
                    _, (digest, size) = atomic_write_hashed(root / r.name, file_writer(r.kind, r.new, r.exported))
                    done.append(r)
                    replaced[r.name] = {"sha256": digest, "bytes": size, "rows": r.new.height}
                leaves = {p: leaf for r in reversed(plan) for p, leaf in r.altered.items()}  # a part's leaf wins
                entry = {"kind": "erasure", "file": None, **summary, "replaced": replaced,
                         "leaves": {str(p): leaves[p].hex() for p in sorted(leaves)}, "deleted": []}
                _integrity.append_record(root, manifest, entry, self.key, self.signer)
            except BaseException:
                try:  # the append may have landed although it raised (in its last step)
                    landed = _integrity.head_of(_integrity.load_manifest(root)) != _integrity.head_of(manifest)
                except Exception:  # noqa: BLE001 - unreadable: not landed
                    landed = False
                for r in [] if landed else done:  # put the files back: the folder is as it was
                    atomic_write(root / r.name, lambda fh, data=r.data: fh.write(data))  # type: ignore[misc]
                raise
        return [root / r.name for r in plan]


def _append_sealed_export(root: Path, df: pl.DataFrame, key: bytes | None, signer: SigningKey | None) -> None:
    """Write `df` as one more export of a sealed folder (JSON + Parquet, listed, its events
    appended to the log): the rotation's own commit protocol, through the folder's export target."""
    FolderTarget(root, key, signer).append(df)


def _folder_events(folder: Path, user_id: str) -> pl.DataFrame:
    """The subject's (event_id, session_id) pairs in an export folder's files."""
    frames = []
    parts = _parts(folder)
    if parts:
        frames.append(pl.scan_parquet(parts, glob=False).filter(pl.col("user_id").cast(pl.String) == user_id)
                      .select("event_id", pl.col("session_id").cast(pl.String)).collect())
    needle = orjson.dumps(user_id)
    for p in _documents(folder):
        raw = p.read_bytes()
        if needle not in raw:
            continue
        try:
            events = orjson.loads(raw)["events"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise ArchiveError(f"{p}: not an export document ({exc})") from None
        frames.append(pl.DataFrame([(e.get("event_id"), e.get("session_id")) for e in events
                                    if e.get("user_id") == user_id],
                                   schema={"event_id": pl.String, "session_id": pl.String}, orient="row"))
    return pl.concat(frames) if frames else pl.DataFrame(schema={"event_id": pl.String, "session_id": pl.String})
