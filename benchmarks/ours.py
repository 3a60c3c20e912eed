"""axon_audit behind the benchmark interface: only its public API, plus its own
account of the Arrow buffers it holds (`memory_bytes`) and a real rotation
(`rotation`)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from axon_audit import AuditLogger
from axon_audit.io.parquet import write_parquet_partitions
from axon_audit.store.hot import wait_sealed

from .baselines import Backend
from .footprint import arrow_buffer_bytes, rotation_run

# Large enough that no benchmark run rotates: rotation is measured on its own.
NO_ROTATION = 1 << 40


class Ours(Backend):
    name = "axon_audit"
    label = "axon_audit"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.audit = AuditLogger(max_events=NO_ROTATION)

    def prepare(self, df: pl.DataFrame) -> pa.Table:
        return df.to_arrow()  # the budget row is "from Arrow"

    def ingest(self, data: pa.Table) -> None:
        self.audit.log_batch(data)

    def log(self, call: dict[str, Any]) -> None:
        self.audit.log(**call)

    async def log_event(self, call: dict[str, Any]) -> None:
        await self.audit.log_event(**call)

    def query(self, user_id: str, operation: str, start: datetime, limit: int | None = None) -> list:
        return self.audit.query_events(user_id=user_id, operation=operation, start_time=start, limit=limit)

    def query_user(self, user_id: str, limit: int) -> list:
        return self.audit.query_events(user_id=user_id, limit=limit)

    def lookup(self, entry_id: str) -> list:
        return self.audit.query_events(entry_ids=[entry_id])

    def statistics(self) -> dict[str, Any]:
        return self.audit.get_statistics()

    def user_statistics(self, user_id: str) -> dict[str, Any]:
        return self.audit.get_user_statistics(user_id)

    def export_json(self, path: Path) -> int:
        return self.audit.export_to_file(path)

    def write_parquet(self, folder: Path) -> int | None:
        # The rotation's Parquet writer on everything in memory (rotation itself also
        # writes the JSON export, measured by export_json).
        self.audit.flush()
        frame = pl.concat([c.df for c in self.audit._hot.store.chunks], rechunk=False)  # as rotation does
        write_parquet_partitions(frame, folder)
        return frame.height

    def memory_bytes(self) -> int | None:
        self.audit.flush()
        wait_sealed()  # the store as it stands once the background sealer compacted the full chunks
        return arrow_buffer_bytes(c.df for c in self.audit._hot.store.chunks)

    def memory_estimate_bytes(self) -> int | None:
        self.audit.flush()
        return int(sum(c.df.estimated_size() for c in self.audit._hot.store.chunks))

    def rotation(self, data: pa.Table, folder: Path) -> tuple[float, int, int] | None:
        # polars pieces, as the demo logs them (rotation_run times from the logger's creation on)
        return rotation_run(pl.from_arrow(data), folder)

    def close(self) -> None:
        self.audit = AuditLogger(max_events=NO_ROTATION)
