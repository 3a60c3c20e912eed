"""The column rewrite of one GDPR erasure (`SubjectRewrite`), on parsed values.

What an erasure changes, in a frame of events (memory, an export document, a Parquet part):

* ``user_id``: the subject's id becomes the pseudonym (null when removed);
* ``session_id``: each of the subject's sessions becomes a pseudonym of its own
  (null when removed), in every event of that session: a session id is the
  subject's identifier wherever it is one;
* in the subject's own events only (theirs, and the records of earlier erasures
  whose ``subject`` is this id: erasing a pseudonym clears it from its own record):
  every string value of ``metadata`` (decoded, at any depth), the error message
  and each entry id have their whole-token occurrences of the user id or a session
  id replaced by the pseudonym (``[erased]`` when removed). A token is bounded by
  the ends of the text or a character outside ``[A-Za-z0-9_]``: erasing ``42``
  turns ``"42"`` and ``"by 42"`` into the pseudonym but leaves ``"4217"`` alone.

* in other people's events, a metadata string value (at any depth) that *is* the
  user id or a session id, whole, is replaced the same way: that is how a record
  names another person (``{"shared_with": "ann"}``), and the right to erasure
  covers it. Their text around an id (``"asked ann"``), their error messages
  and entry ids are theirs and stay as they are.

Never changed: metadata keys, numbers, booleans and null (erasing user ``42``,
``null`` or ``true`` keeps ``{"n": 42, "ok": true}``), and every other byte of
other people's events. (Erasure once replaced tokens in the JSON text of every
event: it rewrote keys and numbers, and corrupted other people's records.)
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
import polars as pl

__all__ = ["SubjectRewrite"]

_WORD = "A-Za-z0-9_"


def _rust_escape(text: str) -> str:
    """A literal for polars' (Rust) regex: every character but [A-Za-z0-9_] as a hex escape
    (a backslash before some punctuation means something there, e.g. ``\\<``)."""
    return "".join(c if c.isascii() and (c.isalnum() or c == "_") else f"\\x{{{ord(c):X}}}" for c in text)


class SubjectRewrite:
    """The rewrite of one erasure as a frame -> frame function (rows and their order kept).

    Example:
        >>> from axon_audit.compliance.erasure_rewrite import SubjectRewrite
        >>> from axon_audit.model.schema import normalize_batch
        >>> df = normalize_batch([{"operation": "store", "user_id": "42", "metadata": {"n": 42, "by": "42"}},
        ...                       {"operation": "store", "user_id": "bob", "metadata": {"42": "42"}}])
        >>> SubjectRewrite("42", [], "remove", None)(df).select("user_id", "metadata").rows()
        [(None, '{"n":42,"by":"[erased]"}'), ('bob', '{"42":"[erased]"}')]
    """

    def __init__(self, user_id: str, sessions: list[str], mode: str, pseudonym: str | None) -> None:
        self.user_id = user_id
        self.sessions = sessions
        self.mode = mode
        self.pseudonym = pseudonym
        self.session_map = {s: (f"{pseudonym}_s{i}" if pseudonym else None) for i, s in enumerate(sessions)}
        self.swaps = {user_id: pseudonym or "[erased]"}
        self.swaps.update({s: self.session_map[s] or "[erased]" for s in sessions})
        # Longest first: a session id that contains the user id is replaced whole.
        tokens = sorted(self.swaps, key=len, reverse=True)
        self.patterns = [(f"(^|[^{_WORD}]){_rust_escape(t)}([^{_WORD}]|$)", self.swaps[t]) for t in tokens]
        self._token = re.compile(f"(?<![{_WORD}])(?:{'|'.join(map(re.escape, tokens))})(?![{_WORD}])")
        # The ids as JSON text holds them (as orjson writes, and ASCII-escaped by other writers).
        self.escaped = sorted({f for t in tokens for f in (orjson.dumps(t).decode()[1:-1],
                                                            json.dumps(t, ensure_ascii=True)[1:-1])})
        # ... and as an export document's bytes can: a file without any is skipped.
        self.needles = [t.encode() for t in tokens] + [t.encode() for t in self.escaped]

    def _text(self, expr: pl.Expr) -> pl.Expr:
        for pattern, value in self.patterns:
            # Twice: adjacent occurrences share the separator the first pass consumed.
            for _ in range(2):
                expr = expr.str.replace_all(pattern, f"${{1}}{value.replace('$', '$$')}${{2}}")
        return expr

    def _value(self, value: Any) -> Any:
        """A decoded metadata value with the subject's ids replaced in its strings (keys kept)."""
        if isinstance(value, str):
            return self._token.sub(lambda m: self.swaps[m.group(0)], value)
        if isinstance(value, list):
            return [self._value(v) for v in value]
        if isinstance(value, dict):
            return {k: self._value(v) for k, v in value.items()}
        return value  # a number, a boolean or null: never an identifier

    def _whole(self, value: Any) -> Any:
        """A decoded metadata value of someone else's with string values that are an id, whole, replaced."""
        if isinstance(value, str):
            return self.swaps.get(value, value)
        if isinstance(value, list):
            return [self._whole(v) for v in value]
        if isinstance(value, dict):
            return {k: self._whole(v) for k, v in value.items()}
        return value

    def _texts(self, df: pl.DataFrame, rows: pl.Expr) -> list[str]:
        """The distinct metadata texts of `rows` that hold an id's JSON-escaped form (a token of it must)."""
        hit = rows & pl.col("metadata").str.contains_any(self.escaped)
        return df.lazy().filter(hit).select(pl.col("metadata").unique()).collect().to_series().to_list()

    def _records(self, df: pl.DataFrame) -> list[str]:
        """The metadata texts of earlier erasures' records whose subject is this user id."""
        forget = pl.col("operation").cast(pl.String) == "FORGET"
        docs = ((t, orjson.loads(t)) for t in self._texts(df, forget.fill_null(False)))
        return [t for t, d in docs if d.get("gdpr_erasure") is True and d.get("subject") == self.user_id]

    def _metadata(self, df: pl.DataFrame, own: pl.Expr) -> pl.Expr:
        meta = pl.col("metadata")
        rewritten = []
        for rows, rewrite in ((own, self._value), (~own, self._whole)):
            old, new = [], []
            # One decode per distinct metadata text, in Python: metadata has no fixed schema for json_decode.
            for text in self._texts(df, rows):
                value = orjson.loads(text)
                fixed = rewrite(value)
                if fixed != value:  # only a replaced string differs; an untouched text keeps its bytes
                    old.append(text)
                    new.append(orjson.dumps(fixed).decode())  # the stored form (`encode_metadata`'s)
            rewritten.append(meta.replace(old, new) if old else meta)
        return pl.when(own).then(rewritten[0]).otherwise(rewritten[1])

    def __call__(self, df: pl.DataFrame) -> pl.DataFrame:
        user = pl.col("user_id").cast(pl.String)
        theirs = (user == self.user_id).fill_null(False)
        own = theirs | pl.col("metadata").is_in(self._records(df))
        session = pl.col("session_id").cast(pl.String)
        new_user = pl.when(theirs).then(pl.lit(self.pseudonym, pl.String)).otherwise(user)
        new_session = pl.when(session.is_in(self.sessions)).then(
            session.replace_strict(self.session_map, default=None, return_dtype=pl.String)).otherwise(session)
        entries = pl.col("entry_ids")
        return df.with_columns(
            new_user.cast(df.schema["user_id"]).alias("user_id"),
            new_session.cast(df.schema["session_id"]).alias("session_id"),
            self._metadata(df, own),
            pl.when(own).then(self._text(pl.col("error_message"))).otherwise(pl.col("error_message")),
            pl.when(own).then(entries.list.eval(self._text(pl.element()))).otherwise(entries),
        )
