"""Whole-or-nothing local writes: `atomic_write`, and the temporary names it uses.

A file is written under a hidden temporary name in its final folder, flushed,
fsynced and then renamed (or hard-linked, where an existing file must not be
replaced), so a reader sees a whole file or none. Readers skip hidden names,
so a write in progress is never listed; `temp_pid` tells which process owns a
leftover temporary file (`integrity.manifest.remove_stale_temps`).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO

from axon_audit.io.layout import numbered_names

__all__ = ["TEMP_GLOB", "atomic_write", "fsync_dir", "temp_name", "temp_pid"]

# Every temporary name matches this (relative to any folder, recursively).
TEMP_GLOB = ".*.tmp"


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (where the platform lets folders be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not every platform opens folders
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(path: Path) -> Path:
    """The hidden temporary sibling `path` is written under (unique per process and call).

    Example:
        >>> import os
        >>> from pathlib import Path
        >>> from axon_audit.io.atomic import temp_name, temp_pid
        >>> tmp = temp_name(Path("/srv/audit/manifest.json"))
        >>> tmp.name.startswith(".manifest.json.") and tmp.suffix, temp_pid(tmp.name) == os.getpid()
        ('.tmp', True)
    """
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def temp_pid(name: str) -> int | None:
    """The id of the process that writes the temporary file `name` (None: not one of ours).

    Example:
        >>> from axon_audit.io.atomic import temp_pid
        >>> temp_pid(".audit_2025_01_15_120000.json.4242-0a1b2c3d.tmp"), temp_pid("notes.tmp")
        (4242, None)
    """
    if not (name.startswith(".") and name.endswith(".tmp")):
        return None
    try:
        return int(name.rsplit(".", 2)[-2].split("-")[0])
    except (ValueError, IndexError):
        return None


class HashingWriter:
    """A binary file wrapper that hashes (SHA-256) and counts what passes through
    it: a file is hashed as it is written, never read back. hashlib releases the
    GIL on the large blocks the JSON and Parquet writers hand over."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self._sha = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._sha.update(data)
        n = self._fh.write(data)
        self.size += len(memoryview(data).cast("B"))
        return n

    def flush(self) -> None:
        self._fh.flush()

    def tell(self) -> int:
        return self.size

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    def digest(self) -> tuple[str, int]:
        """(SHA-256 hex, size) of what was written so far."""
        return self._sha.hexdigest(), self.size


def atomic_write_hashed(path: Path, write: Callable[[IO[bytes]], object], *,
                        replace: bool = True) -> tuple[Path, tuple[str, int]]:
    """`atomic_write`, also returning the written content's (SHA-256 hex, size),
    hashed on its way to the file.

    Example:
        >>> import hashlib, pathlib, tempfile
        >>> from axon_audit.io.atomic import atomic_write_hashed
        >>> path, (digest, size) = atomic_write_hashed(pathlib.Path(tempfile.mkdtemp()) / "a.txt",
        ...                                            lambda fh: fh.write(b"one"))
        >>> digest == hashlib.sha256(b"one").hexdigest(), size
        (True, 3)
    """
    box: list[HashingWriter] = []

    def hashed(fh: IO[bytes]) -> None:
        box.append(HashingWriter(fh))
        write(box[0])  # type: ignore[arg-type]

    done = atomic_write(path, hashed, replace=replace)
    return done, box[0].digest()


def atomic_write(path: Path, write: Callable[[IO[bytes]], object], *, replace: bool = True) -> Path:
    """Write `path` whole or not at all. With `replace=False` an existing file is
    never overwritten: the name gets `_1`, `_2`, … before the suffix instead.
    Returns the path written.

    Example:
        >>> import pathlib, tempfile
        >>> from axon_audit.io.atomic import atomic_write
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> atomic_write(folder / "a.txt", lambda fh: fh.write(b"one")).name
        'a.txt'
        >>> atomic_write(folder / "a.txt", lambda fh: fh.write(b"two"), replace=False).name
        'a_1.txt'
        >>> sorted(p.name for p in folder.iterdir())
        ['a.txt', 'a_1.txt']
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            path = _link_unique(tmp, path)
            os.unlink(tmp)
        fsync_dir(path.parent)
        return path
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _link_unique(tmp: Path, path: Path) -> Path:
    for candidate in numbered_names(path):
        try:
            os.link(tmp, candidate)  # fails if the name exists: no overwrite, even across processes
            return candidate
        except FileExistsError:
            continue
    raise AssertionError("unreachable: numbered_names never ends")
