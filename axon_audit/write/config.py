"""The logger's settings, checked once: every bad argument named with what was expected.

Example:
    >>> from axon_audit.write.config import LoggerConfig
    >>> LoggerConfig.check(max_events=0)
    Traceback (most recent call last):
    ...
    axon_audit.exceptions.AuditValueError: max_events must be >= 1, got 0
    >>> LoggerConfig.check(auto_export_path="file:///srv/audit").export_root.as_posix()
    '/srv/audit'
    >>> LoggerConfig.check(100_000, "/srv/audit").max_backlog  # bounded by default with exports
    1000000
    >>> LoggerConfig.check(100_000, "/srv/audit", max_backlog=None).max_backlog is None  # asked for
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from axon_audit.exceptions import AuditTypeError, AuditValueError
from axon_audit.integrity.checkpoint import SigningKey
from axon_audit.integrity.log import signing_key_of
from axon_audit.integrity.manifest import _key_bytes
from axon_audit.io.delta import check_lake_format, deltalake
from axon_audit.io.location import Location, StorageOptions, resolve
from axon_audit.io.sealed import check_export_target
from axon_audit.read.archive import ExportFolder
from axon_audit.read.delta_source import DeltaFolder
from axon_audit.write import wal as _wal
from axon_audit.write.backpressure import BACKLOG_POLICIES, default_max_backlog
from axon_audit.write.targets import ExportTarget, target_for

__all__ = ["DEFAULT_FLUSH_SIZE", "LoggerConfig"]

DEFAULT_FLUSH_SIZE = 16_384


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class LoggerConfig:
    """`AuditLogger`'s arguments, validated (see `AuditLogger` for each one)."""

    max_events: int
    export_root: Path | Location | None
    rotation: bool
    flush_size: int
    wal_path: Path | None
    wal_sync: str
    wal_interval: float
    hmac_key: bytes | None
    signing_key: SigningKey | None
    max_backlog: int | None  # resolved: "default" became default_max_backlog(max_events) or None
    backlog_policy: str
    fail_closed: bool
    storage_options: StorageOptions | None
    lake_format: str = "parquet"  # or "delta" (io.delta)

    @classmethod
    def check(
        cls,
        max_events: Any = 10000,
        auto_export_path: Any = None,
        enable_rotation: Any = True,
        *,
        flush_size: Any = DEFAULT_FLUSH_SIZE,
        wal_path: Any = None,
        wal_sync: Any = "always",
        wal_interval: Any = _wal.DEFAULT_INTERVAL,
        hmac_key: Any = None,
        signing_key: Any = None,
        max_backlog: Any = "default",
        backlog_policy: Any = "block",
        fail_closed: Any = False,
        storage_options: Any = None,
        lake_format: Any = "parquet",
    ) -> LoggerConfig:
        if not _is_int(max_events):
            raise AuditTypeError(f"max_events must be an int, got {type(max_events).__name__}")
        if max_events < 1:
            raise AuditValueError(f"max_events must be >= 1, got {max_events}")
        if not _is_int(flush_size) or flush_size < 1:
            raise AuditValueError(f"flush_size must be an int >= 1, got {flush_size!r}")
        if wal_path is not None and not isinstance(wal_path, (str, Path)):
            raise AuditTypeError(f"wal_path must be a path or None, got {type(wal_path).__name__}")
        if wal_path is not None and auto_export_path is None:
            raise AuditValueError("wal_path needs auto_export_path: the log is truncated once its events are exported")
        if wal_sync not in _wal.SYNC_POLICIES:
            raise AuditValueError(f"wal_sync must be one of {_wal.SYNC_POLICIES}, got {wal_sync!r}")
        if isinstance(wal_interval, bool) or not isinstance(wal_interval, (int, float)) or not 0 <= wal_interval <= 10:
            raise AuditValueError(f"wal_interval must be a number of seconds in [0, 10], got {wal_interval!r}")
        root = export_root(auto_export_path, storage_options)
        if isinstance(root, Path):  # a folder nested in another's files would be an inserted file there
            check_export_target(resolve(root), argument="auto_export_path", force=True)
        if isinstance(max_backlog, str) and max_backlog == "default":
            # Without exports (or rotation) nothing ever waits for export: no bound to apply.
            max_backlog = default_max_backlog(max_events) if root is not None and enable_rotation else None
        elif max_backlog is not None and (not _is_int(max_backlog) or max_backlog < 1):
            raise AuditValueError(f'max_backlog must be an int >= 1, "default" or None, got {max_backlog!r}')
        if backlog_policy not in BACKLOG_POLICIES:
            raise AuditValueError(f"backlog_policy must be one of {BACKLOG_POLICIES}, got {backlog_policy!r}")
        if check_lake_format(lake_format) == "delta":
            if root is None:
                raise AuditValueError("lake_format='delta' needs auto_export_path: the folder or s3:// prefix "
                                      "of the Delta table")
            if wal_path is not None:
                raise AuditValueError("wal_path is not supported with lake_format='delta' yet; expected None")
            deltalake()  # an error naming the extra now, not at the first rotation
        if not isinstance(fail_closed, bool):
            raise AuditTypeError(f"fail_closed must be a bool, got {type(fail_closed).__name__}")
        return cls(
            max_events=max_events,
            export_root=root,
            rotation=bool(enable_rotation),
            flush_size=flush_size,
            wal_path=Path(wal_path) if wal_path is not None else None,
            wal_sync=wal_sync,
            wal_interval=float(wal_interval),
            hmac_key=_key_bytes(hmac_key),
            signing_key=signing_key_of(signing_key),
            max_backlog=max_backlog,
            backlog_policy=backlog_policy,
            fail_closed=fail_closed,
            storage_options=storage_options,
            lake_format=lake_format,
        )

    @property
    def guarded(self) -> bool:
        """Whether the slower, guarded append (WAL, fail-closed) runs. A backlog bound
        alone does not need it: the fast path tests `Backpressure.refusing` itself."""
        return self.wal_path is not None or self.fail_closed

    def export_target(self) -> ExportTarget:
        """Where the logger's exports go: `target_for` the root, in the lake format."""
        assert self.export_root is not None
        return target_for(self.export_root, self.hmac_key, self.signing_key, self.lake_format, self.storage_options)

    def export_folder(self) -> ExportFolder | DeltaFolder | None:
        """The export root as the logger's reads see it (None without exports)."""
        if self.export_root is None:
            return None
        if self.lake_format == "delta":
            return DeltaFolder(self.export_root, storage_options=self.storage_options)
        return ExportFolder(self.export_root, source="parquet")


def export_root(path: Any, storage_options: StorageOptions | None) -> Path | Location | None:
    """A local folder stays a `Path` (as given); a URI becomes a `Location`."""
    if path is None:
        return None
    if not isinstance(path, (str, Path)):
        raise AuditTypeError(f"auto_export_path must be a path, a URI or None, got {type(path).__name__}")
    if not (isinstance(path, str) and "://" in path):
        return Path(path)
    loc = resolve(path, storage_options=storage_options, argument="auto_export_path")
    return loc.local_path() if loc.is_local else loc
