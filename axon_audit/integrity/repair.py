"""`repair_global_log`: finish the global commits that writers of a lake did not.

A writer's export commit on object storage is two steps: its manifest is
uploaded, then its global log entry appended (`write.global_commit`). A writer
with a write-ahead log that dies in between is finished by its own recovery; one
without (or whose WAL is lost) leaves a manifest the global log does not cover,
and `verify` fails on it. This repair appends the missing entries, but only when
`verify` finds nothing else wrong with the lake: the manifests it publishes are
then intact (their links, and with the lake's key or public key their HMACs and
signed heads), so a manifest an intruder inserted, which carries neither, is
refused, never vouched for; a global entry deleted in the middle of the log is
another problem, so also refused. Racing a live writer is harmless: its own
entry lands after ours and names the same bytes. A re-published newest entry
differs from the one it replaces, so a global head an auditor kept
(`verify(checkpoint=)`) still tells them apart.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from axon_audit.exceptions import AuditValueError
from axon_audit.integrity.global_log import GlobalLog
from axon_audit.integrity.log import signing_key_of
from axon_audit.integrity.manifest import _key_bytes
from axon_audit.integrity.verify import verify
from axon_audit.io.location import StorageOptions, resolve
from axon_audit.write.global_commit import publish_if_missing

__all__ = ["repair_global_log"]

# The two findings a cut-off global commit leaves (see `integrity.global_log.check_global`).
_CUT_OFF = re.compile(r"(manifests/\S+\.json): (?:in no global entry|its head \(\d+ entries\) is newer than the "
                      r"newest global entry naming it)")


def repair_global_log(path: str | Path, *, key: str | bytes | None = None, signing_key: Any = None,
                      storage_options: StorageOptions | None = None) -> list[str]:
    """Append the global log entries of the writer manifests whose writers stopped
    between their manifest and their entry; returns the manifests published (none
    when the lake verifies). Refused, changing nothing, when `verify` (with `key`
    and the public half of `signing_key`) finds any other problem.

    Example:
        >>> import tempfile
        >>> from axon_audit import repair_global_log
        >>> repair_global_log(tempfile.mkdtemp())
        Traceback (most recent call last):
        ...
        axon_audit.exceptions.AuditValueError: path: ... has problems a repair must not vouch for: ...: missing
    """
    root = resolve(path, storage_options=storage_options)
    signer = signing_key_of(signing_key)
    found = verify(path, key=key, public_key=signer.verifier() if signer else None, storage_options=storage_options)
    stranded = sorted({m[1] for p in found.problems if (m := _CUT_OFF.match(p)) is not None})
    others = [p for p in found.problems if _CUT_OFF.match(p) is None]
    if others:
        raise AuditValueError(f"path: {root} has problems a repair must not vouch for: {'; '.join(others[:3])}"
                              + (f" (and {len(others) - 3} more)" if len(others) > 3 else ""))
    glog = GlobalLog(root, _key_bytes(key), signer)
    return [m for m in stranded if publish_if_missing(glog, m)]
