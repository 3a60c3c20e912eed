"""The last step of an export to object storage: its writer manifest's new head
appended to the lake's global log (`integrity.global_log`), or, if that fails, the
manifest put back as it was, so the export is undone and retried whole (its events
stay pending in memory, as after a failed upload: nothing is lost)."""

from __future__ import annotations

import logging
from typing import Any

from axon_audit.integrity.global_log import GlobalLog
from axon_audit.integrity.manifest import WriterManifest, manifest_bytes, segment_name

__all__ = ["publish_globally"]

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
