"""The optional Delta Lake format of an export root: where the table is, how
delta-rs reaches it, and the integrity tree head each commit carries.

A Delta lake (``lake_format="delta"``) is a Delta table at the export root:
``_delta_log/`` plus ``date=YYYY-MM-DD/`` partitions of Parquet files. Each
rotation is one Delta commit (one ``_delta_log/<version>.json``, published by a
create-if-absent put, so it lands whole or not at all, across every day it
spans). The commit's ``commitInfo`` carries, under `TREE_KEY`, the export log's
tree head after it: ``size``, ``root``, the compact ``range`` (so the next
writer extends the tree without reading any event) and, with a signing key, the
signed ``checkpoint``, whose extension line is ``axon_audit.delta <version>``.

`deltalake` (delta-rs) is an optional dependency (the ``delta`` extra); it is
imported only when a Delta lake is written or read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from axon_audit.exceptions import AuditError, AuditValueError
from axon_audit.io.location import Location, StorageOptions

__all__ = ["DELTA_LOG", "LAKE_FORMATS", "TREE_KEY", "check_lake_format", "commit_info", "delta_options",
           "deltalake", "is_delta", "table_uri", "tree_head_of"]

LAKE_FORMATS = ("parquet", "delta")
DELTA_LOG = "_delta_log"
TREE_KEY = "axon_audit.tree"

# storage_options keys (ours, see io.location) -> delta-rs / object_store keys
_DELTA_KEYS = {
    "endpoint_url": "AWS_ENDPOINT_URL", "aws_endpoint_url": "AWS_ENDPOINT_URL",
    "region": "AWS_REGION", "aws_region": "AWS_REGION",
    "access_key": "AWS_ACCESS_KEY_ID", "aws_access_key_id": "AWS_ACCESS_KEY_ID",
    "secret_key": "AWS_SECRET_ACCESS_KEY", "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "session_token": "AWS_SESSION_TOKEN", "aws_session_token": "AWS_SESSION_TOKEN",
    "aws_allow_http": "AWS_ALLOW_HTTP", "allow_http": "AWS_ALLOW_HTTP",
}


def check_lake_format(value: Any) -> str:
    """`value` as a lake format, or an error naming the argument.

    Example:
        >>> from axon_audit.io.delta import check_lake_format
        >>> check_lake_format("delta")
        'delta'
        >>> check_lake_format("iceberg")
        Traceback (most recent call last):
        ...
        axon_audit.exceptions.AuditValueError: lake_format must be one of ('parquet', 'delta'), got 'iceberg'
    """
    if not isinstance(value, str) or value not in LAKE_FORMATS:
        raise AuditValueError(f"lake_format must be one of {LAKE_FORMATS}, got {value!r}")
    return value


def deltalake() -> Any:
    """The `deltalake` module, or an error saying how to install it."""
    try:
        import deltalake as dl  # optional dependency: only Delta lakes need it
    except ImportError as exc:
        raise AuditError("lake_format='delta' needs the deltalake package: pip install 'axon-audit[delta]'") from exc
    return dl


def table_uri(root: Path | Location) -> str:
    """The URI delta-rs and polars take for the table at `root`.

    Example:
        >>> from pathlib import Path
        >>> from axon_audit.io.delta import table_uri
        >>> table_uri(Path("/srv/audit"))
        '/srv/audit'
    """
    if isinstance(root, Location):
        return root.local_path().absolute().as_posix() if root.is_local else f"s3://{root.path}"
    return root.absolute().as_posix()


def delta_options(root: Path | Location, storage_options: StorageOptions | None = None) -> dict[str, str] | None:
    """delta-rs `storage_options` for `root`: the S3 settings of `storage_options`
    (our keys, see `io.location.resolve`) under object_store's names, the
    endpoint (``http://`` allowed when asked for), and the environment's region
    and credentials. Commits need no lock: delta-rs 1.x publishes each
    ``_delta_log`` entry by a conditional put (``If-None-Match: *``).

    Example:
        >>> from axon_audit.io.location import resolve
        >>> from axon_audit.io.delta import delta_options
        >>> opts = delta_options(resolve("s3://lake/a", storage_options={"endpoint_url": "http://127.0.0.1:9000"}))
        >>> opts["AWS_ENDPOINT_URL"], opts["AWS_ALLOW_HTTP"]
        ('http://127.0.0.1:9000', 'true')
    """
    if not isinstance(root, Location) or root.is_local:
        return None
    out: dict[str, str] = {}
    for env in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        if os.environ.get(env):
            out["AWS_REGION" if env == "AWS_DEFAULT_REGION" else env] = os.environ[env]
    for key, value in (storage_options or {}).items():
        if key in _DELTA_KEYS and value is not None:
            out[_DELTA_KEYS[key]] = str(value).lower() if isinstance(value, bool) else str(value)
    endpoint = root.endpoint_url or out.get("AWS_ENDPOINT_URL")
    if endpoint:
        out["AWS_ENDPOINT_URL"] = endpoint
        if urlsplit(endpoint).scheme == "http":
            out["AWS_ALLOW_HTTP"] = "true"
    out.setdefault("AWS_REGION", "us-east-1")
    return out


def is_delta(root: Path | Location) -> bool:
    """Whether a Delta table lies at `root` (it has a ``_delta_log/``).

    Example:
        >>> import tempfile, pathlib
        >>> from axon_audit.io.delta import is_delta
        >>> is_delta(pathlib.Path(tempfile.mkdtemp()))
        False
    """
    log = root / DELTA_LOG
    if isinstance(log, Location):
        return log.is_dir() or bool(log.files(recursive=False))
    return log.is_dir()


def commit_info(root: Path | Location, version: int) -> dict[str, Any] | None:
    """The ``commitInfo`` of Delta commit `version` (None when that log entry is gone)."""
    entry = root / DELTA_LOG / f"{version:020d}.json"
    if isinstance(entry, Location):
        body = entry.read_if_exists()
    else:
        body = entry.read_bytes() if entry.is_file() else None
    if body is None:
        return None
    for line in body.splitlines():
        if line.strip():
            action = orjson.loads(line)
            if "commitInfo" in action:
                info: dict[str, Any] = action["commitInfo"]
                return info
    return {}


def tree_head_of(info: dict[str, Any] | None) -> dict[str, Any] | None:
    """The tree head a commit's `commit_info` carries (None: not an axon_audit commit).

    Example:
        >>> from axon_audit.io.delta import tree_head_of
        >>> tree_head_of({"axon_audit.tree": '{"size": 2, "root": "ab", "range": ["ab"]}'})["size"]
        2
        >>> tree_head_of({"operation": "OPTIMIZE"}) is None
        True
    """
    raw = (info or {}).get(TREE_KEY)
    if raw is None:
        return None
    head: dict[str, Any] = orjson.loads(raw) if isinstance(raw, (str, bytes)) else raw
    return head
