"""Erasure and retention on an object-store lake (``s3://``), recorded in its global log.

On a lake every writer commits to its own manifest, written only by that
writer's export thread (`integrity.manifest.WriterManifest`), and no lock spans
the writers. Maintenance therefore never touches a writer manifest: it rewrites
(erasure) or deletes (retention) the objects, then appends ONE ``maintenance``
entry to the lake's global log (`integrity.global_log`: a conditional PUT takes
the next number, so it lands between the writers' commits without a lock).
Its ``records`` hold, per writer manifest, the very entry a sealed local folder
appends to its manifest (`compliance.erasure`, `compliance.retention`); `verify`,
`prove` and `tail` read them as that manifest's own (`integrity.replay` has the
form). The entry is HMAC'd with the lake's key and, where the lake signs its
tree heads, signed (Ed25519) with its signing key.

Maintenance covers the objects committed when it runs; a live writer's later
exports are its own (erase a logger's memory by passing the logger too). If the
global entry cannot be appended, every rewritten object is put back. On a
versioned bucket the old versions of rewritten or deleted objects remain: erasure
on such a bucket also needs a lifecycle rule that expires noncurrent versions.
"""

from __future__ import annotations

from typing import Any

import orjson
import polars as pl
import pyarrow.parquet as pq

from axon_audit.compliance.erasure_files import Rewrite, file_writer, plan_file
from axon_audit.compliance.erasure_rewrite import SubjectRewrite as _Rewriter
from axon_audit.exceptions import AuditValueError
from axon_audit.integrity import manifest as _integrity
from axon_audit.integrity.checkpoint import SigningKey
from axon_audit.integrity.global_log import GlobalLog, maintenance_records
from axon_audit.integrity.replay import overrides_of
from axon_audit.io.layout import ExportLayout
from axon_audit.io.location import Location, StorageOptions, resolve
from axon_audit.model.timestamps import format_us, now_us
from axon_audit.write.targets import ObjectStoreTarget, append_export

__all__ = ["LakeDocs", "LakeErasure", "lake_of", "lake_subject_events", "record_in_lake"]


def lake_of(item: Any, storage_options: StorageOptions | None = None) -> Location | None:
    """The object-store lake `item` names (an ``s3://`` URI, an archive of one, or a
    logger exporting to one), else None (a local folder, or no folder at all).

    Example:
        >>> from axon_audit.compliance.lake_maintenance import lake_of
        >>> lake_of("s3://audit-lake/prod").uri, lake_of("/srv/audit"), lake_of("file:///srv/audit")
        ('s3://audit-lake/prod', None, None)
    """
    if isinstance(item, Location):
        return None if item.is_local else item
    if isinstance(item, str):
        if "://" not in item or item.lower().startswith("file://"):
            return None
        return resolve(item, storage_options=storage_options, argument="source")
    if callable(getattr(item, "_rewrite_memory", None)):  # a logger: its export root
        root = getattr(item, "auto_export_path", None)
        return lake_of(root, getattr(item, "_storage_options", None)) if isinstance(root, str) else None
    # An archive: its folder's Location (the public `path` is the URI, without the storage options).
    path = getattr(getattr(item, "_folder", None), "path", None)
    return lake_of(path) if isinstance(path, Location) else None


class LakeDocs:
    """The writer manifests of a lake and the maintenance records the global log
    holds for each, read once: what every maintenance step plans from."""

    def __init__(self, root: Location) -> None:
        self.root = root
        self.layout: ExportLayout[Location] = ExportLayout(root)
        self.docs: dict[str, dict[str, Any]] = {}
        for name in self.layout.manifest_names():
            raw = (root / name).read_if_exists()
            if raw is None:  # replaced by its writer's next segment meanwhile
                continue
            try:
                doc = orjson.loads(raw)
                assert isinstance(doc, dict) and isinstance(doc.get("entries", []), list)
            except Exception as exc:  # noqa: BLE001 - refuse rather than plan from a broken lake
                raise AuditValueError(f"{root}: {name} does not parse ({exc}); run verify; nothing was changed") \
                    from None
            self.docs[name] = doc
        self.extra = maintenance_records(root, fresh=True)

    def entries(self, name: str) -> list[dict[str, Any]]:
        """`name`'s entries followed by the lake's maintenance records for it."""
        return [*self.docs[name].get("entries", []), *self.extra.get(name, [])]

    def check_keys(self, key: bytes | None, signer: SigningKey | None, task: str) -> None:
        """Refuse maintenance that `verify` could not pass: a keyed lake needs the
        key, a lake that signs its heads needs the signing key."""
        if key is None and any("hmac" in d for d in self.docs.values()):
            raise AuditValueError(f"hmac_key: {self.root} has keyed manifests; {task} must sign its global log "
                                  "entry with that key, give it")
        if signer is None and any(_integrity.signs_its_heads(d) for d in self.docs.values()):
            raise AuditValueError(f"signing_key: {self.root} signs its tree heads; {task} must be signed, give the key")

    def commit(self, action: str, records: dict[str, dict[str, Any]], key: bytes | None,
               signer: SigningKey | None) -> dict[str, Any]:
        """Append the maintenance entry holding `records` to the lake's global log."""
        at = format_us(now_us())
        return GlobalLog(self.root, key).maintain(action, {m: {**r, "written_at": at} for m, r in records.items()},
                                                  signer)


def lake_subject_events(root: Location, user_id: str) -> pl.DataFrame:
    """The subject's (event_id, session_id) pairs in a lake's Parquet parts (each
    part read for two columns: the lake's JSON documents hold the same events)."""
    frames = [pl.DataFrame(schema={"event_id": pl.String, "session_id": pl.String})]
    for part in ExportLayout(root).parts(strict=True):
        table = pq.read_table(part.path.path, filesystem=part.path.fs,
                              columns=["event_id", "user_id", "session_id"])
        df = pl.from_arrow(table)
        assert isinstance(df, pl.DataFrame)
        frames.append(df.filter(pl.col("user_id").cast(pl.String) == user_id)
                      .select(pl.col("event_id").cast(pl.String), pl.col("session_id").cast(pl.String)))
    return pl.concat(frames)


def record_in_lake(root: Location, df: pl.DataFrame, key: bytes | None, signer: SigningKey | None) -> None:
    """Write `df` as one export of a writer of its own into the lake (its manifest,
    its global entry): how maintenance without a logger records itself as an event."""
    append_export(ObjectStoreTarget(root, key, signer), df)


class LakeErasure:
    """Erasure in a lake, append-only: the objects holding the subject are rewritten
    in place (one whole-object PUT each), then one ``maintenance`` entry records,
    per writer manifest, the erasure entry a sealed folder would have appended
    (`compliance.erasure._SealedErasure`): new ``sha256``/``bytes``/``rows``, the
    altered events' original leaf hashes. Refused, changing nothing, for an object
    holding the subject that differs from its SHA-256."""

    def __init__(self, root: Location, fn: _Rewriter, key: bytes | None, signer: SigningKey | None) -> None:
        self.root, self.fn, self.key, self.signer = root, fn, key, signer
        self._seen: dict[tuple[str, str], Rewrite | None] = {}

    def _plan(self, lake: LakeDocs) -> list[tuple[str, Rewrite]]:
        plan = []
        for name in lake.docs:
            entries = lake.entries(name)
            ov = overrides_of(entries)
            for e in entries:
                if e.get("kind") not in ("json", "parquet") or e.get("file") in ov.removed:
                    continue
                seen = (e["file"], str(ov.replaced.get(e["file"], e).get("sha256")))
                if seen not in self._seen:
                    self._seen[seen] = plan_file(self.root, e, ov, self.fn)
                if (rewrite := self._seen[seen]) is not None:
                    plan.append((name, rewrite))
        return sorted(plan, key=lambda mr: mr[1].kind != "parquet")  # parts first

    def check(self, keys: bool = True) -> list[str]:
        """Plan the erasure before anything changes (raises if it cannot complete; with
        `keys`, also without the keys the lake needs); returns the objects it rewrites."""
        lake = LakeDocs(self.root)
        if keys:
            lake.check_keys(self.key, self.signer, "erasure")
        return [r.name for _, r in self._plan(lake)]

    def commit(self, summary: dict[str, Any]) -> list[Location]:
        """Rewrite the objects and append the maintenance entry; should that fail,
        the objects are put back. Returns the objects rewritten."""
        lake = LakeDocs(self.root)  # read again: writers may have committed since `check`
        plan = self._plan(lake)
        if not plan:
            return []
        records: dict[str, dict[str, Any]] = {}
        done: list[Rewrite] = []
        try:
            for name, r in plan:
                digest, size = (self.root / r.name).put(file_writer(r.kind, r.new, r.exported))
                done.append(r)
                rec = records.setdefault(name, {"kind": "erasure", "file": None, **summary, "replaced": {},
                                                "leaves": {}, "deleted": []})
                rec["replaced"][r.name] = {"sha256": digest, "bytes": size, "rows": r.new.height}
            for name, rec in records.items():
                mine = [r for m, r in plan if m == name]
                leaves = {p: leaf for r in reversed(mine) for p, leaf in r.altered.items()}  # a part's leaf wins
                rec["leaves"] = {str(p): leaves[p].hex() for p in sorted(leaves)}
            lake.commit("erasure", records, self.key, self.signer)
        except BaseException:
            for r in done:  # the lake as it was: the entry did not land (a lost reply that did is not an error)
                data = r.data
                (self.root / r.name).put(lambda fh, data=data: fh.write(data))  # type: ignore[misc]
            raise
        return [self.root / r.name for _, r in plan]
