"""Subject access (GDPR art. 15): every event about one person, from any sources.

`subject_access_report` gathers the user's own events and other users'
accesses to the entries the user stored, from loggers (their archived exports
included) and archives alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from axon_audit.display.html import card, table
from axon_audit.exceptions import AuditTypeError, AuditValueError
from axon_audit.io.json_export import write_json_export
from axon_audit.read.sources import scan_sources

__all__ = ["SubjectAccessReport", "check_subject", "subject_access_report"]

_STORES = ["STORE", "BULK_STORE", "IMPORT"]


def check_subject(user_id: Any) -> str:
    if not isinstance(user_id, str):
        raise AuditTypeError(f"user_id must be a str, got {type(user_id).__name__}")
    if not user_id.strip():
        raise AuditValueError("user_id must not be empty")
    return user_id


# --------------------------------------------------------------------------- access


@dataclass
class SubjectAccessReport:
    """Every event about one user: `events` (their own), `accessed_by_others` (other
    users' events touching entries the user stored first), `entries` and `summary`.

    `export(path)` writes both event sections, oldest first, in the JSON export format.

    Example:
        >>> import json, pathlib, tempfile
        >>> from axon_audit import AuditLogger, subject_access_report
        >>> audit = AuditLogger()
        >>> _ = audit.log("store", user_id="ann", entry_ids=["n1"])
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "ann.json"
        >>> subject_access_report(audit, "ann").export(path)
        1
        >>> json.loads(path.read_text())["events"][0]["user_id"]
        'ann'
    """

    user_id: str
    frames: dict[str, pl.DataFrame] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        def rows(df: pl.DataFrame) -> list[dict[str, Any]]:
            return df.with_columns(pl.col(pl.Datetime).dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")).to_dicts()

        return {"user_id": self.user_id, **rows(self.frames["summary"])[0],
                "events": rows(self.frames["events"]), "accessed_by_others": rows(self.frames["accessed_by_others"]),
                "entries": self.frames["entries"]["entry_id"].to_list()}

    def export(self, path: str | Path) -> int:
        """Write the user's events and the accesses by others to `path` (export format);
        returns how many events were written."""
        if not isinstance(path, (str, Path)):
            raise AuditTypeError(f"path must be a str or Path, got {type(path).__name__}")
        df = pl.concat([self.frames["events"], self.frames["accessed_by_others"]]).sort("timestamp", "event_id")
        write_json_export(df, Path(path))
        return df.height

    def _repr_html_(self) -> str:
        s = self.frames["summary"].row(0, named=True)
        return card(f"Subject access report: {self.user_id}", s,
                    {k: table(v) for k, v in self.frames.items() if k != "summary"})

    def __repr__(self) -> str:
        s = self.frames["summary"].row(0, named=True)
        return (f"SubjectAccessReport(user_id={self.user_id!r}, events={s['events']}, "
                f"accessed_by_others={s['accessed_by_others']})")


def subject_access_report(source: Any, user_id: str) -> SubjectAccessReport:
    """Every event about `user_id` in `source` (a logger, an archive, or a list of them;
    a logger's archived exports are included where it can read them).

    Example:
        >>> from axon_audit import AuditLogger, subject_access_report
        >>> audit = AuditLogger()
        >>> _ = audit.log("store", user_id="ann", entry_ids=["note_1"])
        >>> _ = audit.log("recall", user_id="bob", entry_ids=["note_1"])
        >>> _ = audit.log("recall", user_id="bob", entry_ids=["note_2"])
        >>> r = subject_access_report(audit, "ann")
        >>> r.to_dict()["events"][0]["operation"], r.frames["accessed_by_others"]["user_id"].to_list()
        ('STORE', ['bob'])
    """
    user_id = check_subject(user_id)
    own = scan_sources(source, user_id=user_id).sort("timestamp", "event_id").collect()
    stored = (own.filter(pl.col("operation").is_in(_STORES)).select(pl.col("entry_ids").alias("entry_id"))
              .explode("entry_id").drop_nulls().unique())
    # The user's entries: those they stored first (an entry others stored before is not theirs).
    entries = (scan_sources(source, operation=_STORES, entry_ids=stored["entry_id"].to_list())
               .filter(pl.col("status") != "FAILURE")
               .select("timestamp", "event_id", "user_id", pl.col("entry_ids").alias("entry_id"))
               .explode("entry_id").join(stored.lazy(), on="entry_id")
               .sort("timestamp", "event_id").group_by("entry_id").agg(pl.col("user_id").first().alias("owner"))
               .filter(pl.col("owner") == user_id).select("entry_id").sort("entry_id").collect()
               if stored.height else stored)
    if entries.height:
        others = (scan_sources(source, entry_ids=entries["entry_id"].to_list())
                  .filter(pl.col("user_id").is_null() | (pl.col("user_id") != user_id))
                  .sort("timestamp", "event_id").collect())
    else:
        others = own.clear()
    summary = pl.DataFrame({
        "events": [own.height],
        "accessed_by_others": [others.height],
        "entries_stored": [entries.height],
        "sessions": [own["session_id"].drop_nulls().n_unique()],
        "first_event": [own["timestamp"].min()],
        "last_event": [own["timestamp"].max()],
        "other_users": [others["user_id"].drop_nulls().n_unique()],
    }, schema_overrides={"first_event": pl.Datetime("us", "UTC"), "last_event": pl.Datetime("us", "UTC")})
    return SubjectAccessReport(user_id, {"summary": summary, "events": own, "accessed_by_others": others,
                                         "entries": entries})


# --------------------------------------------------------------------------- erasure
