"""The dashboard API's query parameters: parsed, checked and converted.

Every endpoint names the parameters it takes; anything else, a repeated one, or
a value of the wrong shape raises `BadParam`, whose message names the parameter
and what was expected (the server answers it as 400 ``{"error": …}``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from urllib.parse import parse_qs

from axon_audit.exceptions import AuditValueError
from axon_audit.model.enums import OPERATIONS, STATUSES
from axon_audit.model.timestamps import from_us, to_us

__all__ = ["EVENT_PARAMS", "MAX_LIMIT", "BadParam", "event_filters", "int_param", "parse_query"]

# An event table beyond this many rows is no longer a table to read in a browser.
MAX_LIMIT = 10_000

# Parameters every endpoint accepts: the token is the server's, not the endpoint's.
_ALWAYS = frozenset({"token"})


class BadParam(ValueError):
    """A query parameter the endpoint cannot use; the message names it."""


def parse_query(query: str, allowed: Iterable[str]) -> dict[str, str]:
    """The query string as one value per name; names outside `allowed` or given twice are refused.

    Example:
        >>> from axon_audit.dashboard.params import parse_query
        >>> parse_query("top=5", ["top"])
        {'top': '5'}
        >>> parse_query("tops=5", ["top"])
        Traceback (most recent call last):
        ...
        axon_audit.dashboard.params.BadParam: unknown parameter 'tops'; expected: top
    """
    names = set(allowed)
    try:
        pairs = parse_qs(query, keep_blank_values=True, strict_parsing=False, max_num_fields=50)
    except ValueError as exc:
        raise BadParam(f"query string: {exc}") from None
    out: dict[str, str] = {}
    for name, values in pairs.items():
        if name in _ALWAYS:
            continue
        if name not in names:
            expected = ", ".join(sorted(names)) or "no parameters"
            raise BadParam(f"unknown parameter {name!r}; expected: {expected}")
        if len(values) > 1:
            raise BadParam(f"{name}: given {len(values)} times; give it once")
        if values[0].strip():  # an empty field (a cleared form input) means: not given
            out[name] = values[0].strip()
    return out


def int_param(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    """`params[name]` as an int in [low, high] (default when absent).

    Example:
        >>> from axon_audit.dashboard.params import int_param
        >>> int_param({"top": "ten"}, "top", 10, 1, 100)
        Traceback (most recent call last):
        ...
        axon_audit.dashboard.params.BadParam: top: expected a whole number from 1 to 100, got 'ten'
    """
    text = params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise BadParam(f"{name}: expected a whole number from {low} to {high}, got {text!r}")
    return value


def _time(params: dict[str, str], name: str) -> datetime | None:
    text = params.get(name)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadParam(f"{name}: expected an ISO 8601 date or time like 2025-01-31 or "
                       f"2025-01-31T12:00:00Z, got {text!r}") from None
    try:  # naive: UTC, as the page labels it (a browser's wall clock is not the server's local time)
        return from_us(to_us(parsed, name, "utc", bound="end" if name == "until" else "start"))
    except AuditValueError as exc:
        raise BadParam(f"{name}: {exc}") from None


def _choice(params: dict[str, str], name: str, values: tuple[str, ...]) -> str | None:
    text = params.get(name)
    if text is None:
        return None
    if text.upper() not in values:
        raise BadParam(f"{name}: expected one of {', '.join(values)}, got {text!r}")
    return text.upper()


EVENT_PARAMS = ("user_id", "operation", "status", "since", "until", "limit")


def event_filters(params: dict[str, str], default_limit: int = 100) -> tuple[dict[str, object], int]:
    """The `scan` filters and the row limit of an event-table request.

    Example:
        >>> from axon_audit.dashboard.params import BadParam, event_filters
        >>> event_filters({"operation": "store", "limit": "5"})
        ({'operation': 'STORE'}, 5)
        >>> try:
        ...     event_filters({"since": "2025-02-01", "until": "2025-01-01"})
        ... except BadParam as exc:
        ...     print(exc)
        since (2025-02-01T00:00:00+00:00) is after until (2025-01-01T00:00:00+00:00)
    """
    filters: dict[str, object] = {}
    if "user_id" in params:
        filters["user_id"] = params["user_id"]
    for name, values in (("operation", OPERATIONS), ("status", STATUSES)):
        if (value := _choice(params, name, tuple(values))) is not None:
            filters[name] = value
    start, end = _time(params, "since"), _time(params, "until")
    if start is not None and end is not None and start > end:
        # An empty window from a typo would look like a clean result.
        raise BadParam(f"since ({start.isoformat()}) is after until ({end.isoformat()})")
    if start is not None:
        filters["start_time"] = start
    if end is not None:
        filters["end_time"] = end
    return filters, int_param(params, "limit", default_limit, 1, MAX_LIMIT)
