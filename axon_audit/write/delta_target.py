"""`DeltaTarget`: exports committed to a Delta table (``lake_format="delta"``).

Each rotation is one Delta commit: delta-rs writes one Parquet file per UTC day
under ``date=YYYY-MM-DD/`` and then publishes one ``_delta_log`` entry naming
them all, so a reader sees the whole rotation or none of it. The commit carries
the export log's tree head (`io.delta.TREE_KEY`) computed from the head of the
version it follows; so that head is exact, delta-rs never rebases a commit
(``max_commit_retries=0``): on a conflict (another writer took that version)
this target reads the new head and commits again, up to `MAX_TRIES` times.

Exactly once: each export carries a Delta ``txn`` action (``appId`` = this
target's writer id, ``version`` = the export's number). Before each try the
table is asked whether that transaction is already in, so a commit whose reply
was lost is never written twice. A try that fails leaves at most unreferenced
Parquet files (no reader sees them; ``VACUUM`` removes them); the events stay
pending in the logger and are retried like any failed export.
"""

from __future__ import annotations

import contextlib
import random
import secrets
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pyarrow as pa

from axon_audit.exceptions import ExportError
from axon_audit.integrity.checkpoint import Checkpoint, SigningKey, sign_checkpoint
from axon_audit.integrity.leaf import leaf_hashes
from axon_audit.integrity.merkle import CompactRange
from axon_audit.io.delta import TREE_KEY, commit_info, delta_options, deltalake, table_uri, tree_head_of
from axon_audit.io.location import Location, StorageOptions
from axon_audit.model.schema import to_arrow

__all__ = ["MAX_TRIES", "DeltaTarget", "delta_table_arrow"]

MAX_TRIES = 64  # commit conflicts tolerated per export try (each one means another writer progressed)


def delta_table_arrow(df: pl.DataFrame) -> pa.Table:
    """The Arrow table delta-rs writes for `df`: the canonical columns with plain
    strings (Delta has no dictionary type) and the ``date`` partition column.

    Example:
        >>> from axon_audit.model.schema import normalize_batch
        >>> from axon_audit.write.delta_target import delta_table_arrow
        >>> t = delta_table_arrow(normalize_batch([{"operation": "store", "timestamp": "2025-01-15T10:00:00Z"}]))
        >>> t.column("date").to_pylist(), str(t.schema.field("operation").type)
        (['2025-01-15'], 'string')
    """
    table = to_arrow(df)
    fields = [pa.field(f.name, f.type.value_type, f.nullable) if pa.types.is_dictionary(f.type) else f
              for f in table.schema]
    table = table.cast(pa.schema(fields))
    days = df.select(pl.col("timestamp").dt.convert_time_zone("UTC").dt.date().cast(pl.String)).to_series()
    return table.append_column("date", days.to_arrow().cast(pa.string()))


def _head_before(root: Path | Location, version: int) -> CompactRange:
    """The tree after Delta version `version` (the newest axon_audit commit up to it)."""
    for v in range(version, -1, -1):
        head = tree_head_of(commit_info(root, v))
        if head is not None:
            return CompactRange(int(head["size"]), [bytes.fromhex(h) for h in head["range"]])
    return CompactRange()


class DeltaTarget:
    """A Delta table at an export root (local folder or ``s3://`` prefix), shared by
    any number of writers, threads or processes.

    Example:
        >>> import tempfile, pathlib
        >>> from axon_audit.model.schema import normalize_batch
        >>> from axon_audit.write.delta_target import DeltaTarget
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> version = DeltaTarget(root).append(normalize_batch([{"operation": "STORE"}]))
        >>> version, (root / "_delta_log").is_dir()
        (0, True)
    """

    def __init__(self, root: Path | Location, key: bytes | None = None, signing_key: SigningKey | None = None,
                 storage_options: StorageOptions | None = None) -> None:
        self.root = root
        self.key = key
        self.signing_key = signing_key
        self.uri = table_uri(root)
        self.options = delta_options(root, storage_options)
        self.writer = f"axon_audit-{secrets.token_hex(8)}"  # the txn appId of this target's commits
        self._numbers: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        self._next = 1
        self.conflicts = 0  # commits lost to another writer and redone (for tests and benchmarks)

    def _number(self, job: Any) -> int:
        """The export number of `job`: the same on every retry of it (exactly once)."""
        if job not in self._numbers:
            self._numbers[job] = self._next
            self._next += 1
        return self._numbers[job]

    def export(self, job: Any, df: pl.DataFrame, attempt: Any, record: Any) -> None:
        """Commit `df` as one Delta version; raises `ExportError` (an `OSError`: the
        events stay pending and are retried) when the table cannot be written."""
        self.commit(df, self._number(job))

    def append(self, df: pl.DataFrame) -> int:
        """Commit `df` (in its order) as one new version, outside any logger; returns the version."""
        number, self._next = self._next, self._next + 1
        return self.commit(df, number)

    def commit(self, df: pl.DataFrame, number: int) -> int:
        """Commit `df` as transaction `number` of this writer, once; returns its version."""
        dl = deltalake()
        table = delta_table_arrow(df)
        leaves = leaf_hashes(df)
        for _ in range(MAX_TRIES):
            dt = None  # also when the store cannot even be listed: then the error below is the storage's
            try:
                dt = dl.DeltaTable(self.uri, storage_options=self.options) if self._exists(dl) else None
                if dt is not None and (dt.transaction_version(self.writer) or 0) >= number:
                    return int(dt.version())  # a try whose reply was lost had committed it
                version = -1 if dt is None else int(dt.version())
                tree = _head_before(self.root, version) if version >= 0 else CompactRange()
                tree.extend(leaves)
                props = dl.CommitProperties(
                    custom_metadata={TREE_KEY: self._head(tree, version + 1)}, max_commit_retries=0,
                    app_transactions=[dl.transaction.Transaction(self.writer, number)])
                # The first commit creates the table and must be version 0: "append" onto a table
                # another writer created meanwhile would land later, under a head computed from none.
                dl.write_deltalake(dt if dt is not None else self.uri, table, partition_by=["date"],
                                   mode="append" if dt is not None else "error",
                                   storage_options=self.options, commit_properties=props)
                return version + 1
            except dl.exceptions.CommitFailedError:
                self.conflicts += 1  # another writer took that version: read its head, try the next
                time.sleep(random.uniform(0.0, 0.02))
            except (dl.exceptions.DeltaError, OSError) as exc:
                if dt is None and self._exists_now(dl):  # another writer created the table first: a race too
                    self.conflicts += 1
                    time.sleep(random.uniform(0.0, 0.02))
                    continue
                raise ExportError(f"Delta commit to {self.uri} failed: {type(exc).__name__}: {exc}") from exc
        raise ExportError(f"Delta commit to {self.uri} lost {MAX_TRIES} races in a row to other writers")

    def _exists(self, dl: Any) -> bool:
        return bool(dl.DeltaTable.is_deltatable(self.uri, storage_options=self.options))

    def _exists_now(self, dl: Any) -> bool:
        """`_exists`, False when the store cannot tell (the failure at hand is then reported)."""
        try:
            return self._exists(dl)
        except (dl.exceptions.DeltaError, OSError):
            return False

    def _head(self, tree: CompactRange, version: int) -> str:
        head: dict[str, Any] = {"size": tree.size, "root": tree.root().hex(), "range": [h.hex() for h in tree.hashes]}
        if self.signing_key is not None:
            cp = Checkpoint(self.signing_key.name, tree.size, tree.root(), (f"axon_audit.delta {version}",))
            head["checkpoint"] = sign_checkpoint(cp, self.signing_key).decode("utf-8")
        return orjson.dumps(head).decode("utf-8")

    @contextlib.contextmanager
    def recovering(self) -> Iterator[None]:
        yield  # nothing to undo: a Delta commit is one put; files of a lost try are unreferenced

    def committed_files(self, record: dict[str, Any]) -> set[str]:
        return set()

    def remove(self, name: str) -> None:
        return None  # never: Delta data files leave the table by a commit (VACUUM), not by a writer
