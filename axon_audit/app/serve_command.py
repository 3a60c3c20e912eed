"""`axon-audit serve PATH`: the local read-only web dashboard (`axon_audit.dashboard`).

The command checks its options (a non-loopback host needs a token; the access
log never goes inside PATH), opens the folder, starts the server and prints its
URL on stderr, then serves until Ctrl-C (or SIGTERM), when it writes the access
log out. `SERVE_COMMANDS` is what `axon_audit.app.commands.COMMANDS` adds.
"""

from __future__ import annotations

import getpass
import os
import re
import signal
import sys
import threading
import webbrowser
from pathlib import Path
from types import FrameType
from typing import Any

import click

from axon_audit.app.options import BadInput, with_storage_options
from axon_audit.dashboard.server import Dashboard, is_loopback, make_server
from axon_audit.io.location import resolve
from axon_audit.read.sources import open_source
from axon_audit.write.logger import AuditLogger

__all__ = ["SERVE_COMMANDS", "access_log_default", "serve"]

_TOKEN = re.compile(r"^[A-Za-z0-9._~+/=-]{8,256}$")


def access_log_default(path: str) -> str:
    """The access log of a local folder: its sibling "<PATH>-dashboard-access".

    Example:
        >>> from axon_audit.app.serve_command import access_log_default
        >>> access_log_default("/data/audit/")
        '/data/audit-dashboard-access'
    """
    local = Path(os.path.abspath(path))
    return str(local.parent / f"{local.name}-dashboard-access")


def _inside(child: str, parent: str, storage_options: dict[str, Any] | None) -> bool:
    """Whether the folder `child` is `parent` or under it (both local, or both URIs)."""
    a = resolve(child, storage_options=storage_options, argument="--access-log")
    b = resolve(parent, storage_options=storage_options)
    if a.is_local and b.is_local:
        ca, cb = Path(os.path.realpath(a.local_path())), Path(os.path.realpath(b.local_path()))
        return ca == cb or cb in ca.parents
    ua, ub = a.uri.rstrip("/") + "/", b.uri.rstrip("/") + "/"
    return ua.startswith(ub)


def _check_options(path: str, host: str, token: str | None, access_log: str | None, no_access_log: bool,
                   storage_options: dict[str, Any] | None) -> str | None:
    """The access-log folder to use (None: none), or BadInput naming the option."""
    if token is not None and not _TOKEN.match(token):
        raise BadInput("--token: expected 8 to 256 characters of letters, digits and ._~+/=- "
                       "(it goes into a cookie and a URL)")
    if not is_loopback(host) and token is None:
        raise BadInput(f"--host: {host!r} is reachable from other machines; pass --token T "
                       "(or set AXON_AUDIT_DASHBOARD_TOKEN) to serve beyond 127.0.0.1")
    if no_access_log:
        if access_log is not None:
            raise BadInput("--access-log: given with --no-access-log; pass one of them")
        return None
    remote = "://" in path and not path.lower().startswith("file://")
    if access_log is None:
        if remote:
            raise BadInput("--access-log: required for an object-storage PATH (a folder for the dashboard's "
                           "own audit events), or pass --no-access-log")
        access_log = access_log_default(path)
    if _inside(access_log, path, storage_options):
        raise BadInput(f"--access-log: {access_log!r} is inside PATH {path!r}; the folder read is sealed "
                       "evidence and is never written into")
    return access_log


@click.command()
@click.argument("path")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (beyond loopback only with --token).")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port (0: any free port).")
@click.option("--token", envvar="AXON_AUDIT_DASHBOARD_TOKEN", default=None,
              help="Every request must carry it (Bearer header, or ?token= once, which sets a cookie); "
                   "default: $AXON_AUDIT_DASHBOARD_TOKEN.")
@click.option("--access-log", "access_log", metavar="DIR", default=None,
              help="Export folder recording every API request as a RECALL event "
                   "(default for a local PATH: <PATH>-dashboard-access; required for s3://).")
@click.option("--no-access-log", is_flag=True, help="Do not record the dashboard's reads.")
@click.option("--analyst", default=None, help="user_id of the access-log events (default: $USER or 'analyst').")
@click.option("--open/--no-open", "open_browser", default=False, show_default=True,
              help="Open the dashboard in a web browser.")
@with_storage_options
def serve(path: str, host: str, port: int, token: str | None, access_log: str | None, no_access_log: bool,
          analyst: str | None, open_browser: bool, storage_options: dict[str, Any] | None) -> None:
    """A local, read-only web dashboard over the folder: totals, events over time,
    failures, latency, top users, security alerts, an event table, per-user pages
    and the integrity check. Serves until Ctrl-C.

    \b
    Example:
      axon-audit serve audit_demo
      axon-audit serve audit_demo --port 0 --analyst alice
    """
    token = token or None  # an empty environment variable means: none
    log_dir = _check_options(path, host, token, access_log, no_access_log, storage_options)
    source = open_source(path, storage_options=storage_options)
    who = analyst or os.environ.get("USER") or _login() or "analyst"
    logger = AuditLogger(auto_export_path=log_dir, storage_options=storage_options) if log_dir else None
    dashboard = Dashboard(source, path, token=token, access_log=logger, analyst=who,
                          verify_options={"storage_options": storage_options} if storage_options else None)
    try:
        server = make_server(dashboard, host, port)
    except OSError as exc:
        if logger is not None:
            logger.close()
        raise BadInput(f"--port: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound_port = server.server_address[1]
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{bound_port}/" + (f"?token={token}" if token else "")
    dashboard.start()
    err = sys.stderr
    err.write(f"axon-audit: serving {path} at {url}\n")
    err.write(f"axon-audit: access log: {log_dir}\n" if log_dir else "axon-audit: access log: off\n")
    err.write("axon-audit: press Ctrl-C to stop\n")
    err.flush()
    if open_browser:
        webbrowser.open(url)
    previous = signal.signal(signal.SIGTERM, _interrupt) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        dashboard.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        err.write("axon-audit: stopped" + (f"; access log written to {log_dir}\n" if log_dir else "\n"))


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the server as Ctrl-C does: the access log is written out


def _login() -> str | None:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return None


SERVE_COMMANDS: tuple[click.Command, ...] = (serve,)
