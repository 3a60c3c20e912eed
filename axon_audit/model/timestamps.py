"""UTC time as integer microseconds since the Unix epoch: the one time form of a row.

Every stored timestamp lies in [`MIN_US`, `MAX_US`]: 0001-01-01T00:00:00Z to
9999-12-31T23:59:59.999999Z, the span a Python `datetime`, the export format's
ISO text and every reader (polars, pyarrow, DuckDB) can all hold. Bulk input is
checked against it at the door (`axon_audit.model.door`); a single
`AuditEvent(timestamp=...)` by `parse_timestamp`.

Naive times (a datetime without tzinfo, an ISO string without offset, a polars
or Arrow timestamp column without zone) follow one rule at every entry point:
they are LOCAL time by default (what `datetime.now()` gives), or UTC when asked
for (`naive_time="utc"` on `AuditLogger`/`AuditArchive`, ``--naive-time utc``
on the CLI, or the environment variable ``AXON_AUDIT_NAIVE_TIME=utc``).
`naive_time_rule` resolves the choice; `naive_to_us` converts one value and
`axon_audit.model.door` converts columns with the same zone (`local_zone`).

Daylight saving: a local time that occurs twice (clocks going back) is the
earlier instant (PEP 495 ``fold=0``, polars ``ambiguous="earliest"``). A local
time that never occurs (clocks going forward) is refused as an event time,
naming the row (an event is never moved); as a query bound it is the instant
of the change (a start bound; an end bound: the microsecond before it), so a
bound in the gap selects the events the wall clock puts on its side.

(Not named ``time``: a module shadowing the standard library's is a trap for
any tool that puts this folder on ``sys.path``.)
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from time import time_ns
from typing import Any, Literal
from zoneinfo import ZoneInfo

from axon_audit.exceptions import AuditTypeError, AuditValueError

__all__ = ["EPOCH", "MAX_US", "MIN_US", "NAIVE_TIME_ENV", "UTC", "LocalZone", "check_us", "format_us", "from_us",
           "local_zone", "naive_time_rule", "naive_to_us", "now_us", "parse_timestamp", "to_us"]

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
MIN_US = -62_135_596_800_000_000  # 0001-01-01T00:00:00Z
MAX_US = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z
RANGE_TEXT = "0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z"
NAIVE_TIME_ENV = "AXON_AUDIT_NAIVE_TIME"
NaiveTime = Literal["local", "utc"]
_ZONEINFO = "zoneinfo/"
# Names of UTC itself (tzdata's links), read as "UTC" so columns take polars' fast path.
_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "UCT", "Etc/UCT", "Universal", "Etc/Universal", "Zulu", "Etc/Zulu",
                        "GMT", "Etc/GMT", "GMT0", "Etc/GMT0", "GMT+0", "Etc/GMT+0", "GMT-0", "Etc/GMT-0",
                        "Greenwich", "Etc/Greenwich"})


def naive_time_rule(value: Any = None, argument: str = "naive_time") -> NaiveTime:
    """"local" or "utc": `value`, else ``$AXON_AUDIT_NAIVE_TIME``, else "local".

    Example:
        >>> from axon_audit.model.timestamps import naive_time_rule
        >>> naive_time_rule("UTC")
        'utc'
        >>> naive_time_rule("gmt")
        Traceback (most recent call last):
        ...
        axon_audit.exceptions.AuditValueError: naive_time must be 'local' or 'utc', got 'gmt'
    """
    if value is None:
        env = os.environ.get(NAIVE_TIME_ENV, "").strip()
        if not env:
            return "local"
        value, argument = env, NAIVE_TIME_ENV
    if isinstance(value, str) and value.strip().lower() in ("local", "utc"):
        return "utc" if value.strip().lower() == "utc" else "local"
    raise AuditValueError(f"{argument} must be 'local' or 'utc', got {value!r}")


@dataclass(frozen=True)
class LocalZone:
    """The host's time zone: `tz` and `name` from tzdata (polars converts columns
    with the name), or both None: the C library's local time (``TZ`` is a POSIX
    rule, or no tzdata), converted row by row through `datetime.astimezone`."""

    tz: tzinfo | None
    name: str | None


def _zone_name() -> str | None:
    """The IANA name from ``TZ`` or the ``/etc/localtime`` symlink (tzlocal's sources)."""
    tz = os.environ.get("TZ")
    if tz is not None:
        tz = tz.lstrip(":").strip()
        if tz == "":
            return "UTC"  # the C library reads an empty TZ as UTC
        if _ZONEINFO in tz:  # TZ=/usr/share/zoneinfo/Europe/Paris
            return tz.split(_ZONEINFO, 1)[1]
        return tz
    try:
        target = os.path.realpath("/etc/localtime")
    except OSError:
        target = ""
    if _ZONEINFO in target:
        return target.split(_ZONEINFO, 1)[1]
    try:
        return Path("/etc/timezone").read_text().strip() or None  # Debian keeps the name here too
    except OSError:
        return None


_ZONES: dict[tuple[Any, ...], LocalZone] = {}
_HALF_YEAR = 182 * 86_400


def _agrees(tz: tzinfo) -> bool:
    """Does `tz` give the C library's offsets (what `datetime.now()` uses), now and
    half a year on? Not when ``TZ`` changed without `time.tzset()`."""
    now = int(time.time())
    return all(datetime.fromtimestamp(t, tz).utcoffset() == timedelta(seconds=time.localtime(t).tm_gmtoff)
               for t in (now, now + _HALF_YEAR))


def local_zone() -> LocalZone:
    """The host's zone, looked up once per value of ``TZ`` and state of the C library."""
    key = (os.environ.get("TZ"), time.tzname, time.timezone, time.altzone)
    zone = _ZONES.get(key)
    if zone is None:
        name = _zone_name()
        name = "UTC" if name in _UTC_NAMES else name
        try:
            zone = LocalZone(ZoneInfo(name), name) if name else None
        except (KeyError, ValueError, OSError):  # a POSIX rule like "EST5EDT,M3.2.0,M11.1.0", or no tzdata
            zone = None
        if zone is not None and zone.tz is not None and not _agrees(zone.tz):
            zone = None  # the name is not what the process's clock follows: the clock wins
        if zone is None:
            # No IANA name: not a fixed offset (wrong across DST changes) but the C library's
            # localtime, which follows any TZ rule, one value at a time.
            zone = LocalZone(None, None)
        _ZONES[key] = zone
    return zone


def _gap_error(value: datetime, argument: str, zone: LocalZone) -> AuditValueError:
    return AuditValueError(f"{argument} {value.isoformat()} does not exist in local time ({zone.name or 'TZ rule'}: "
                           "the clock skipped it at a daylight-saving change); give it a UTC offset or use "
                           "naive_time='utc'")


def _change_instant(value: datetime, zone: tzinfo | None) -> datetime:
    """The instant local clocks jumped over the non-existent `value` (found by bisection:
    zoneinfo does not expose its transitions)."""
    # The two folds read `value` with the offsets before and after the change: one instant
    # on each side (which is which differs between zoneinfo and the C library).
    lo, hi = sorted(value.replace(tzinfo=zone, fold=f).astimezone(UTC) for f in (0, 1))
    while hi - lo > _ONE_US:
        mid = lo + (hi - lo) // 2
        if mid.astimezone(zone).replace(tzinfo=None) < value:
            lo = mid
        else:
            hi = mid
    return hi


def naive_to_us(value: datetime, naive_time: Any = None, argument: str = "timestamp", *,
                bound: Literal["start", "end"] | None = None) -> int:
    """Microseconds of a naive datetime read by the rule (`naive_time_rule`). A
    non-existent local time is refused; as a `bound` it is the instant of the
    change ("start") or the microsecond before it ("end")."""
    rule = naive_time_rule(naive_time)
    value = value.replace(tzinfo=None)
    try:
        if rule == "utc":
            return (value.replace(tzinfo=UTC) - EPOCH) // _ONE_US
        zone = local_zone()
        # fold=0: the earlier of a repeated hour (tz None: a naive value, read by the C library)
        utc = value.replace(tzinfo=zone.tz, fold=0).astimezone(UTC)
        if utc.astimezone(zone.tz).replace(tzinfo=None) != value:
            if not bound:
                raise _gap_error(value, argument, zone)
            utc = _change_instant(value, zone.tz) - (_ONE_US if bound == "end" else timedelta(0))
    except (OverflowError, ValueError) as exc:
        if isinstance(exc, AuditValueError):
            raise
        raise AuditValueError(f"{argument} {value} is outside {RANGE_TEXT}") from None
    return (utc - EPOCH) // _ONE_US


def now_us() -> int:
    """Microseconds since the Unix epoch, UTC."""
    return time_ns() // 1000


def to_us(value: datetime, argument: str = "timestamp", naive_time: Any = None, *,
          bound: Literal["start", "end"] | None = None) -> int:
    """Exact microseconds since the epoch. A naive datetime follows the naive-time
    rule (`naive_to_us`: local time unless `naive_time` or the environment says
    UTC); an aware one is taken as given."""
    if not isinstance(value, datetime):
        raise AuditTypeError(f"{argument} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        return naive_to_us(value, naive_time, argument, bound=bound)
    return (value - EPOCH) // _ONE_US


def check_us(us: int, argument: str = "timestamp") -> int:
    """`us` if it is a storable time (`MIN_US` to `MAX_US`), else an error naming `argument`.

    Example:
        >>> from axon_audit.model.timestamps import MAX_US, check_us
        >>> check_us(MAX_US) == MAX_US
        True
        >>> check_us(MAX_US + 1)
        Traceback (most recent call last):
        ...
        axon_audit.exceptions.AuditValueError: timestamp is outside 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z
    """
    if not MIN_US <= us <= MAX_US:
        raise AuditValueError(f"{argument} is outside {RANGE_TEXT}")
    return us


def from_us(us: int) -> datetime:
    """The aware UTC datetime for microseconds since the epoch."""
    return EPOCH + timedelta(microseconds=us)


def format_us(us: int) -> str:
    """`2025-01-15T10:30:45.123456Z`, the export format's timestamp (4-digit year:
    `strftime("%Y")` would write year 5 as ``5``, which no ISO parser reads back).

    Example:
        >>> from axon_audit.model.timestamps import MIN_US, format_us
        >>> format_us(1_736_937_045_123_456), format_us(MIN_US)
        ('2025-01-15T10:30:45.123456Z', '0001-01-01T00:00:00.000000Z')
    """
    return from_us(us).isoformat(timespec="microseconds")[:-6] + "Z"


def parse_timestamp(value: Any, argument: str = "timestamp", naive_time: Any = None) -> int:
    """Microseconds from a datetime or an ISO 8601 string (`…Z`, with offset, or
    naive: the naive-time rule), refused (naming `argument`) outside `MIN_US`..`MAX_US`."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise AuditValueError(f"{argument} must be an ISO 8601 timestamp, got {value!r}") from None
    return check_us(to_us(value, argument, naive_time), argument)
