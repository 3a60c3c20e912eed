"""`VerifyResult`: what `verify` found, filled in by the log's replay as it goes."""

from __future__ import annotations

from dataclasses import dataclass, field

from axon_audit.display.cards import verify_card

__all__ = ["VerifyResult"]


@dataclass
class VerifyResult:
    """The outcome of `verify`: `ok`, what was checked, and the problems found
    (the first break first; each names the file and, where known, the event id).
    `checkpoints` holds each log's newest checkpoint whose signature was checked
    (by origin; only with `public_key`), for an auditor to keep and pass back
    later as `verify(..., checkpoint=)`; `tree_heads` each log's tree head,
    HMAC-authenticated (only with `key`; `integrity.log.tree_head_text`), the
    same for a folder kept without a signing key. `notes` say what was not
    proven (e.g. freshness, without a kept checkpoint) and do not affect `ok`."""

    ok: bool
    files_checked: int = 0
    events_checked: int = 0
    problems: list[str] = field(default_factory=list)
    hmac_checked: bool = False
    signatures_checked: int = 0
    tree_size: int = 0
    checkpoints: dict[str, str] = field(default_factory=dict)
    tree_heads: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    erasures: list[str] = field(default_factory=list)  # GDPR erasures recorded in the manifest (erase_subject)
    retentions: list[str] = field(default_factory=list)  # retention runs recorded in the manifest (apply_retention)
    # An object-store lake's newest global log entry (its text): keep it, pass it back as `checkpoint=`.
    global_head: str | None = None
    # Files no manifest lists but an export's intent names: an export in progress, or one a crash cut off
    # before its commit. Not evidence and not served; not a problem (the next logger removes them).
    leftovers: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        first = f", first problem={self.problems[0]!r}" if self.problems else ""
        return (f"VerifyResult(ok={self.ok}, files_checked={self.files_checked}, "
                f"events_checked={self.events_checked}, problems={len(self.problems)}{first})")

    def _repr_html_(self) -> str:
        return verify_card(self)
