"""What the read API returns besides frames: `EventList` (events, as a list) and
`Statistics` (a statistics dict), each a plain list/dict with a notebook view.

Both stay what they were (a `list` of `AuditEvent`, a `dict` of JSON-ready
values but the `datetime`s): equal to the plain list/dict, sliced, pickled and
`json.dumps`-ed as one. Only their `repr` and `_repr_html_` are added.
"""

from __future__ import annotations

from typing import Any

from axon_audit.display.cards import events_html, statistics_card
from axon_audit.model.event import AuditEvent

__all__ = ["EventList", "Statistics"]

#: A longer list's repr shows this many events, then how many there are.
_REPR_EVENTS = 10


class EventList(list[AuditEvent]):
    """The events a query found (newest first): a `list`, shown in a notebook as a
    table of the first rows and how many there are.

    Example:
        >>> from axon_audit import AuditLogger
        >>> audit = AuditLogger()
        >>> _ = audit.log("store", user_id="ann")
        >>> events = audit.query_events()
        >>> events == list(events), "1 events" in events._repr_html_()
        (True, True)
    """

    __slots__ = ()

    def __repr__(self) -> str:
        if len(self) <= _REPR_EVENTS:  # short: exactly the list's repr
            return list.__repr__(self)
        head = ", ".join(map(repr, self[:_REPR_EVENTS]))
        return f"[{head}, ... {len(self) - _REPR_EVENTS:,} more] ({len(self):,} events)"

    def _repr_html_(self) -> str:
        return events_html(self)


class Statistics(dict[str, Any]):
    """`get_statistics()` / `get_user_statistics()`: a `dict`, shown in a notebook as a
    card (success rate as a percentage, times in UTC, counts by operation and status).

    Example:
        >>> from axon_audit import AuditLogger
        >>> audit = AuditLogger()
        >>> _ = audit.log("store"); _ = audit.log("recall", status="failure")
        >>> s = audit.get_statistics()
        >>> s == dict(s), "50.00%" in s._repr_html_()
        (True, True)
    """

    __slots__ = ()

    def _repr_html_(self) -> str:
        return statistics_card(self)
