"""Opt-in PII redaction of event metadata before it is stored.

A `PIIRedactor` holds a list of `Detector`s (a regex, an optional validator such as
the Luhn check, an optional cheap polars prefilter) and replaces every match in
metadata keys and values with ``[REDACTED:<name>]``. Only metadata is touched:
event ids, user/session ids and entry ids are never rewritten.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import polars as pl

from axon_audit.exceptions import AuditTypeError
from axon_audit.model.coerce import encode_metadata

__all__ = ["DEFAULT_DETECTORS", "Detector", "PIIRedactor", "luhn_valid"]


def luhn_valid(number: str) -> bool:
    """True when the digits of `number` (spaces and dashes ignored) pass the Luhn check.

    Example:
        >>> from axon_audit import luhn_valid
        >>> luhn_valid("4111 1111 1111 1111"), luhn_valid("4111 1111 1111 1112")
        (True, False)
    """
    digits = [int(c) for c in number if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _valid_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Detector:
    """One kind of PII: a Python regex, an optional validator of each match, and an
    optional polars (Rust regex) prefilter that every text holding a match satisfies.

    Example:
        >>> from axon_audit import Detector, PIIRedactor
        >>> badge = Detector("badge", r"\\bBADGE-\\d{6}\\b", prefilter=r"BADGE-")
        >>> PIIRedactor([badge]).redact({"note": "lost BADGE-123456"})
        {'note': 'lost [REDACTED:badge]'}
    """

    name: str
    pattern: str | re.Pattern[str]
    validate: Callable[[str], bool] | None = None
    prefilter: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise AuditTypeError(f"Detector name must be a non-empty str, got {self.name!r}")
        if isinstance(self.pattern, str):
            object.__setattr__(self, "pattern", re.compile(self.pattern))
        elif not isinstance(self.pattern, re.Pattern):
            raise AuditTypeError(f"Detector pattern must be a str or re.Pattern, got {type(self.pattern).__name__}")


_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
DEFAULT_DETECTORS: tuple[Detector, ...] = (
    Detector("email", r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", prefilter="@"),
    Detector("card", r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])", luhn_valid, prefilter=r"\d[ -]?\d[ -]?\d{3}"),
    Detector("ssn", r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])",
             prefilter=r"\d{3}-\d{2}-\d{4}"),
    Detector("ipv4", rf"(?<![\d.]){_OCTET}(?:\.{_OCTET}){{3}}(?![\d.])", prefilter=r"\d\.\d+\.\d+\.\d"),
    Detector("ipv6", r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])", _valid_ip,
             prefilter=r"[0-9A-Fa-f]*:[0-9A-Fa-f]*:"),
    Detector("phone", r"(?<![\w+])(?<!\d[ .-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]\d{3,4}"
             r"(?![ .-]?\d)(?!\w)"
             r"|(?<![\w+])\+\d{8,15}(?!\w)", prefilter=r"\d{3,4}[ .-]\d{3,4}|\+\d{8}"),
)


class PIIRedactor:
    """Replace PII in metadata with ``[REDACTED:<detector>]`` (keys and values, nested).

    Pass it to `AuditLogger(redact_pii=...)` (``True`` means the default detectors),
    or call it on a metadata dict. An int value that holds PII (a card number
    as a number) becomes the redaction text.

    Example:
        >>> from axon_audit import AuditLogger, PIIRedactor
        >>> r = PIIRedactor()
        >>> r.redact({"contact": "ann@example.com, +1 415-555-0100", "card": 4111111111111111, "n": 3})
        {'contact': '[REDACTED:email], [REDACTED:phone]', 'card': '[REDACTED:card]', 'n': 3}
        >>> audit = AuditLogger(redact_pii=True)
        >>> audit.log("store", user_id="u1", metadata={"ip": "10.0.0.7"}).metadata
        {'ip': '[REDACTED:ipv4]'}
    """

    def __init__(self, detectors: Iterable[Detector] = DEFAULT_DETECTORS, replacement: str = "[REDACTED:{name}]"):
        self.detectors = tuple(detectors)
        for i, d in enumerate(self.detectors):
            if not isinstance(d, Detector):
                raise AuditTypeError(f"detectors[{i}] must be a Detector, got {type(d).__name__}")
        if not isinstance(replacement, str):
            raise AuditTypeError(f"replacement must be a str, got {type(replacement).__name__}")
        self.replacement = replacement
        prefilters = [d.prefilter for d in self.detectors]
        # One polars regex that every text holding PII matches (None: every text is a candidate).
        self._prefilter = None if None in prefilters else "|".join(f"(?:{p})" for p in prefilters)
        # The same screen in Python (the prefilters use syntax both regex engines share).
        self._screen = None if self._prefilter is None else re.compile(self._prefilter)
        self._subs = [(d.pattern, self._replacer(d)) for d in self.detectors]

    def redact_text(self, text: str) -> str:
        """`text` with every detected PII replaced."""
        if self._screen is not None and self._screen.search(text) is None:
            return text
        for pattern, replace in self._subs:
            text = pattern.sub(replace, text)  # type: ignore[union-attr]
        return text

    def _replacer(self, d: Detector) -> Callable[[re.Match[str]], str]:
        out = self.replacement.format(name=d.name)
        if d.validate is None:
            return lambda m: out
        return lambda m: out if d.validate(m.group(0)) else m.group(0)  # type: ignore[misc]

    def find(self, text: str) -> list[tuple[str, str]]:
        """The (detector, match) pairs in `text`.

        Example:
            >>> from axon_audit import PIIRedactor
            >>> PIIRedactor().find("SSN 123-45-6789 from 192.168.1.20")
            [('ssn', '123-45-6789'), ('ipv4', '192.168.1.20')]
        """
        found = []
        for d in self.detectors:
            for m in d.pattern.finditer(text):  # type: ignore[union-attr]
                if d.validate is None or d.validate(m.group(0)):
                    found.append((d.name, m.group(0)))
            text = d.pattern.sub(self._replacer(d), text)  # type: ignore[union-attr]
        return found

    def redact(self, metadata: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of `metadata` with PII replaced in every key and string (or int) value."""
        return self._value(metadata)

    __call__ = redact

    def _value(self, v: Any) -> Any:
        if isinstance(v, str):
            return self.redact_text(v)
        if isinstance(v, Mapping):
            return {(self.redact_text(k) if isinstance(k, str) else k): self._value(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [self._value(x) for x in v]
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 1_000_000_000_000:
            text = str(v)
            red = self.redact_text(text)
            return v if red == text else red
        return v

    def redact_frame(self, df: pl.DataFrame) -> pl.DataFrame:
        """`df` with its `metadata` column (JSON text) redacted. Rows are first screened
        by the vectorized prefilter; only rows that may hold PII are decoded in Python."""
        if "metadata" not in df.columns or df["metadata"].null_count() == df.height:
            return df
        meta = df["metadata"]
        if self._prefilter is None:
            candidates = meta.is_not_null()
        else:
            candidates = meta.str.contains(self._prefilter).fill_null(False)
        idx = candidates.arg_true()
        if idx.len() == 0:
            return df
        # Per-row Python only for the screened rows: validators (Luhn, IP parsing) need it.
        fixed = [encode_metadata(self._value(orjson.loads(meta[i]))) for i in idx.to_list()]
        return df.with_columns(meta.scatter(idx, pl.Series(fixed, dtype=pl.String)))

    def __repr__(self) -> str:
        return f"PIIRedactor(detectors={[d.name for d in self.detectors]})"


def as_redactor(value: Any) -> PIIRedactor | None:
    """The logger's `redact_pii` argument as a `PIIRedactor` (or None when off)."""
    if value is None or value is False:
        return None
    if value is True:
        return PIIRedactor()
    if isinstance(value, PIIRedactor):
        return value
    raise AuditTypeError(f"redact_pii must be True, False, None or a PIIRedactor, got {type(value).__name__}")
