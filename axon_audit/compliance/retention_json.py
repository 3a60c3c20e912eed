"""Retention's JSON copies and manifest checks: which events of each JSON export
document expired, the exact bytes a straddling document is rewritten to, and
what a sealed folder's manifest says before anything changes.

A document whose events all expired is deleted; one holding expired and kept
events is rewritten (atomically, events in their order, its ``exported_at``
kept) with only the kept ones. The rewrite is rendered once, at planning, so a
dry run and the real run agree byte for byte. In a sealed folder a listed
document's new ``sha256``/``bytes``/``rows`` go into the retention entry's
``replaced`` and the log positions of its removed events into ``deleted``
(`integrity.replay` reads both), so `verify` still passes.
"""

from __future__ import annotations

import hashlib
import hmac
import io
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from axon_audit.compliance.erasure_files import load_plain as load_document
from axon_audit.exceptions import ArchiveError, AuditValueError
from axon_audit.integrity import chain_v1
from axon_audit.integrity import manifest as _integrity
from axon_audit.integrity.replay import Overrides
from axon_audit.io.json_export import write_json_stream
from axon_audit.io.layout import ExportLayout
from axon_audit.io.location import Location
from axon_audit.model.timestamps import to_us

__all__ = ["DocumentPlan", "day_expired", "manifest_state", "plan_documents", "sealed_documents"]


@dataclass
class DocumentPlan:
    """One JSON export document that loses events: `new` is None when it goes whole."""

    path: Path
    name: str
    data: bytes  # its bytes now (put back if the retention entry cannot be appended)
    events: int
    expired: int
    new: bytes | None
    first: datetime | None  # the span of its expired events
    last: datetime | None

    @property
    def freed(self) -> int:
        return len(self.data) - (len(self.new) if self.new is not None else 0)


def day_expired(day: date, cutoff_us: int) -> bool:
    """Whether the UTC day `day` ended at or before the cutoff (microseconds since the
    epoch): retention's rule for a ``date=`` partition, which then goes whole.

    Example:
        >>> from datetime import date
        >>> from axon_audit.compliance.retention_json import day_expired
        >>> day_expired(date(1970, 1, 1), 86_400_000_000), day_expired(date(1970, 1, 2), 86_400_000_000)
        (True, False)
    """
    return ((day - date(1970, 1, 1)).days + 1) * 86_400_000_000 <= cutoff_us


def plan_documents(layout: ExportLayout, expired_before: datetime, cutoff_us: int) -> list[DocumentPlan]:
    """The JSON export documents of `layout` holding events stamped before
    `expired_before`; an empty rotation document goes when its name's export time is
    before the cutoff. Raises ArchiveError for a document that does not parse."""
    plans = []
    chained = []
    for doc in layout.json_documents():
        data = doc.path.read_bytes()
        try:
            df, exported = load_document(data, doc.path, "json")  # an old document's chain dropped
        except ArchiveError as exc:
            raise ArchiveError(f"{exc}; retention leaves the folder untouched") from None
        name = layout.name_of(doc.path)
        if df.height == 0:
            at = layout.rotation_time(doc.path.name)
            if at is not None and to_us(at) < cutoff_us:
                plans.append(DocumentPlan(doc.path, name, data, 0, 0, None, None, None))
            continue
        expired = df.filter(pl.col("timestamp") < expired_before)
        if expired.height == 0:
            continue
        new = None
        if expired.height < df.height and b'"chain":' in data:  # the chain cannot be kept without its start
            chained.append(name)
        elif expired.height < df.height:
            out = io.BytesIO()
            write_json_stream(out, df.filter(pl.col("timestamp") >= expired_before), exported_at_us=exported)
            new = out.getvalue()
        span = expired.select(pl.col("timestamp").min().alias("a"), pl.col("timestamp").max().alias("b")).row(0)
        plans.append(DocumentPlan(doc.path, name, data, df.height, expired.height, new, *span))
    if chained:
        raise ArchiveError(f"{layout.root}: these JSON exports keep expired events and are old hash-chained files "
                           "(each event carries its chain), which retention cannot rewrite verifiably: "
                           f"{', '.join(chained)}; nothing was removed")
    return plans


def sealed_documents(root: Path | Location, entries: list[dict[str, Any]], ov: Overrides, plans: list[DocumentPlan],
                     parts_gone: set[str]) -> list[int]:
    """Check the listed documents of `plans` against the manifest and return the log
    positions of the events the rewritten ones lose (`parts_gone`: the Parquet parts
    this retention deletes). Raises, changing nothing, for a listed document that
    differs from its SHA-256, is an old chained one, or whose expired events are not
    exactly those of deleted parts."""
    listed = {e["file"]: e for e in entries if e.get("kind") == "json" and e.get("file") not in ov.removed}
    gone = [e for e in entries if e.get("kind") == "parquet" and "leaves" in e
            and (e.get("file") in parts_gone or e.get("file") in ov.removed)]
    deleted: list[int] = []
    refused = []
    for p in plans:
        e = listed.get(p.name)
        if e is None:  # not sealed (written beside the manifest): nothing records it
            continue
        if chain_v1.is_v1_entry(e) or "leaves" not in e:
            refused.append(p.name)
            continue
        if hashlib.sha256(p.data).hexdigest() != ov.replaced.get(p.name, e).get("sha256"):
            raise AuditValueError(f"{root}: {p.name} differs from the manifest's SHA-256 (modified or replaced); "
                                  "retention would seal the altered file as genuine, so nothing was removed "
                                  "(run verify)")
        if p.new is None:
            continue
        first, end = (int(x) for x in e["leaves"])
        here = [x for g in gone for x in range(max(first, int(g["leaves"][0])), min(end, int(g["leaves"][1])))]
        if len(here) != p.expired:
            raise AuditValueError(f"{root}: {p.name} holds {p.expired} expired events, the deleted parts of its "
                                  f"log range {len(here)} (run verify); nothing was removed")
        deleted += here
    if refused:
        raise ArchiveError(f"{root}: these JSON exports keep expired events and are old hash-chained files "
                           f"(manifest format /1), which retention cannot rewrite verifiably: {', '.join(refused)}; "
                           "nothing was removed")
    return sorted(deleted)


def manifest_state(root: Path, manifest: dict[str, Any], key: bytes | None) -> str:
    """What a sealed folder's manifest says: its entries and the keys retention needs,
    or the problem found (its entries' links, its head, its HMAC when `key` is given)."""
    entries = manifest.get("entries")
    if not isinstance(entries, list):
        return f"manifest problem: {root} has a manifest without entries"
    count, prev = _integrity.head_of({"follows": manifest.get("follows"), "entries": []})
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or e.get("prev") != prev or e.get("hash") != _integrity.entry_hash(e):
            return f"manifest problem: entry #{count + i} does not link to the one before it (run verify)"
        prev = e["hash"]
    head = manifest.get("head", {})
    if head != {"entries": count + len(entries), "hash": prev}:
        return "manifest problem: its head does not match its entries (run verify)"
    if key is not None and "hmac" in manifest and not hmac.compare_digest(str(manifest["hmac"]), _integrity.head_hmac(
            key, count + len(entries), prev, str(manifest.get("format", _integrity.FORMAT)))):
        return "manifest problem: the HMAC of its head does not match the key given"
    needed = [k for k, on in (("hmac", "hmac" in manifest), ("signing", _integrity.signs_its_heads(manifest))) if on]
    return f"sealed: {len(entries)} entries, keys needed: {'/'.join(needed) or 'none'}"
