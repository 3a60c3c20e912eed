"""The last step of an export to object storage: its writer manifest's new head
appended to the lake's global log (`integrity.global_log`), or, if that fails, the
manifest put back as it was, so the export is undone and retried whole (its events
stay pending in memory, as after a failed upload: nothing is lost).

A writer that died between those two steps (its manifest up, its global entry
not) leaves a manifest the global log does not cover; the write-ahead log's
recovery publishes it (`publish_if_missing`), so the lake verifies again."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import orjson

from axon_audit.integrity.global_log import GlobalLog, newest_of_writer
from axon_audit.integrity.log import writer_log
from axon_audit.integrity.manifest import WriterManifest, manifest_bytes, segment_name

__all__ = ["publish_globally", "publish_if_missing"]

log = logging.getLogger("axon_audit")


def publish_globally(glog: GlobalLog, manifest: WriterManifest, before: tuple[int, dict[str, Any]],
                     attempt: Any) -> None:
    """Append `manifest`'s head to `glog`; on failure restore the manifest to
    `before` (segment, document) and raise, so `attempt` is undone and retried.

    Example:
        >>> import tempfile
        >>> from axon_audit.io.location import resolve
        >>> from axon_audit.integrity.global_log import GlobalLog
        >>> from axon_audit.integrity.manifest import WriterManifest
        >>> from axon_audit.write.global_commit import publish_globally
        >>> root = resolve(tempfile.mkdtemp())
        >>> m, glog = WriterManifest(root, key=None), GlobalLog(root, key=None)
        >>> before = (m.segment, m.doc); (root / "manifests").fs.create_dir((root / "manifests").path)
        >>> m.commit([], "2025-01-15T00:00:00Z", m.tree)
        >>> publish_globally(glog, m, before, None); glog.commits
        1
    """
    try:
        glog.commit(manifest.writer, manifest.name, manifest.doc["head"], manifest.digest)
    except BaseException as exc:
        log.error("axon_audit: global log commit of %s to %s failed (%s: %s); the export is undone and retried",
                  manifest.name, glog.root, type(exc).__name__, exc)
        glog.last_error = f"{type(exc).__name__}: {exc}"
        segment, doc = before
        new_name = manifest.name
        manifest.segment, manifest.doc = segment, doc
        try:
            if new_name != segment_name(manifest.writer, segment) or not doc.get("entries"):
                (glog.root / new_name).unlink(missing_ok=True)  # a new segment: gone again
            else:
                body = manifest_bytes(doc)
                (glog.root / new_name).put(lambda fh: fh.write(body))
        except OSError:
            if attempt is not None:  # the manifest may still list the objects: keep them; the retry overwrites
                attempt.written, attempt.job_file = [], None
        raise


def publish_if_missing(glog: GlobalLog, manifest_name: str) -> bool:
    """Append the global entry of the stored manifest `manifest_name` if the
    newest global entry of its writer does not record exactly these bytes;
    whether it did. For recovery only: the manifest's writer must be dead (its
    write-ahead log is the caller's), or the two would race on the manifest.

    Example:
        >>> import tempfile
        >>> from axon_audit.io.location import resolve
        >>> from axon_audit.integrity.global_log import GlobalLog
        >>> from axon_audit.integrity.manifest import WriterManifest
        >>> from axon_audit.write.global_commit import publish_if_missing
        >>> root = resolve(tempfile.mkdtemp())
        >>> m = WriterManifest(root, key=None); (root / "manifests").fs.create_dir((root / "manifests").path)
        >>> m.commit([], "2025-01-15T00:00:00Z", m.tree)  # the writer dies here, before its global entry
        >>> publish_if_missing(GlobalLog(root, key=None), m.name), publish_if_missing(GlobalLog(root, key=None), m.name)
        (True, False)
    """
    raw = (glog.root / manifest_name).read_if_exists()
    if raw is None:
        return False
    doc = orjson.loads(raw)
    if not doc.get("global_log"):  # written before the lake had a global log: nothing to cover
        return False
    digest = hashlib.sha256(raw).hexdigest()
    writer = writer_log(manifest_name).rpartition("/")[2]
    newest = newest_of_writer(glog.root, writer)
    if newest is not None and newest.get("manifest") == manifest_name and newest.get("sha256") == digest:
        return False
    log.warning("axon_audit: %s was committed without its global log entry (its writer stopped in between); "
                "publishing it now", manifest_name)
    glog.commit(writer, manifest_name, doc["head"], (digest, len(raw)))
    return True
