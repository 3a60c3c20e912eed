"""The command line's shared parts: the bad-input error, times, filters and storage options.

`BadInput` is the error contract's exception: bad input found after click's own
parsing exits 2 with one line on stderr (`axon_audit.app.cli.main` prints it).
The option decorators give every command the same filter and object-storage
options, spelled and converted the same way.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import click

from axon_audit.exceptions import AuditValueError
from axon_audit.io.location import _S3_OPTIONS, resolve
from axon_audit.io.sealed import check_export_target
from axon_audit.model.enums import OPERATIONS, STATUSES
from axon_audit.model.timestamps import NAIVE_TIME_ENV, from_us, to_us

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "NAIVE_TIME_OPTION",
    "TIME",
    "BadInput",
    "choice",
    "output_file",
    "parse_storage_options",
    "parse_time",
    "query_filters",
    "with_filter_options",
    "with_storage_options",
]

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1

_RELATIVE = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


class BadInput(click.ClickException):
    """Bad input found after click's own parsing: exit 2, one line."""

    exit_code = EXIT_BAD_INPUT


def parse_time(text: str, option: str = "--since", *, now: datetime | None = None,
               naive_time: str | None = None) -> datetime:
    """An aware UTC datetime from ``1h``/``30m``/``2d``/``1w``/``1h30m`` (that long
    ago), ``now``, or an ISO 8601 date or time; one without offset follows the
    naive-time rule (`naive_time`, else ``$AXON_AUDIT_NAIVE_TIME``, else local
    time; see `axon_audit.model.timestamps`).

    Example:
        >>> from datetime import datetime, timezone
        >>> from axon_audit.app.options import parse_time
        >>> now = datetime(2025, 1, 15, 12, 0, tzinfo=timezone.utc)
        >>> parse_time("1h30m", now=now).isoformat()
        '2025-01-15T10:30:00+00:00'
        >>> parse_time("2025-01-01", naive_time="utc").isoformat()
        '2025-01-01T00:00:00+00:00'
        >>> from axon_audit.app.options import BadInput
        >>> try:
        ...     parse_time("yesterday")
        ... except BadInput as exc:
        ...     print(exc.message)
        --since: expected a relative time like 1h, 30m, 2d, 1w or an ISO 8601 time, got 'yesterday'
    """
    value = text.strip().lower()
    now = now or datetime.now(timezone.utc)
    if value == "now":
        return now
    m = _RELATIVE.match(value)
    if value and m and any(m.groups()):
        w, d, h, mi, s = (int(g or 0) for g in m.groups())
        return now - timedelta(weeks=w, days=d, hours=h, minutes=mi, seconds=s)
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadInput(
            f"{option}: expected a relative time like 1h, 30m, 2d, 1w or an ISO 8601 time, got {text!r}"
        ) from None
    try:
        return from_us(to_us(parsed, "the time", naive_time, bound="end" if option == "--until" else "start"))
    except AuditValueError as exc:  # a bad AXON_AUDIT_NAIVE_TIME, or a time out of range
        raise BadInput(f"{option}: {exc}") from None


_NAIVE_KEY = "axon_audit.naive_time"  # ctx.meta is shared by every context of one command line


def _keep_naive_time(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.meta[_NAIVE_KEY] = value.lower()


# Eager: set before any TIME option of the same command is converted.
NAIVE_TIME_OPTION = click.option(
    "--naive-time", type=click.Choice(["local", "utc"], case_sensitive=False), is_eager=True, expose_value=False,
    callback=_keep_naive_time,
    help=f"How an ISO time without offset reads: local (default) or utc (or set {NAIVE_TIME_ENV}).")


class _Time(click.ParamType):
    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        option = param.opts[0] if param is not None and param.opts else "time"
        try:
            return parse_time(value, option, naive_time=ctx.meta.get(_NAIVE_KEY) if ctx is not None else None)
        except BadInput as exc:
            self.fail(exc.message.split(": ", 1)[1], param, ctx)


TIME = _Time()


def output_file(target: str, option: str, *, source: str | None = None, force: bool = True,
                storage_options: dict[str, Any] | None = None) -> None:
    """Refuse a command's output file `target` inside an export folder (one holding a
    manifest, or the folder `source` the command reads) and, without `force`, over an
    existing file: bad input naming `option`. Sealed evidence is never written over."""
    try:
        where = resolve(target, argument=option)
        check_export_target(where, argument=option, force=True,
                            own=None if source is None else resolve(source, storage_options=storage_options))
    except AuditValueError as exc:
        raise BadInput(str(exc)) from None
    if not force and where.exists():
        raise BadInput(f"{option}: {target!r} already exists; pass --force to replace it")
    if where.is_local and not where.local_path().parent.is_dir():
        raise BadInput(f"{option}: the folder {str(where.local_path().parent)!r} does not exist; create it first")


def check_order(start: Any, end: Any) -> None:
    """Refuse `--since` after `--until`: such a window matches nothing, and an empty
    answer to a typo looks like a clean result."""
    if start is not None and end is not None and start > end:
        raise BadInput(f"--since ({start.isoformat()}) is after --until ({end.isoformat()})")


def choice(values: Sequence[str]) -> click.Choice:
    return click.Choice(list(values), case_sensitive=False)


def with_filter_options(fn: Callable) -> Callable:
    """The seed's filters as options (each may repeat: any of the values matches)."""
    options = [
        click.option("--user", "-u", "user_id", multiple=True, help="User id (repeat for several)."),
        click.option("--session", "session_id", multiple=True, help="Session id (repeat for several)."),
        click.option("--operation", "-o", "operation", multiple=True, type=choice(OPERATIONS),
                     help="Operation (repeat for several)."),
        click.option("--status", "-s", "status", multiple=True, type=choice(STATUSES),
                     help="Status (repeat for several)."),
        click.option("--since", "start_time", type=TIME,
                     help="Start: 1h, 30m, 2d, 1w or an ISO time (no offset: local time, see --naive-time)."),
        click.option("--until", "end_time", type=TIME, help="End: as --since."),
        NAIVE_TIME_OPTION,
        click.option("--entry", "entry_ids", multiple=True, help="Events touching this entry id (repeat)."),
        click.option("--event-id", "event_id", multiple=True, help="This event id (repeat)."),
        click.option("--meta", "metadata", multiple=True, metavar="KEY=VALUE",
                     help="Metadata key equals value (repeat: all must match)."),
        click.option("--error-contains", "error_contains", help="Error message contains this text."),
        click.option("--min-ms", "min_duration_ms", type=click.FloatRange(min=0), help="Duration at least (ms)."),
        click.option("--max-ms", "max_duration_ms", type=click.FloatRange(min=0), help="Duration at most (ms)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def query_filters(**given: Any) -> dict[str, Any]:
    """Click's values as `query_events` keywords (empty tuples mean: not given)."""
    out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in given.items() if v is not None and v != ()}
    check_order(out.get("start_time"), out.get("end_time"))
    if "metadata" in out:
        pairs = {}
        for item in out["metadata"]:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise BadInput(f"--meta: expected KEY=VALUE, got {item!r}")
            pairs[key.strip()] = value  # compared with the JSON value's text
        out["metadata"] = pairs
    return out


# storage_options that are switches: "true"/"false" on the command line.
_BOOL_OPTIONS = frozenset({"anonymous", "allow_bucket_creation", "allow_http", "aws_allow_http"})
_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def key_value(item: str, option: str, names: Sequence[str], word: str = "KEY") -> tuple[str, str]:
    """One ``KEY=VALUE`` argument of `option`: its key (lower-cased, one of `names`) and value.

    Example:
        >>> from axon_audit.app.options import key_value
        >>> key_value("Region=eu-west-1", "--storage-option", ["region"])
        ('region', 'eu-west-1')
    """
    key, sep, value = item.partition("=")
    key = key.strip().lower()
    if not sep or not key:
        hint = f"; {word.lower()}s: {', '.join(names)}" if word != "KEY" else ""
        raise BadInput(f"{option}: expected {word}=VALUE, got {item!r}{hint}")
    if key not in names:
        raise BadInput(f"{option}: unknown {word.lower()} {key!r}; expected one of {', '.join(names)}")
    return key, value


def parse_storage_options(pairs: Sequence[str], endpoint_url: str | None = None) -> dict[str, Any] | None:
    """`--storage-option KEY=VALUE` pairs (and `--endpoint-url`) as the
    `storage_options` of `resolve` / `open_archive`; None when none was given.

    Example:
        >>> from axon_audit.app.options import parse_storage_options
        >>> parse_storage_options(["region=eu-west-1", "anonymous=true"], "http://127.0.0.1:9000")
        {'region': 'eu-west-1', 'anonymous': True, 'endpoint_url': 'http://127.0.0.1:9000'}
        >>> parse_storage_options(["region"])
        Traceback (most recent call last):
        ...
        axon_audit.app.options.BadInput: --storage-option: expected KEY=VALUE, got 'region'
    """
    out: dict[str, Any] = {}
    given: dict[str, str] = {}  # pyarrow's name -> the option that set it (aliases set the same one)
    items = [("--storage-option", item) for item in pairs]
    if endpoint_url is not None:
        items.append(("--endpoint-url", f"endpoint_url={endpoint_url}"))
    for option, item in items:
        key, value = key_value(item, option, sorted(_S3_OPTIONS))
        name = _S3_OPTIONS[key] or key
        if name in given:
            raise BadInput(f"{option}: {key} is already set (by {given[name]})")
        given[name] = f"--storage-option {key}" if option == "--storage-option" else option
        if key in _BOOL_OPTIONS:
            if value.strip().lower() not in _BOOLS:
                raise BadInput(f"{option}: {key} takes true or false, got {value!r}")
            out[key] = _BOOLS[value.strip().lower()]
        else:
            out[key] = value
    return out or None


def with_storage_options(fn: Callable) -> Callable:
    """`--endpoint-url` and `--storage-option/-O KEY=VALUE`, handed to the command as
    one `storage_options` keyword (None when neither is given)."""

    @functools.wraps(fn)
    def command(*args: Any, endpoint_url: str | None, storage_option: tuple[str, ...], **kwargs: Any) -> Any:
        return fn(*args, storage_options=parse_storage_options(storage_option, endpoint_url), **kwargs)

    command = click.option(
        "--storage-option", "-O", "storage_option", multiple=True, metavar="KEY=VALUE",
        help="Object storage setting (repeat): region, access_key, secret_key, session_token, anonymous, "
             "endpoint_url, or the aws_… spellings. A local PATH ignores it.")(command)
    return click.option(
        "--endpoint-url", "endpoint_url", metavar="URL",
        help="S3-compatible endpoint for an s3:// PATH, e.g. http://127.0.0.1:9000 "
             "(default: $AWS_ENDPOINT_URL).")(command)

