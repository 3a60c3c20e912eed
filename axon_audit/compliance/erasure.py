"""Erasure (GDPR art. 17): a data subject's identifiers pseudonymized or removed.

`erase_subject` rewrites a logger's memory and the affected files of export
folders (re-sealing a folder under an integrity manifest), then records the
erasure itself as an audit event.
"""

from __future__ import annotations

import functools
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import orjson
import polars as pl
import pyarrow.parquet as pq

from axon_audit.compliance.subject_access import check_subject
from axon_audit.display.html import card
from axon_audit.exceptions import ArchiveError, AuditTypeError, AuditValueError
from axon_audit.integrity import manifest as _integrity
from axon_audit.io.atomic import atomic_write
from axon_audit.io.json_export import event_objects, write_json_export, write_json_stream
from axon_audit.io.layout import ExportLayout
from axon_audit.io.location import local_folder
from axon_audit.io.parquet import parquet_table as _table_of
from axon_audit.io.parquet import parquet_writer as _parquet_writer
from axon_audit.io.parquet import write_parquet_partitions
from axon_audit.model.schema import COLUMNS, EMPTY_FRAME, from_arrow, normalize_batch, to_arrow
from axon_audit.model.timestamps import format_us, now_us, parse_timestamp
from axon_audit.read.sources import scan_sources
from axon_audit.write.targets import FolderTarget

__all__ = ["ErasureResult", "erase_subject"]

_WORD = "A-Za-z0-9_"


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
    files_rewritten: list[Path]
    audit_event_id: str

    def _repr_html_(self) -> str:
        items = {k: v for k, v in self.__dict__.items() if k != "files_rewritten"}
        files = "<br>".join(str(p) for p in self.files_rewritten) or "none"
        return card("GDPR erasure", items, {f"{len(self.files_rewritten)} files rewritten": files})


def _rust_escape(text: str) -> str:
    """A literal for polars' (Rust) regex: every character but [A-Za-z0-9_] as a hex escape
    (a backslash before some punctuation means something there, e.g. ``\\<``)."""
    return "".join(c if c.isascii() and (c.isalnum() or c == "_") else f"\\x{{{ord(c):X}}}" for c in text)


class _Rewriter:
    """The column rewrite of one erasure: exact ids replaced, token occurrences in text too."""

    def __init__(self, user_id: str, sessions: list[str], mode: str, pseudonym: str | None) -> None:
        self.user_id = user_id
        self.sessions = sessions
        self.mode = mode
        self.pseudonym = pseudonym
        self.session_map = {s: (f"{pseudonym}_s{i}" if pseudonym else None) for i, s in enumerate(sessions)}
        # Every identifier as it appears in text, and JSON-escaped (metadata is JSON text).
        swaps = {user_id: pseudonym or "[erased]"}
        swaps.update({s: self.session_map[s] or "[erased]" for s in sessions})
        swaps.update({orjson.dumps(t).decode()[1:-1]: r for t, r in list(swaps.items())})
        # Longest first: a session id that contains the user id is replaced whole.
        self.patterns = [(f"(^|[^{_WORD}]){_rust_escape(t)}([^{_WORD}]|$)", swaps[t])
                         for t in sorted(swaps, key=len, reverse=True)]
        self.needles = [t.encode() for t in swaps] + [
            json.dumps(t, ensure_ascii=True)[1:-1].encode() for t in (user_id, *sessions)]

    def _text(self, expr: pl.Expr) -> pl.Expr:
        for pattern, value in self.patterns:
            # Twice: adjacent occurrences share the separator the first pass consumed.
            for _ in range(2):
                expr = expr.str.replace_all(pattern, f"${{1}}{value.replace('$', '$$')}${{2}}")
        return expr

    def __call__(self, df: pl.DataFrame) -> pl.DataFrame:
        user = pl.col("user_id").cast(pl.String)
        session = pl.col("session_id").cast(pl.String)
        new_user = pl.when(user == self.user_id).then(pl.lit(self.pseudonym, pl.String)).otherwise(user)
        new_session = pl.when(session.is_in(self.sessions)).then(
            session.replace_strict(self.session_map, default=None, return_dtype=pl.String)).otherwise(session)
        out = df.with_columns(
            self._text(new_user).cast(df.schema["user_id"]).alias("user_id"),
            self._text(new_session).cast(df.schema["session_id"]).alias("session_id"),
            self._text(pl.col("metadata")),
            self._text(pl.col("error_message")),
            pl.col("entry_ids").list.eval(self._text(pl.element())),
        )
        return out


def _folders(items: list[Any]) -> list[Path]:
    out: list[Path] = []
    for s in items:
        path = None
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


def _check_columns(path: Path, names: Iterable[str]) -> None:
    extra = sorted(set(names) - set(COLUMNS))
    if extra:
        raise ArchiveError(f"{path}: erasure cannot rewrite a file with columns it does not know: {extra}")


def _rewrite_parquet(path: Path, fn: _Rewriter) -> bool:
    table = pq.read_table(path)
    _check_columns(path, table.column_names)  # never drop a column silently
    df = from_arrow(table)
    new = fn(df)
    if new.equals(df):
        return False
    atomic_write(path, _parquet_writer(to_arrow(new)))  # the rotation's encoding
    return True


def _rewrite_json(path: Path, fn: _Rewriter) -> bool:
    raw = path.read_bytes()
    if not any(n in raw for n in fn.needles):  # plain text: a byte search tells
        return False
    try:
        doc = orjson.loads(raw)
        events = doc["events"]
        exported = parse_timestamp(doc.get("exported_at") or datetime.now(timezone.utc), "exported_at")
    except (orjson.JSONDecodeError, KeyError, TypeError, AuditValueError) as exc:
        raise ArchiveError(f"{path}: not an export document ({exc})") from None
    _check_columns(path, {k for e in events for k in e})
    df = normalize_batch(events) if events else None
    if df is None:
        return False
    new = fn(df)
    atomic_write(path, lambda fh: write_json_stream(fh, new, exported))
    return True


def erase_subject(
    source: Any,
    user_id: str,
    *,
    mode: str = "pseudonymize",
    requested_by: str | None = None,
    hmac_key: str | bytes | None = None,
) -> ErasureResult:
    """Erase `user_id` from `source`: a logger (its memory and its export folder), an
    archive, an export folder path, or a list of them.

    The user's id, their session ids, and whole-token occurrences of either in
    metadata, error messages and entry ids are replaced by one random pseudonym
    per erasure (``mode="pseudonymize"``; no mapping is kept) or removed
    (``mode="remove"``: ids become null, text says ``[erased]``). Affected Parquet
    and JSON files are rewritten atomically. In a folder sealed by an integrity
    manifest, every file from the first changed one on is re-chained, the
    manifest entries are re-linked over the new files, and an ``erasure`` entry
    (with the replaced files' previous SHA-256) is appended and signed with
    `hmac_key` (default: the logger's), so `verify` passes and lists the erasure.
    A logger with a write-ahead log exports its (erased) memory so the log is
    released. Every file is checked first: an erasure that cannot complete
    changes nothing. The erasure is then recorded as a FORGET event (metadata
    ``gdpr_erasure``) in the first logger given, or else as a new export in the
    first folder.

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
    folders = _folders(items)
    for f in folders:
        if not f.is_dir():
            raise AuditValueError(f"source: export folder {f} does not exist")
    scannable = [s for s in items if callable(getattr(s, "scan", None))]
    for s in items:
        if s not in scannable and not isinstance(s, (str, Path)):
            raise AuditTypeError(f"source: cannot erase from {type(s).__name__}")

    # Check every file before changing anything: an erasure that would stop halfway is refused whole.
    for lg in loggers:
        lg.flush()  # exports in flight land first, so they are checked (and rewritten) too
    sealed = {f for f in folders if _is_sealed(f)}
    for f in folders:
        for p in _parts(f):
            _check_columns(p, set(pq.read_schema(p).names) - ({"chain"} if f in sealed else set()))
    if hmac_key is None and loggers:
        hmac_key = getattr(loggers[0], "_hmac_key", None)
    key = _integrity._key_bytes(hmac_key)
    for f in sealed:  # a keyed manifest is re-signed only with its key
        if "hmac" in _integrity.load_manifest(f) and key is None:
            raise AuditValueError(f"hmac_key: {f} has a signed manifest; erasure must re-sign it, give the key")

    # The subject's sessions, from every source that can be scanned (live and archived).
    own = (scan_sources(scannable, user_id=user_id).select("event_id", "session_id").collect()
           if scannable else pl.DataFrame(schema={"event_id": pl.String, "session_id": pl.String}))
    for f in folders:  # folders given as paths are read straight from their files
        own = pl.concat([own, _folder_events(f, user_id)])
    own = own.unique("event_id")
    sessions = sorted(own["session_id"].drop_nulls().unique().to_list())
    pseudonym = f"erased_{secrets.token_hex(8)}" if mode == "pseudonymize" else None
    fn = _Rewriter(user_id, sessions, mode, pseudonym)

    in_memory = sum(lg._rewrite_memory(fn) for lg in loggers)
    for lg in loggers:
        if getattr(lg, "_wal", None) is not None and lg.auto_export_path is not None:
            lg.close()  # the write-ahead log still holds the original rows: export (erased) memory to release it
    sealed = {f for f in folders if _is_sealed(f)}  # the export above may seal one
    plain = [f for f in folders if f not in sealed]
    # Listed again: a rotation may have written since the check.
    parquet = [p for f in plain for p in _parts(f)]
    documents = [p for f in plain for p in _documents(f)]
    written = [p for p in parquet if _rewrite_parquet(p, fn)]
    written += [p for p in documents if _rewrite_json(p, fn)]
    summary = {"gdpr_erasure": True, "mode": mode, "subject": pseudonym, "events": own.height,
               "sessions": len(sessions)}
    for f in folders:
        if f in sealed:
            written += _reseal(f, fn, key, summary)

    record = {**summary, "files_rewritten": len(written)}
    if loggers:
        event_id = loggers[0].log("FORGET", user_id=requested_by, metadata=record).event_id
        loggers[0].flush()
    elif folders:
        df = normalize_batch([{"operation": "FORGET", "user_id": requested_by, "metadata": record}])
        if folders[0] in sealed:
            _append_sealed_export(folders[0], df, key)
        else:
            layout = ExportLayout(folders[0])
            write_json_export(df, layout.root / layout.rotation_name(tag="erasure"), replace=False)
            write_parquet_partitions(df, layout.parquet_dir)
        event_id = df["event_id"][0]
    else:
        raise AuditTypeError("source: erasure needs a logger or an export folder to record the erasure in")
    return ErasureResult(mode, pseudonym, own.height, in_memory, written, event_id)


def _load_plain(path: Path, kind: str) -> tuple[pl.DataFrame, int | None]:
    """A sealed export file's events (without their chain) in file order, and the
    JSON document's `exported_at`."""
    if kind == "parquet":
        table = pq.read_table(path)
        if "chain" in table.column_names:
            table = table.drop_columns(["chain"])
        _check_columns(path, table.column_names)
        return from_arrow(table), None
    doc = orjson.loads(path.read_bytes())
    events = [{k: v for k, v in e.items() if k != "chain"} for e in doc["events"]]
    _check_columns(path, {k for e in events for k in e})
    exported = parse_timestamp(doc["exported_at"], "exported_at") if doc.get("exported_at") else None
    return (normalize_batch(events) if events else EMPTY_FRAME.clear()), exported


def _write_document(fh: IO[bytes], *, df: pl.DataFrame, exported: int | None, objects: pl.Series) -> None:
    write_json_stream(fh, df, exported, objects)


def _reseal(root: Path, fn: _Rewriter, key: bytes | None, summary: dict[str, Any]) -> list[Path]:
    """Erase in a sealed folder: rewrite every file from the first one that changes
    (its chain, and so every later file's chain of the same kind, changes too),
    re-link the manifest entries over the new files, and append an ``erasure``
    entry that records the erasure and the replaced files' previous SHA-256."""
    written: list[Path] = []
    with _integrity.folder_lock(root):
        manifest = _integrity.load_manifest(root)
        entries = [dict(e) for e in manifest.get("entries", [])]
        ends: dict[str, str] = {}
        moved: set[str] = set()  # streams whose chain changed: every later file is re-chained
        replaced: dict[str, str] = {}
        retired = {f for e in entries if e.get("kind") == "retention" for f in e.get("removed", [])}
        plans: list[tuple[int, Path, str, pl.DataFrame, pl.Series, int | None, str]] = []
        for i, e in enumerate(entries):
            kind = e.get("kind")
            if kind not in ("json", "parquet"):
                continue
            if e["file"] in retired:  # deleted by retention: nothing left to erase in it
                if kind in moved:
                    raise ArchiveError(f"{root}: {e['file']} was deleted by retention after a file that holds the "
                                       "subject; its chain cannot be re-sealed")
                ends[kind] = e["chain_end"]
                continue
            path = root / e["file"]
            start = ends.get(kind, _integrity.GENESIS)
            df, exported = _load_plain(path, kind)
            new = fn(df)
            if kind not in moved and new.equals(df):
                ends[kind] = e["chain_end"]
                continue
            moved.add(kind)
            objects = event_objects(new)
            new = new.with_columns(_integrity.chain_column(objects, start))
            plans.append((i, path, kind, new, objects, exported, start))
            ends[kind] = new["chain"][-1] if new.height else start
        if ends.get("json") != ends.get("parquet") and {"json", "parquet"} <= {e.get("kind") for e in entries}:
            # Both kinds carry one chain; retention can leave them holding different events, and then
            # re-chaining them would give two ends and break the next rotation's link. Nothing was written.
            raise ArchiveError(f"{root}: after retention the JSON and Parquet exports hold different events; "
                               "the erasure cannot re-seal both chains consistently, so nothing was changed")
        for i, path, kind, new, objects, exported, start in plans:
            e = entries[i]
            if kind == "json":
                atomic_write(path, functools.partial(_write_document, df=new, exported=exported, objects=objects))
            else:
                atomic_write(path, _parquet_writer(_table_of(new)))  # the rotation's encoding
            replaced[e["file"]] = e["sha256"]
            keep = {k: e[k] for k in ("index", "written_at") if k in e}
            entries[i] = {**_integrity.file_entry(root, path, kind, new, start), **keep}
            written.append(path)
        if not replaced:
            return written
        prev = _integrity.GENESIS
        for i, e in enumerate(entries):  # re-link: each entry's hash covers its new content
            e.update(index=i, prev=prev)
            e["hash"] = prev = _integrity.entry_hash(e)
        erasure = {"kind": "erasure", "file": None, **summary, "replaced": replaced}
        _integrity.append_entries(root, {"entries": entries}, [erasure], key, format_us(now_us()))
    return written


def _append_sealed_export(root: Path, df: pl.DataFrame, key: bytes | None) -> None:
    """Write `df` as one more export of a sealed folder (JSON + Parquet, chained, listed):
    the rotation's own commit protocol, through the folder's export target."""
    FolderTarget(root, key).append(df)


def _folder_events(folder: Path, user_id: str) -> pl.DataFrame:
    """The subject's (event_id, session_id) pairs in an export folder's files."""
    frames = []
    parts = _parts(folder)
    if parts:
        frames.append(pl.scan_parquet(parts).filter(pl.col("user_id").cast(pl.String) == user_id)
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
