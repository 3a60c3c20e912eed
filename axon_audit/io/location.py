"""Where exports live: local folders, `file://` and `s3://` URIs, as one `Location`.

A path or URI is parsed once into a pyarrow `FileSystem` plus a path inside it.
Local folders keep the temp + fsync + rename writes of `io.atomic`; on object
storage a file is published by one upload of the whole object under its final,
unique name (S3 shows an object only when its upload completes, so a reader sees
a whole object or none), and nothing is ever overwritten by a rotation.

S3 credentials come from the standard AWS chain (environment, `~/.aws`, instance
metadata). The endpoint of an S3-compatible store comes from
`storage_options={"endpoint_url": ...}` or else `AWS_ENDPOINT_URL_S3` /
`AWS_ENDPOINT_URL` in the environment.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import unquote, urlsplit

import pyarrow.fs as pafs

from axon_audit.exceptions import AuditTypeError, AuditValueError

__all__ = ["Location", "StorageOptions", "duckdb_literal_path", "local_folder", "put_all", "resolve"]

StorageOptions = Mapping[str, Any]

# storage_options keys -> pyarrow.fs.S3FileSystem arguments (with the names
# polars / object_store use as aliases, so one dict serves both).
_S3_OPTIONS = {
    "endpoint_url": "endpoint_url",
    "aws_endpoint_url": "endpoint_url",
    "region": "region",
    "aws_region": "region",
    "access_key": "access_key",
    "aws_access_key_id": "access_key",
    "secret_key": "secret_key",
    "aws_secret_access_key": "secret_key",
    "session_token": "session_token",
    "aws_session_token": "session_token",
    "anonymous": "anonymous",
    "allow_bucket_creation": "allow_bucket_creation",
    # polars needs these for http endpoints; pyarrow takes the scheme from endpoint_url
    "aws_allow_http": None,
    "allow_http": None,
}
SPOOL_BYTES = 64 * 1024 * 1024  # uploads above this are staged in a temporary file, not memory
# Object stores are latency-bound: a rotation spanning many days uploads its parts
# side by side (benchmarks/bench_lake.py: 1.6-2.2x faster than one by one for a
# 365-day rotation into moto_server on 2 shared cores; more against real S3 latency).
UPLOAD_WORKERS = 8


def _s3_filesystem(options: Mapping[str, Any]) -> tuple[pafs.S3FileSystem, str | None]:
    kwargs: dict[str, Any] = {}
    for key, value in options.items():
        if key not in _S3_OPTIONS:
            raise AuditValueError(
                f"storage_options: unknown key {key!r}; expected one of {sorted(_S3_OPTIONS)}"
            )
        name = _S3_OPTIONS[key]
        if name is not None:
            kwargs[name] = value
    endpoint = kwargs.pop("endpoint_url", None) or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get(
        "AWS_ENDPOINT_URL"
    )
    if endpoint:
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise AuditValueError(f"endpoint_url must look like http(s)://host:port, got {endpoint!r}")
        kwargs["endpoint_override"] = parts.netloc
        kwargs["scheme"] = parts.scheme
    try:
        return pafs.S3FileSystem(**kwargs), endpoint
    except (TypeError, ValueError, OSError) as exc:
        raise AuditValueError(f"storage_options: cannot build an S3 filesystem from {sorted(options)}: {exc}") from exc


@dataclass(frozen=True)
class Location:
    """A folder or file on some filesystem: the pyarrow `fs`, the `path` inside it
    (no scheme, `/`-separated) and the `uri` a user would write for it.

    Example:
        >>> from axon_audit.io.location import resolve
        >>> loc = resolve("/tmp/audit_logs")
        >>> loc.is_local, loc.join("parquet", "date=2025-01-15").path
        (True, '/tmp/audit_logs/parquet/date=2025-01-15')
    """

    fs: pafs.FileSystem
    path: str
    uri: str
    endpoint_url: str | None = None

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name

    def local_path(self) -> Path:
        """The `Path` of a local location (only for `is_local`)."""
        assert self.is_local
        return Path(self.path)

    def join(self, *parts: str) -> Location:
        path = "/".join([self.path.rstrip("/"), *parts])
        uri = "/".join([self.uri.rstrip("/"), *parts])
        return Location(self.fs, path, uri, self.endpoint_url)

    def info(self) -> pafs.FileInfo:
        return self.fs.get_file_info(self.path)

    def exists(self) -> bool:
        return self.info().type != pafs.FileType.NotFound

    def is_file(self) -> bool:
        return self.info().type == pafs.FileType.File

    def is_dir(self) -> bool:
        # An S3 "folder" exists once an object lies under it (or a marker was made).
        return self.info().type == pafs.FileType.Directory

    def relative(self, path: str) -> str:
        """`path` (inside this location's filesystem) as a name under this folder.

        Example:
            >>> from axon_audit.io.location import resolve
            >>> root = resolve("/srv/audit")
            >>> root.relative("/srv/audit/parquet/date=2025-01-15/part-1.parquet")
            'parquet/date=2025-01-15/part-1.parquet'
        """
        base = self.path.rstrip("/") + "/"
        return path[len(base):] if path.startswith(base) else path

    def files(self, *, recursive: bool = True) -> list[pafs.FileInfo]:
        """The files under this folder, sorted by path; hidden names (a local write
        in progress) and anything under a hidden folder are left out."""
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.path, allow_not_found=True, recursive=recursive))
        except FileNotFoundError:
            return []
        out = []
        for info in infos:
            if info.type != pafs.FileType.File:
                continue
            rel = self.relative(info.path)
            if any(part.startswith(".") for part in rel.split("/")):
                continue
            out.append(info)
        out.sort(key=lambda i: i.path)
        return out

    def sibling(self, name: str) -> Location:
        """The location named `name` in the same folder."""
        return Location(self.fs, f"{self.path.rpartition('/')[0]}/{name}",
                        f"{self.uri.rpartition('/')[0]}/{name}", self.endpoint_url)

    def __truediv__(self, part: str) -> Location:
        return self.join(part)

    def unlink(self, missing_ok: bool = False) -> None:
        """Delete this object (the `Path.unlink` spelling, so writers treat both alike)."""
        try:
            self.fs.delete_file(self.path)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def read_bytes(self) -> bytes:
        with self.fs.open_input_stream(self.path) as fh:
            return fh.read()

    def read_if_exists(self) -> bytes | None:
        """The object's bytes, or None if it does not exist. Any other failure (the
        store unreachable, access denied) raises: absence is never guessed."""
        try:
            return self.read_bytes()
        except FileNotFoundError:
            return None
        except OSError:
            if not self.exists():  # some stores report a missing key as a plain I/O error
                return None
            raise

    def put(self, write: Callable[[IO[bytes]], object]) -> tuple[str, int]:
        """Publish this object whole and return its (SHA-256 hex, size): `write` fills
        a local spool first, so a failure while encoding uploads nothing; then one
        upload of the complete object, hashed on its way out (the integrity
        manifest needs the digest, and reading the object back would double the
        traffic). For object storage; local files go through `io.atomic.atomic_write`."""
        digest = hashlib.sha256()
        size = 0
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            write(spool)
            spool.seek(0)
            # No parent folders to make on object storage; the upload is the publish.
            with self.fs.open_output_stream(self.path) as out:
                while block := spool.read(8 * 1024 * 1024):
                    digest.update(block)
                    size += len(block)
                    out.write(block)
        return digest.hexdigest(), size

    def __str__(self) -> str:
        return self.uri


def _discard(loc: Location) -> None:
    try:
        loc.unlink(missing_ok=True)
    except OSError:  # the first error is the one to report
        pass


def _put_each(objects: list[tuple[Location, Callable[[IO[bytes]], object]]]) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    try:
        for loc, write in objects:
            out.append(loc.put(write))
    except BaseException:
        for loc, _ in objects[: len(out)]:
            _discard(loc)
        raise
    return out


def put_all(objects: list[tuple[Location, Callable[[IO[bytes]], object]]]) -> list[tuple[str, int]]:
    """Publish several objects side by side, all or none, and return each one's
    (SHA-256 hex, size) in order: if one upload fails, the ones that went up are
    deleted again and the first error is raised."""
    if len(objects) <= 1:
        return _put_each(objects)
    with ThreadPoolExecutor(max_workers=min(UPLOAD_WORKERS, len(objects)),
                            thread_name_prefix="axon-audit-upload") as pool:
        try:
            futures = [(loc, pool.submit(loc.put, write)) for loc, write in objects]
        except RuntimeError:  # at interpreter exit (atexit export) no new threads start: one by one
            futures = []
    if not futures:
        return _put_each(objects)
    errors = [e for _, f in futures if (e := f.exception()) is not None]
    if errors:
        for loc, f in futures:
            if f.exception() is None:
                _discard(loc)
        raise errors[0]
    return [f.result() for _, f in futures]


def resolve(
    path: str | os.PathLike[str] | Location,
    *,
    storage_options: StorageOptions | None = None,
    filesystem: pafs.FileSystem | None = None,
    argument: str = "path",
) -> Location:
    """Parse a local path, `file://` URI or `s3://bucket/prefix` URI into a `Location`.

    `storage_options` configure S3 (`endpoint_url`, `region`, `access_key`,
    `secret_key`, `session_token`, `anonymous`; the `aws_…` spellings polars uses
    work too); without them the standard AWS credential chain and
    `AWS_ENDPOINT_URL` apply. `filesystem` takes a ready pyarrow filesystem
    instead, with `path` inside it.

    Example:
        >>> from axon_audit.io.location import resolve
        >>> resolve("file:///srv/audit").path
        '/srv/audit'
        >>> loc = resolve("s3://audit-lake/prod", storage_options={"endpoint_url": "http://127.0.0.1:9000"})
        >>> type(loc.fs).__name__, loc.path, loc.uri
        ('S3FileSystem', 'audit-lake/prod', 's3://audit-lake/prod')
        >>> resolve("gs://bucket/x")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        axon_audit.exceptions.AuditValueError: path: unsupported URI scheme 'gs' in 'gs://bucket/x'; expected ...
    """
    if isinstance(path, Location):
        return path
    if filesystem is not None:
        if not isinstance(filesystem, pafs.FileSystem):
            raise AuditTypeError(f"filesystem must be a pyarrow.fs.FileSystem, got {type(filesystem).__name__}")
        text = os.fspath(path) if isinstance(path, os.PathLike) else path
        if not isinstance(text, str):
            raise AuditTypeError(f"{argument} must be a str or Path, got {type(path).__name__}")
        return Location(filesystem, text.rstrip("/") or "/", text)
    if isinstance(path, os.PathLike):
        local = Path(path).absolute()
        return Location(pafs.LocalFileSystem(), local.as_posix(), str(path))
    if not isinstance(path, str):
        raise AuditTypeError(f"{argument} must be a str, Path or URI, got {type(path).__name__}")
    if storage_options is not None and not isinstance(storage_options, Mapping):
        raise AuditTypeError(f"storage_options must be a dict or None, got {type(storage_options).__name__}")
    scheme = urlsplit(path).scheme.lower() if "://" in path else ""
    if scheme in ("", "file"):  # storage_options are for object stores; a local path ignores them
        local = Path(unquote(urlsplit(path).path)) if scheme == "file" else Path(path)
        return Location(pafs.LocalFileSystem(), local.absolute().as_posix(), path)
    if scheme in ("s3", "s3a"):
        parts = urlsplit(path)
        if not parts.netloc:
            raise AuditValueError(f"{argument}: {path!r} names no bucket; expected s3://bucket/prefix")
        if parts.query:
            raise AuditValueError(f"{argument}: {path!r}: put S3 settings in storage_options, not in the URI")
        fs, endpoint = _s3_filesystem(storage_options or {})
        inner = f"{parts.netloc}{parts.path}".rstrip("/")
        return Location(fs, inner, f"s3://{inner}", endpoint)
    raise AuditValueError(
        f"{argument}: unsupported URI scheme {scheme!r} in {path!r}; expected a local path, file:// or s3://"
    )


_DUCKDB_GLOB = str.maketrans({"[": "[[]", "*": "[*]", "?": "[?]"})


def duckdb_literal_path(path: str) -> str:
    """`path` as DuckDB's file readers take it literally: DuckDB expands glob
    characters in every path it reads (no option turns that off), so a folder
    named ``audit[eu]`` would read ``audite/`` instead; each glob character is
    written as a one-character class. (polars takes ``glob=False``.)

    Example:
        >>> from axon_audit.io.location import duckdb_literal_path
        >>> duckdb_literal_path("/srv/audit[eu]*?/part.parquet")
        '/srv/audit[[]eu][*][?]/part.parquet'
    """
    return path.translate(_DUCKDB_GLOB)


def local_folder(path: str | os.PathLike[str], *, argument: str, task: str) -> Path:
    """`path` (a folder or ``file://`` URI) as a local `Path`, for work that only
    local folders support yet; an object-store URI is refused, naming the `task`.

    Example:
        >>> from axon_audit.io.location import local_folder
        >>> local_folder("file:///srv/audit", argument="path", task="plan_erasure").as_posix()
        '/srv/audit'
        >>> local_folder("s3://lake/audit", argument="path", task="plan_erasure")
        Traceback (most recent call last):
        ...
        axon_audit.exceptions.AuditValueError: path: plan_erasure works on local export folders, not object storage ('s3://lake/audit')
    """
    if not (isinstance(path, str) and "://" in path):
        return Path(path)  # as given (relative stays relative, like the logger's own path)
    loc = resolve(path, argument=argument)
    if not loc.is_local:
        raise AuditValueError(f"{argument}: {task} works on local export folders, not object storage ({path!r})")
    return loc.local_path()
