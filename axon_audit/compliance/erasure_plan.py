"""What an erasure of one subject would change in an export folder, without changing it.

`plan_erasure` applies `erase_subject`'s rewrite (`erasure_rewrite.SubjectRewrite`)
to each file in memory and lists the files it would alter: the command line's
``erase --dry-run``, and its check that the subject is there at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from axon_audit.compliance.erasure import _documents, _folder_events, _is_sealed, _parts
from axon_audit.compliance.erasure_files import load_plain as _load_plain
from axon_audit.compliance.erasure_rewrite import SubjectRewrite
from axon_audit.compliance.subject_access import check_subject
from axon_audit.integrity import manifest as _integrity
from axon_audit.integrity.replay import overrides_of
from axon_audit.io.layout import ExportLayout

__all__ = ["ErasurePlan", "plan_erasure"]


@dataclass
class ErasurePlan:
    """The subject's events and sessions in a folder, and the files an erasure would rewrite."""

    user_id: str
    events: int
    sessions: int
    files: list[Path]
    sealed: bool


def _candidates(folder: Path, sealed: bool) -> list[tuple[Path, str]]:
    """The files an erasure rewrites: in a sealed folder only those its manifest lists (and still has)."""
    files = [(p, "parquet") for p in _parts(folder)] + [(p, "json") for p in _documents(folder)]
    if not sealed:
        return files
    entries = _integrity.load_manifest(folder).get("entries", [])
    gone = overrides_of(entries).removed
    listed = {e["file"] for e in entries if e.get("kind") in ("json", "parquet") and e.get("file") not in gone}
    layout = ExportLayout(folder)
    return [(p, kind) for p, kind in files if layout.name_of(p) in listed]


def plan_erasure(folder: str | Path, user_id: str) -> ErasurePlan:
    """What `erase_subject(folder, user_id)` would rewrite (either mode alters the same files).

    Example:
        >>> import tempfile
        >>> from axon_audit import AuditLogger
        >>> from axon_audit.compliance.erasure_plan import plan_erasure
        >>> folder = tempfile.mkdtemp()
        >>> with AuditLogger(auto_export_path=folder) as audit:
        ...     _ = audit.log("store", user_id="ann")
        >>> p = plan_erasure(folder, "ann")
        >>> p.events, sorted(f.suffix for f in p.files)
        (1, ['.json', '.parquet'])
    """
    user_id = check_subject(user_id)
    root = ExportLayout.folder_of(Path(folder))
    sealed = _is_sealed(root)
    own = _folder_events(root, user_id).unique("event_id")
    sessions = sorted(own["session_id"].drop_nulls().unique().to_list())
    if not own.height:
        return ErasurePlan(user_id, 0, 0, [], sealed)
    fn = SubjectRewrite(user_id, sessions, "pseudonymize", "erased_0000000000000000")
    files = []
    for path, kind in _candidates(root, sealed):
        data = path.read_bytes()
        if kind == "json" and not any(n in data for n in fn.needles):  # plain text: a byte search tells
            continue
        df, _ = _load_plain(data, path, kind, chain=sealed)
        if not fn(df).equals(df):
            files.append(path)
    return ErasurePlan(user_id, own.height, len(sessions), files, sealed)
