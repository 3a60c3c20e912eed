"""Retention: remove the events older than a limit from an export folder, both
copies, recorded in the folder's integrity manifest where there is one.

An event expires when its UTC day ended before the cutoff: its `date=YYYY-MM-DD`
partition goes whole, and the JSON exports (names as `io.layout.ExportLayout`
makes them) lose it: a document of only expired events is deleted, one that also
holds kept events is rewritten with those (`compliance.retention_json`). The
result counts, per file, the events that left the disk. A dry run plans the same
(its sealed-folder checks included) and changes nothing.

In a sealed folder the ``retention`` entry lists the files deleted
(``removed``), the rewritten JSON copies (``replaced``: their new SHA-256, size
and rows; ``deleted``: the log positions of the events they lost, all in deleted
parts) and, for each deleted Parquet part of the export log, its
``covers``: the perfect aligned subtrees over its log range ``[first, end)``,
``[[height, hash hex], ...]`` in order, so `verify` still replays the tree
(`integrity.replay`). A part's cover is computed from its events (the original
leaves of erased ones put back) only after its SHA-256 matched the manifest, so
a tampered part is never vouched for.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow.parquet as pq

from axon_audit.compliance.lake_maintenance import lake_of
from axon_audit.compliance.lake_retention import lake_retention
from axon_audit.compliance.retention_json import (
    DocumentPlan,
    day_expired,
    manifest_state,
    plan_documents,
    sealed_documents,
)
from axon_audit.display.html import card, lines
from axon_audit.exceptions import AuditTypeError, AuditValueError
from axon_audit.integrity import manifest as _integrity
from axon_audit.integrity.log import signing_key_of
from axon_audit.integrity.merkle import root as merkle_root
from axon_audit.integrity.replay import file_leaves, overrides_of, read_part
from axon_audit.io.atomic import atomic_write
from axon_audit.io.layout import ExportLayout
from axon_audit.io.location import Location, StorageOptions, local_folder
from axon_audit.model.timestamps import to_us

__all__ = ["RetentionResult", "apply_retention"]


@dataclass
class RetentionResult:
    """What `apply_retention` removed (or, in a dry run, would remove): exactly what
    leaves the disk. An event expires when its UTC day ended before the cutoff
    (stamped before `expired_before`), the rule the date partitions go by, so the
    Parquet parts and the JSON copies lose the same events.

    Example:
        >>> import tempfile
        >>> from axon_audit import apply_retention
        >>> r = apply_retention(tempfile.mkdtemp(), keep_days=30, dry_run=True)
        >>> r.partitions, r.json_files, r.json_rewritten, r.events, r.json_events
        ([], [], [], 0, 0)
    """

    cutoff: datetime
    dry_run: bool
    expired_before: datetime | None = None
    # Paths in a local folder; Locations (objects) in an s3:// lake.
    partitions: list[Path | Location] = field(default_factory=list)  # partition folders deleted whole
    json_files: list[Path | Location] = field(default_factory=list)  # JSON exports deleted whole
    json_rewritten: list[Path | Location] = field(default_factory=list)  # rewritten with their kept events
    removed: dict[Path | str, int] = field(default_factory=dict)  # per part / JSON export (a lake's: its URI)
    events: int = 0  # Parquet events removed (from the parts' footers)
    json_events: int = 0  # events removed from the JSON exports
    bytes: int = 0  # bytes freed
    manifest: str = "no integrity manifest found"

    def _repr_html_(self) -> str:
        items = {"cutoff": self.cutoff, "dry run": self.dry_run, "partitions": len(self.partitions),
                 "JSON files deleted": len(self.json_files), "JSON files rewritten": len(self.json_rewritten),
                 "Parquet events": self.events, "JSON events": self.json_events, "bytes": self.bytes,
                 "manifest": self.manifest}
        listing = lines([*self.partitions, *self.json_files, *self.json_rewritten], empty="nothing")
        return card("Retention" + (" (dry run)" if self.dry_run else ""), items, {"files": listing})


def apply_retention(
    path: str | Path, keep_days: int | float, *, now: datetime | None = None, dry_run: bool = False,
    hmac_key: str | bytes | None = None, signing_key: Any = None, storage_options: StorageOptions | None = None,
) -> RetentionResult:
    """Remove the events under `path` older than `keep_days` days before `now`
    (default: the current time), by whole UTC days: the date partitions whose day
    ended before the cutoff go whole, a JSON export holding only such events is
    deleted, and one holding some is rewritten atomically with the others
    (`compliance.retention_json`). With ``dry_run=True`` nothing changes and the
    result is the plan the real run then carries out, its manifest checked the
    same way. In a folder sealed by an integrity manifest a ``retention`` entry
    listing the deleted files, the log cover of each deleted part and the
    rewritten JSON copies is appended (signed with `hmac_key`, and its re-stated
    tree head with `signing_key` where the folder's heads are signed), so `verify`
    passes and lists it; a file that differs from its manifest SHA-256, or an old
    chained JSON copy (format /1) to rewrite, is refused (nothing removed). On an
    ``s3://`` lake (`storage_options` as for `open_archive`) the same entries, one
    per writer manifest, go into one signed ``maintenance`` entry of the lake's
    global log (`axon_audit.compliance.lake_retention`).

    Example:
        >>> import tempfile
        >>> from datetime import datetime, timezone
        >>> from axon_audit import AuditLogger, apply_retention
        >>> folder = tempfile.mkdtemp()
        >>> with AuditLogger(auto_export_path=folder) as audit:
        ...     audit.log_batch([{"operation": "store", "timestamp": datetime(2026, 1, d, tzinfo=timezone.utc)}
        ...                      for d in (1, 2, 3)])
        3
        >>> r = apply_retention(folder, 30, now=datetime(2026, 2, 2, 12, tzinfo=timezone.utc), dry_run=True)
        >>> [p.name for p in r.partitions], r.events, len(r.json_rewritten), r.json_events
        (['date=2026-01-01', 'date=2026-01-02'], 2, 1, 2)
    """
    if not isinstance(path, (str, Path)):
        raise AuditTypeError(f"path must be a str, Path or URI, got {type(path).__name__}")
    lake = lake_of(path, storage_options)
    root = local_folder(path, argument="path", task="apply_retention") if lake is None else Path()
    if lake is None and not root.is_dir():
        raise AuditValueError(f"path: export folder {root} does not exist")
    if lake is not None and not lake.is_dir():
        raise AuditValueError(f"path: lake {lake} holds no objects")
    if isinstance(keep_days, bool) or not isinstance(keep_days, (int, float)) or not keep_days >= 0:
        raise AuditValueError(f"keep_days must be a number of days >= 0, got {keep_days!r}")
    now = now or datetime.now(timezone.utc)
    if not isinstance(now, datetime):
        raise AuditTypeError(f"now must be a datetime, got {type(now).__name__}")
    cutoff_us = to_us(now, "now") - int(keep_days * 86_400_000_000)
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    day_us = 86_400_000_000
    cutoff = epoch + timedelta(microseconds=cutoff_us)
    result = RetentionResult(cutoff, bool(dry_run), epoch + timedelta(microseconds=cutoff_us // day_us * day_us))
    if lake is not None:
        lake_retention(lake, result, cutoff_us, keep_days, bool(dry_run), _integrity._key_bytes(hmac_key),
                       signing_key_of(signing_key), _covers)
        return result

    layout = ExportLayout(root)
    if not layout.manifest_path.exists():
        plans = _plan(layout, result, cutoff_us)
        if not dry_run:
            _commit(root, result, plans, None)
        return result
    key = _integrity._key_bytes(hmac_key)
    with _integrity.folder_lock(root):  # planned under the lock: no export or erasure changes files meanwhile
        plans = _plan(layout, result, cutoff_us)
        try:
            manifest = _integrity.load_manifest(root)
        except (OSError, orjson.JSONDecodeError) as exc:
            if dry_run:
                result.manifest = f"manifest problem: {layout.manifest_path.name} does not parse ({exc})"
                return result
            raise AuditValueError(f"{root}: its manifest does not parse ({exc}); nothing was removed") from None
        result.manifest = manifest_state(root, manifest, key)
        problem = result.manifest.startswith("manifest problem")
        if dry_run or not (result.partitions or plans):
            if not problem:
                _record_plan(root, layout, manifest, result, plans, keep_days)  # refuses as the real run would
            return result
        if "hmac" in manifest and key is None:
            raise AuditValueError(f"hmac_key: {root} has a signed manifest; retention must re-sign it, give the key")
        if problem:  # appending would vouch for a broken manifest
            raise AuditValueError(f"{root}: {result.manifest}; nothing was removed")
        signer = signing_key_of(signing_key)
        if _integrity.signs_its_heads(manifest) and signer is None:
            raise AuditValueError(f"signing_key: {root} signs its tree heads; retention must be signed, give the key")
        entry = _record_plan(root, layout, manifest, result, plans, keep_days)
        _commit(root, result, plans, lambda: _integrity.append_record(root, manifest, entry, key, signer))
    result.manifest = "recorded in the integrity manifest"
    return result


def _plan(layout: ExportLayout, result: RetentionResult, cutoff_us: int) -> list[DocumentPlan]:
    """Fill `result` with what goes: the expired partitions, each Parquet file's rows,
    and the JSON documents that lose events (returned, with their new bytes)."""
    assert result.expired_before is not None
    for part, day in layout.partitions():
        if day_expired(day, cutoff_us):  # the whole day ended before the cutoff
            # The folder goes whole, so everything in it counts (not only the listed parts).
            files = sorted(f for f in part.rglob("*") if f.is_file())
            result.partitions.append(part)
            result.bytes += sum(f.stat().st_size for f in files)
            for f in files:
                if f.suffix == layout.PARQUET_SUFFIX:
                    try:
                        result.removed[f] = pq.read_metadata(f).num_rows
                    except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError
                        raise AuditValueError(f"{layout.root}: {layout.name_of(f)} is not a readable Parquet part "
                                              f"({exc}); run verify; nothing was removed") from None
                    result.events += result.removed[f]
    plans = plan_documents(layout, result.expired_before, cutoff_us)
    for p in plans:
        (result.json_files if p.new is None else result.json_rewritten).append(p.path)
        result.removed[p.path] = p.expired
        result.json_events += p.expired
        result.bytes += p.freed
    return plans


def _record_plan(root: Path, layout: ExportLayout, manifest: dict, result: RetentionResult,
                 plans: list[DocumentPlan], keep_days: float) -> dict[str, Any]:
    """The retention entry of a sealed folder, every file checked first (raises,
    changing nothing, for one that cannot be removed verifiably)."""
    entries = manifest.get("entries", [])
    if not isinstance(entries, list):
        raise AuditValueError(f"{root}: its manifest has no entries list (run verify); nothing was removed")
    ov = overrides_of(entries)
    gone = [layout.name_of(p.path) for p in plans if p.new is None]
    gone += [layout.name_of(f) for part in _local(result.partitions) for f in sorted(part.rglob("*")) if f.is_file()]
    covers = _covers(root, entries, set(gone))
    deleted = sealed_documents(root, entries, ov, plans, set(gone))
    listed = {e.get("file") for e in entries}
    replaced = {p.name: {"sha256": hashlib.sha256(p.new).hexdigest(), "bytes": len(p.new), "rows": p.events - p.expired}
                for p in plans if p.new is not None and p.name in listed}
    # The entries of deleted files stay (history, and the log runs through them); this entry says they went.
    return {"kind": "retention", "file": None, "cutoff": result.cutoff.isoformat(),
            "keep_days": keep_days, "removed": [g for g in gone if g in listed],
            "events": result.events, "json_events": result.json_events, "covers": covers,
            "replaced": replaced, "deleted": deleted}


def _covers(root: Path, entries: list[dict], gone: set[str]) -> dict[str, list[list]]:
    """The log cover of each listed Parquet part of `gone` (see the module docstring).
    Raises AuditValueError for a part that differs from its manifest SHA-256."""
    ov = overrides_of(entries)
    covers: dict[str, list[list]] = {}
    for e in entries:
        name = e.get("file")
        if e.get("kind") != "parquet" or "leaves" not in e or name not in gone or name in ov.removed:
            continue  # an old chained part needs none (its chain is checked per file)
        data = (root / name).read_bytes()
        if hashlib.sha256(data).hexdigest() != ov.replaced.get(name, e).get("sha256"):
            raise AuditValueError(f"{root}: {name} differs from the manifest's SHA-256 (modified or replaced); "
                                  "retention would vouch for the altered file's events, so nothing was removed "
                                  "(run verify)")
        try:
            leaves = file_leaves(read_part(data), e, ov)
        except Exception as exc:  # noqa: BLE001 - its listed content, yet not this log's part
            raise AuditValueError(f"{root}: {name} cannot be read as this log's part ({exc}); "
                                  "nothing was removed") from None
        covers[name] = _cover(leaves, int(e["leaves"][0]))
    return covers


def _cover(leaves: np.ndarray, first: int) -> list[list]:
    """The perfect aligned subtrees over log positions ``[first, first + len(leaves))``,
    ``[height, root hex]`` in order: at each position p the largest h with
    ``p % 2**h == 0`` that still fits.

    Example:
        >>> from axon_audit.compliance.retention import _cover
        >>> from axon_audit.integrity.merkle import leaf_hash
        >>> import numpy as np
        >>> leaves = np.frombuffer(b"".join(leaf_hash(bytes([i])) for i in range(7)), np.uint8).reshape(-1, 32)
        >>> [h for h, _ in _cover(leaves, 3)]
        [0, 2, 1]
    """
    out: list[list] = []
    p, end = first, first + len(leaves)
    while p < end:
        h = min((p & -p).bit_length() - 1 if p else 63, (end - p).bit_length() - 1)
        out.append([h, merkle_root(leaves[p - first : p - first + (1 << h)]).hex()])
        p += 1 << h
    return out


def _commit(root: Path, result: RetentionResult, plans: list[DocumentPlan],
            record: Callable[[], object] | None) -> None:
    """Rewrite the straddling JSON copies (atomically), then `record` the entry (a sealed
    folder) and delete. Should the rewrites or the record fail, the copies are put back."""
    done: list[DocumentPlan] = []
    try:
        for p in plans:
            if p.new is not None:
                atomic_write(p.path, lambda fh, data=p.new: fh.write(data))  # type: ignore[misc]
                done.append(p)
        if record is not None:
            record()
    except BaseException:
        # A record that raised in its last step may have landed: then the copies stay as it says.
        landed = record is not None and _landed(root, done)
        for p in [] if landed else done:
            atomic_write(p.path, lambda fh, data=p.data: fh.write(data))  # type: ignore[misc]
        raise
    for p in plans:
        if p.new is None:
            p.path.unlink()
    for part in _local(result.partitions):
        shutil.rmtree(part)


def _local(paths: list[Path | Location]) -> list[Path]:
    """The local folders of `paths` (all of them: a lake's go through `compliance.lake_retention`)."""
    return [p for p in paths if isinstance(p, Path)]


def _landed(root: Path, done: list[DocumentPlan]) -> bool:
    try:
        entries = _integrity.load_manifest(root).get("entries", [])
    except Exception:  # noqa: BLE001 - unreadable: not landed
        return False
    last: dict[str, Any] = next((e for e in reversed(entries) if e.get("kind") == "retention"), {})
    return bool(done) and all(p.name in last.get("replaced", {}) for p in done)
