"""Replaying an export log from its files: the leaf hashes of each listed
Parquet part in log order, checked against every tree head (`LogReplay`, the
core of `verify`), and the leaves `prove` proves from (`file_leaves`).

Two kinds of later manifest entry change what a file holds, and say so:

* ``erasure`` (`compliance.erasure`): a file rewritten for a data subject. Its
  ``replaced`` maps each rewritten file to its new ``sha256``/``bytes``/``rows``;
  ``leaves`` maps the log position of every event it altered or removed to the
  event's original leaf hash (hex), and ``deleted`` lists the positions whose
  events left their file. The tree, and every checkpoint and proof handed out
  before, stay valid; the altered events are covered by their file's SHA-256.
* ``retention`` (`compliance.retention`): files deleted; ``covers`` maps each
  deleted Parquet part to the perfect subtrees over its log range,
  ``[[height, hash hex], ...]`` in order, so the tree still replays without it;
  ``replaced`` and ``deleted`` as an erasure's, for the JSON copies rewritten
  without their expired events (whose positions lie in the deleted parts).
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from axon_audit.exceptions import IntegrityError
from axon_audit.integrity.checkpoint import Checkpoint, VerifierKey, open_checkpoint
from axon_audit.integrity.leaf import canonical_event, event_leaf_hash, leaf_hashes
from axon_audit.integrity.log import TREE_KIND, is_tree_head, manifest_extension, writer_log
from axon_audit.integrity.manifest import sha256_file
from axon_audit.integrity.merkle import CompactRange
from axon_audit.integrity.result import VerifyResult
from axon_audit.io.location import UPLOAD_WORKERS, Location
from axon_audit.model.schema import from_arrow

__all__ = ["LogReplay", "Overrides", "fetch", "file_leaves", "log_name", "origin_of", "overrides_of", "read_part"]

_T = TypeVar("_T")
_R = TypeVar("_R")

#: Called as events are checked: (events checked so far, events the manifests list).
Progress = Callable[[int, int], None]


@dataclass
class Overrides:
    """What the erasure and retention entries of one manifest say about its files."""

    replaced: dict[str, dict[str, Any]] = field(default_factory=dict)
    redacted: dict[int, bytes] = field(default_factory=dict)
    deleted: set[int] = field(default_factory=set)
    covers: dict[str, list[tuple[int, bytes]]] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)


def overrides_of(entries: list[dict[str, Any]]) -> Overrides:
    """Collect the erasure and retention entries of a manifest (later ones win)."""
    ov = Overrides()
    for e in entries:
        kind = e.get("kind")
        if kind == "erasure" and "leaves" in e:  # the log's erasure (the old chain re-listed files instead)
            for name, current in e.get("replaced", {}).items():
                ov.replaced[name] = current
            ov.redacted.update({int(p): bytes.fromhex(h) for p, h in e.get("leaves", {}).items()})
            ov.deleted.update(int(p) for p in e.get("deleted", []))
        elif kind == "retention":
            ov.removed.update(e.get("removed", []))
            ov.replaced.update(e.get("replaced", {}))  # JSON copies rewritten without their expired events
            ov.deleted.update(int(p) for p in e.get("deleted", []))
            for name, cover in e.get("covers", {}).items():
                ov.covers[name] = [(int(h), bytes.fromhex(x)) for h, x in cover]
    return ov


def read_part(data: bytes) -> pl.DataFrame:
    """The events of a Parquet part's bytes, in file order (an old part's chain column dropped)."""
    table = pq.read_table(pa.BufferReader(data))
    if "chain" in table.column_names:
        table = table.drop_columns(["chain"])
    return from_arrow(table)


def file_leaves(df: pl.DataFrame, entry: dict[str, Any], ov: Overrides) -> np.ndarray:
    """The leaf hashes of a file entry's log range ``[first, end)``: computed from
    its current rows `df`, with the original leaves of erased events put back.
    Raises ValueError when the rows cannot fill the range."""
    first, end = (int(x) for x in entry["leaves"])
    present = np.arange(first, end, dtype=np.int64)
    gone = [p for p in ov.deleted if first <= p < end]
    if gone:
        present = present[~np.isin(present, np.asarray(gone, np.int64))]
    if len(present) != df.height:
        raise ValueError(f"{df.height} events, its log range holds {len(present)}")
    out = np.empty((end - first, 32), np.uint8)
    out[present - first] = leaf_hashes(df)
    for p, leaf in ov.redacted.items():
        if first <= p < end:
            out[p - first] = np.frombuffer(leaf, np.uint8)
    return out


def _get(root: Location, name: str) -> bytes | None:
    return (root / name).read_if_exists()


def _in_order(fn: Callable[[_T], _R], items: list[_T], ahead: int, name: str) -> Iterator[_R]:
    """`fn` of each item, in order, with up to `ahead` of them running at once in
    worker threads (`name`): the next ones are fetched or hashed while the caller
    works on this one, and memory holds at most `ahead` results."""
    if len(items) <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(max_workers=ahead, thread_name_prefix=name) as pool:
        running = deque(pool.submit(fn, item) for item in items[:ahead])
        for following in [*items[ahead:], *([_END] * len(running))]:
            done = running.popleft().result()
            if following is not _END:
                running.append(pool.submit(fn, following))  # type: ignore[arg-type]
            yield done


_END = object()  # pads `_in_order`'s queue: no more items to start


def fetch(root: Location, names: list[str]) -> Iterator[tuple[str, bytes | None]]:
    """Each named file's bytes (None: missing), in order, one read ahead locally
    (the disk works while this thread hashes) and a few ahead on object storage
    (latency-bound)."""
    ahead = 1 if root.is_local else UPLOAD_WORKERS
    return zip(names, _in_order(lambda n: _get(root, n), names, ahead, "axon-audit-verify"), strict=True)


def _sha256_of(root: Location, name: str) -> tuple[str, int] | None:
    """(SHA-256 hex, size) of a file, None when it is missing: a local file is read
    in 1 MiB blocks (a JSON document is ~330 bytes per event), an object whole."""
    if root.is_local:
        path = (root / name).local_path()
        return sha256_file(path) if path.is_file() else None
    data = _get(root, name)
    return None if data is None else (hashlib.sha256(data).hexdigest(), len(data))


def _json_leaves(data: bytes) -> tuple[list[str], list[bytes | None]]:
    """Each event line's id and leaf hash (None: the line does not parse) of a
    JSON document: the slow path, run only for a document whose SHA-256 failed."""
    lines = data.split(b"\n")[1:]
    if len(lines) >= 2 and lines[-1] == b"" and lines[-2].startswith(b"]"):
        lines = lines[:-2]  # the trailer; a truncated document has none, and its cut line does not parse
    ids: list[str] = []
    leaves: list[bytes | None] = []
    for i, line in enumerate(lines):
        try:
            obj = orjson.loads(line[:-1] if line.endswith(b",") else line)
            obj = {k: obj[k] for k in obj if k != "chain"}
            obj["metadata"] = orjson.loads(obj["metadata"]) if isinstance(obj["metadata"], str) else obj["metadata"]
            ids.append(f"{obj.get('event_id')} (event #{i})")
            canonical_event(obj)
            leaves.append(event_leaf_hash(obj))
        except Exception:  # noqa: BLE001 - a damaged line is the finding
            ids.append(f"#{i} (unparseable)")
            leaves.append(None)
    return ids, leaves


class LogReplay:
    """The replay of one manifest's log (see the module docstring)."""

    def __init__(self, root: Location, mname: str, result: VerifyResult, verifier: VerifierKey | None,
                 kept: Checkpoint | None, progress: Progress | None, total: int) -> None:
        self.root, self.mname, self.result = root, mname, result
        self.verifier, self.progress, self.total = verifier, progress, total
        self.kept = kept  # set to None by `run` when it is another log's checkpoint
        self.problems = result.problems
        self.kept_seen = False
        self.size = 0  # the log's size after `run`
        self.tree = CompactRange()  # and its state

    def run(self, entries: list[dict[str, Any]], base: int, tree: CompactRange, ov: Overrides,
            pool: ThreadPoolExecutor) -> None:
        """Replay `entries` (numbered from `base`) onto `tree`, the log before them.
        Whether a kept checkpoint was met is left in `kept_seen` (a writer's log may
        span several manifests: `verify` decides once it has replayed them all)."""
        if self.kept is not None and log_name(self.kept, self.mname, entries) != self.kept.origin:
            self.kept = None
        before = tree.size  # a later segment goes on from the log its predecessor left
        docs: list[tuple[dict[str, Any], Future[tuple[str, int] | None]]] = []
        parts: list[_Part] = []  # this commit's parts
        listed = [e for e in entries if e.get("kind") == "parquet" and "leaves" in e and e["file"] not in ov.removed]
        loaded = _loaded_parts(self.root, listed, ov)
        for i, e in enumerate(entries, start=base):
            kind, name = e.get("kind"), e.get("file", f"entry #{i}")
            if kind == "json" and "leaves" in e:
                if name not in ov.removed:
                    docs.append((e, pool.submit(_sha256_of, self.root, name)))
            elif kind == "parquet" and "leaves" in e:
                if int(e["leaves"][0]) != tree.size:
                    self.problems.append(f"{name}: its events start at log position {e['leaves'][0]}, "
                                         f"the log before it holds {tree.size} (a commit is missing or reordered)")
                if name in ov.removed:
                    self._retired(e, tree, ov)
                    continue
                part = self._part(next(loaded))
                parts.append(part)
                self._extend(tree, part.leaves)
            elif kind == TREE_KIND:
                self._tree(i, e, tree)
                self._check_commit(docs, parts, ov)
                docs, parts = [], []
        if docs or parts:  # every commit ends with its tree head; these files have none
            self.problems.append(f"{self.mname}: its last {len(docs) + len(parts)} file entries have no tree head "
                                 "after them (a commit's tree head was removed: manifest truncated or edited)")
            self._check_commit(docs, parts, ov)
        if self.verifier is not None and entries and entries[-1].get("kind") != TREE_KIND:
            self.problems.append(f"{self.mname}: its last {_unsigned_tail(entries)} entries follow the newest "
                                 "signed checkpoint, so no signature covers them (appended without the key)")
        kept = self.kept
        if kept is not None and not self.kept_seen and (kept.size == 0 or (kept.size == tree.size and not parts)):
            self._check_kept(tree)
        self.size, self.tree = tree.size, tree
        self.result.tree_size += tree.size - before  # each log counted once, over all its segments

    def _part(self, part: _Part) -> _Part:
        """Record what loading a part found (in log order)."""
        name = part.entry["file"]
        if part.missing:
            self.problems.append(f"{name}: missing (deleted or renamed)")
            return part
        self.result.files_checked += 1
        if not part.intact:
            self.problems.append(f"{name}: content differs from the manifest's SHA-256 (modified or replaced)")
        if part.error is not None:
            self.problems.append(f"{name}: cannot be read as this log's Parquet part ({part.error})")
            return part
        self.result.events_checked += part.rows
        if self.progress is not None:
            self.progress(self.result.events_checked, self.total)
        return part

    def _retired(self, e: dict[str, Any], tree: CompactRange, ov: Overrides) -> None:
        cover = ov.covers.get(e["file"])
        first, end = (int(x) for x in e["leaves"])
        if cover is None:
            self.problems.append(f"{e['file']}: deleted by retention without its log cover; the log cannot be replayed")
            return
        try:
            for height, node in cover:
                tree.push_subtree(node, height)
        except ValueError as exc:
            self.problems.append(f"{e['file']}: its retention cover does not fit the log ({exc})")
        if tree.size != end:
            self.problems.append(f"{e['file']}: its retention cover spans {tree.size - first} events, "
                                 f"its log range {end - first}")

    def _extend(self, tree: CompactRange, leaves: np.ndarray) -> None:
        kept = self.kept
        if kept is not None and tree.size < kept.size <= tree.size + len(leaves):
            cut = kept.size - tree.size
            tree.extend(leaves[:cut])
            self._check_kept(tree)
            leaves = leaves[cut:]
        tree.extend(leaves)

    def _check_kept(self, tree: CompactRange) -> None:
        assert self.kept is not None
        self.kept_seen = True
        if tree.root() != self.kept.root:
            self.problems.append(f"{self.mname}: the log's first {self.kept.size} events do not give the root of "
                                 "the checkpoint kept (events were altered, removed or reordered since)")

    def _tree(self, i: int, e: dict[str, Any], tree: CompactRange) -> None:
        root_hex = tree.root().hex()
        if e.get("size") != tree.size or e.get("root") != root_hex:
            self.problems.append(f"{self.mname}: tree head #{i} (size {e.get('size')}) does not match the events "
                                 f"of its files (replayed: size {tree.size}, root {root_hex[:16]}…): "
                                 "an event was altered, removed, added or reordered")
        if [h.hex() for h in tree.hashes] != e.get("range") and e.get("size") == tree.size:
            self.problems.append(f"{self.mname}: tree head #{i} stores a compact range that is not the log's")
        note = e.get("checkpoint")
        if self.verifier is None:  # unchecked notes are not handed out as checkpoints to keep
            return
        if not note:
            self.problems.append(f"{self.mname}: tree head #{i} has no signed checkpoint, but a public key was given")
            return
        try:
            cp = open_checkpoint(note.encode(), [self.verifier])
        except IntegrityError as exc:
            self.problems.append(f"{self.mname}: tree head #{i}: checkpoint rejected ({exc})")
            return
        self.result.signatures_checked += 1
        self.result.checkpoints[cp.origin] = note
        if (cp.size, cp.root.hex()) != (e.get("size"), e.get("root")) \
                or cp.extensions != (manifest_extension(i, e.get("prev", "")),):
            self.problems.append(f"{self.mname}: tree head #{i}: its checkpoint signs another head "
                                 "(entry or checkpoint replaced)")

    def _check_commit(self, docs: list[tuple[dict[str, Any], Future[tuple[str, int] | None]]],
                      parts: list[_Part], ov: Overrides) -> None:
        """A commit's JSON documents by SHA-256; a copy that fails is compared, event
        by event, with the other copy of the same events to name the first altered one."""
        for e, done in docs:
            name, digest = e["file"], done.result()
            if digest is None:
                self.problems.append(f"{name}: missing (deleted or renamed)")
                continue
            self.result.files_checked += 1
            want = ov.replaced.get(name, e)
            intact = digest == (want.get("sha256"), want.get("bytes"))
            if intact and all(p.intact for p in parts):
                continue
            data = _get(self.root, name) or b""
            ids, found = _json_leaves(data) if data.startswith(b'{"events": [') else ([], [])
            first = int(e["leaves"][0])
            if not intact:
                self.problems.append(f"{name}: content differs from the manifest's SHA-256 (modified or replaced)"
                                     + self._json_finding(ids, found, first, int(e["leaves"][1]), parts))
            else:  # the JSON copy is intact: it names what changed in a damaged part
                for p in parts:
                    if not p.intact and p.ids is not None:
                        self._name_in_part(p, found[p.first - first:], ov)

    def _json_finding(self, ids: list[str], found: list[bytes | None], first: int, end: int,
                      parts: list[_Part]) -> str:
        if not ids:
            return "; not an axon_audit JSON export (layout altered)"
        reference = {p.first + k: p.leaves[k].tobytes() for p in parts if p.intact for k in range(len(p.leaves))}
        for k, (eid, leaf) in enumerate(zip(ids, found, strict=True)):
            if first + k >= end or (first + k in reference and leaf != reference[first + k]):
                return f"; first altered event: {eid}"
        if len(ids) != end - first:
            return f"; {len(ids)} events, the log range holds {end - first} (events removed)"
        if any(p not in reference for p in range(first, end)):  # nothing intact to tell its events by
            return "; the Parquet copy of its events is damaged too, so the altered event cannot be named"
        return "; its events are intact (the document's other text was altered)"

    def _name_in_part(self, part: _Part, found: list[bytes | None], ov: Overrides) -> None:
        assert part.ids is not None
        for k in range(len(part.leaves)):
            if part.first + k in ov.deleted:
                return  # rows and positions no longer pair up past an erased event
            if k >= len(found) or found[k] != part.leaves[k].tobytes():
                row = k if k < len(part.ids) else len(part.ids) - 1
                self.problems.append(f"{part.entry['file']}: event {part.ids[row]} (row {row}) differs from "
                                     "the intact JSON copy: altered, removed, inserted or reordered there")
                return


@dataclass
class _Part:
    """One Parquet part as replayed: its leaves, and whether its bytes match the manifest."""

    entry: dict[str, Any]
    first: int
    leaves: np.ndarray
    ids: pl.Series | None = None
    intact: bool = False
    missing: bool = False
    rows: int = 0
    error: str | None = None


def _unsigned_tail(entries: list[dict[str, Any]]) -> int:
    n = 0
    for e in reversed(entries):
        if e.get("kind") == TREE_KIND:
            break
        n += 1
    return n


def _load_part(root: Location, e: dict[str, Any], ov: Overrides) -> _Part:
    """Fetch, hash and replay one part (in a worker thread: all of it but the
    bookkeeping runs in polars, Arrow and hashlib without the GIL)."""
    first, end = (int(x) for x in e["leaves"])
    # Unreadable: the log goes on with the size the manifest states; the roots will not match.
    part = _Part(e, first, np.zeros((end - first, 32), np.uint8))
    data = _get(root, e["file"])
    if data is None:
        part.missing = True
        return part
    part.intact = hashlib.sha256(data).hexdigest() == ov.replaced.get(e["file"], e).get("sha256")
    try:
        df = read_part(data)
        part.leaves = file_leaves(df, e, ov)
    except Exception as exc:  # noqa: BLE001 - any read failure is a finding
        part.error = str(exc)
        return part
    part.ids, part.rows = df["event_id"], df.height
    return part


def _loaded_parts(root: Location, parts: list[dict[str, Any]], ov: Overrides) -> Iterator[_Part]:
    """`_load_part` of each part, in order, two at a time (one per core), a few
    more ahead on object storage (latency-bound)."""
    ahead = 2 if root.is_local else max(2, UPLOAD_WORKERS)
    return _in_order(lambda e: _load_part(root, e, ov), parts, ahead, "axon-audit-replay")


def origin_of(entries: list[dict[str, Any]]) -> str | None:
    """The origin a manifest's checkpoints name (None: it has no signed checkpoint)."""
    for e in entries:
        if e.get("kind") == TREE_KIND and e.get("checkpoint"):
            try:
                return Checkpoint.parse(e["checkpoint"].split("\n\n")[0].encode() + b"\n").origin
            except IntegrityError:
                return None
    return None


def log_name(kept: Checkpoint, mname: str, entries: list[dict[str, Any]]) -> str | None:
    """The name a kept head gives the log of manifest `mname`: a signed checkpoint's origin,
    a tree head's manifest name (`integrity.log.writer_log`)."""
    return writer_log(mname) if is_tree_head(kept) else origin_of(entries)
