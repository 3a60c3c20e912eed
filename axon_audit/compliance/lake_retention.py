"""Retention on an object-store lake (``s3://``), recorded in its global log.

The same rule as `compliance.retention` (an event expires when its UTC day ended
before the cutoff: its ``date=`` partition goes whole, the JSON documents lose
it), the same checks (every deleted part's SHA-256 and log cover, every
rewritten document's), and the same entry per writer manifest, carried by one
``maintenance`` entry of the lake's global log (`compliance.lake_maintenance`
says why there). Order: the straddling JSON documents are rewritten, the entry
is appended, then the objects go; if the entry cannot be appended the documents
are put back and nothing is deleted. An object named by a writer's intent (an
export still uploading) is neither planned nor deleted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pyarrow.parquet as pq

from axon_audit.compliance.lake_maintenance import LakeDocs
from axon_audit.compliance.retention_json import DocumentPlan, day_expired, plan_documents, sealed_documents
from axon_audit.exceptions import AuditValueError
from axon_audit.integrity.checkpoint import SigningKey
from axon_audit.integrity.replay import overrides_of
from axon_audit.io.location import Location

__all__ = ["lake_retention"]

def lake_retention(root: Location, result: Any, cutoff_us: int, keep_days: float, dry_run: bool,
                   key: bytes | None, signer: SigningKey | None, covers_of: Callable[..., Any]) -> None:
    """Plan (and unless `dry_run`, carry out) retention on the lake at `root`,
    filling `result` (a `compliance.retention.RetentionResult`); `covers_of` is
    `compliance.retention`'s maker of deleted parts' log covers."""
    lake = LakeDocs(root)
    in_flight = {f for files in lake.layout.intents().values() for f in files}
    gone: list[str] = []
    for part, day in lake.layout.partitions():
        if not day_expired(day, cutoff_us):
            continue
        infos = [i for i in part.files() if root.relative(i.path) not in in_flight]
        result.partitions.append(part)
        for info in infos:
            name = root.relative(info.path)
            gone.append(name)
            result.bytes += info.size
            if name.endswith(lake.layout.PARQUET_SUFFIX):
                loc = root / name
                try:
                    rows = pq.read_metadata(loc.path, filesystem=loc.fs).num_rows
                except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError
                    raise AuditValueError(f"{root}: {name} is not a readable Parquet part ({exc}); run verify; "
                                          "nothing was removed") from None
                result.removed[str(loc)] = rows
                result.events += rows
    plans = [p for p in plan_documents(lake.layout, result.expired_before, cutoff_us) if p.name not in in_flight]
    for p in plans:
        (result.json_files if p.new is None else result.json_rewritten).append(p.path)
        result.removed[str(p.path)] = p.expired
        result.json_events += p.expired
        result.bytes += p.freed
    gone += [p.name for p in plans if p.new is None]
    if not lake.docs:
        result.manifest = "no integrity manifest found"
    if dry_run or not (gone or plans):
        if lake.docs:
            _records(lake, result, plans, set(gone), keep_days, covers_of)  # refuses as the real run would
            result.manifest = f"sealed lake: {len(lake.docs)} writer manifests"
        return
    if lake.docs:
        lake.check_keys(key, signer, "retention")
    records = _records(lake, result, plans, set(gone), keep_days, covers_of) if lake.docs else {}
    done: list[DocumentPlan] = []
    try:
        for p in plans:
            if p.new is not None:
                data = p.new
                (root / p.name).put(lambda fh, data=data: fh.write(data))  # type: ignore[misc]
                done.append(p)
        entry = lake.commit("retention", records, key, signer) if records else None
    except BaseException:
        for p in done:  # put back: the entry did not land, so the lake must read as before
            old = p.data
            (root / p.name).put(lambda fh, old=old: fh.write(old))  # type: ignore[misc]
        raise
    for name in gone:
        (root / name).unlink(missing_ok=True)
    result.manifest = (f"recorded in the lake's global log ({entry['seq']:012d})" if entry is not None
                       else "no integrity manifest lists these objects")


def _records(lake: LakeDocs, result: Any, plans: list[DocumentPlan], gone: set[str], keep_days: float,
             covers_of: Any) -> dict[str, dict[str, Any]]:
    """Per writer manifest listing any object that goes, its retention entry (the
    form of a sealed folder's, `compliance.retention`), every object checked
    first: raises, changing nothing, for one that cannot be removed verifiably."""
    out: dict[str, dict[str, Any]] = {}
    for name in lake.docs:
        entries = lake.entries(name)
        ov = overrides_of(entries)
        listed = {e.get("file") for e in entries if e.get("kind") in ("json", "parquet")} - ov.removed
        mine = [p for p in plans if p.name in listed]
        removed = sorted(g for g in gone if g in listed)
        if not removed and not mine:
            continue
        covers = covers_of(lake.root, entries, gone)
        deleted = sealed_documents(lake.root, entries, ov, mine, gone)
        replaced = {p.name: {"sha256": hashlib.sha256(p.new).hexdigest(), "bytes": len(p.new),
                             "rows": p.events - p.expired} for p in mine if p.new is not None}
        events = sum(int(e.get("rows", 0)) for e in entries if e.get("kind") == "parquet" and e.get("file") in gone
                     and e.get("file") not in ov.removed)
        out[name] = {"kind": "retention", "file": None, "cutoff": result.cutoff.isoformat(),
                     "keep_days": keep_days, "removed": removed, "events": events,
                     "json_events": sum(p.expired for p in mine), "covers": covers,
                     "replaced": replaced, "deleted": deleted}
    return out
