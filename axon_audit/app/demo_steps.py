"""The demo's steps as tables (report, alerts with the planted incidents, integrity),
their number formats, and the transient progress bars of its long phases.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from axon_audit.app.demo_plan import Incident, check_incidents
from axon_audit.compliance.monitor import SecurityMonitor
from axon_audit.compliance.report import compliance_report
from axon_audit.integrity.checkpoint import SigningKey
from axon_audit.integrity.proofs import prove, verify_inclusion
from axon_audit.integrity.verify import verify
from axon_audit.io.layout import ExportLayout

__all__ = ["alerts_step", "fmt", "folder_size", "ms", "phase", "report_step", "titled_table", "verify_step"]

Update = Callable[..., None]  # rich's Progress.update for one task: advance=, completed=, total=, rate=


@contextmanager
def phase(show: bool, label: str, total: float | None = None, rate: bool = False,
          counts: bool | None = None) -> Iterator[Update]:
    """A transient progress bar on stderr for one phase (as `verify`'s in the CLI);
    a no-op when hidden (stderr not a terminal), so piped output holds the tables only.
    `counts`: show done/total (default: when `total` is known; a pulsing bar otherwise)."""
    if not show:
        yield lambda **_: None
        return
    columns: list[Any] = [TextColumn(label), BarColumn()]
    if total is not None if counts is None else counts:
        columns.append(MofNCompleteColumn())
    if rate:
        columns.append(TextColumn("{task.fields[rate]}"))
    bar = Progress(*columns, TimeElapsedColumn(), console=Console(stderr=True, highlight=False), transient=True)
    with bar:
        task = bar.add_task(label, total=total, rate="")

        def update(**changes: Any) -> None:
            bar.update(task, **changes)

        yield update


def titled_table(title: str, columns: list[str], text: int = 1) -> Table:
    """A table whose first `text` columns are left-aligned and the rest (figures) right-aligned."""
    table = Table(title=title, title_justify="left", title_style="bold")
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i < text else "right")
    return table


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def folder_size(folder: Path) -> tuple[int, int]:
    """Files and bytes under `folder`."""
    sizes = [p.stat().st_size for p in folder.rglob("*") if p.is_file()]
    return len(sizes), sum(sizes)


def report_step(source: Any, month: str) -> list[Any]:
    report = compliance_report(source, month)
    d = report.to_dict()
    summary = titled_table(f"Compliance report {d['period']}", ["figure", "value"])
    summary.add_row("events", fmt(d["total_events"]))
    summary.add_row("users", fmt(d["users"]))
    summary.add_row("success rate", f"{d['success_rate']:.2%}")
    for op in ("STORE", "RECALL", "FORGET", "EXPORT"):
        summary.add_row(f"{op} events", fmt(d["operations"].get(op, 0)))
    users = titled_table("Most active users this month", ["user", "total", "stores", "recalls", "deletions"])
    top = sorted(d["user_activity"].items(), key=lambda kv: -kv[1]["total"])[:5]
    for user, a in top:
        users.add_row(user, fmt(a["total"]), fmt(a["stores"]), fmt(a["recalls"]), fmt(a["deletions"]))
    return [summary, users]


def alerts_step(source: Any, incidents: list[Incident], found: dict[str, bool]) -> list[Any]:
    """The monitor's alerts by rule, then each planted incident found or missed, then
    the alerts no incident explains (the synthetic traffic's own: none expected)."""
    alerts = SecurityMonitor().evaluate(source)
    hits, others = check_incidents(incidents, list(alerts))
    found.update(hits)
    table = titled_table(f"Security alerts: {len(alerts):,}", ["rule", "alerts"])
    for rule, n in sorted(alerts.by_rule().items(), key=lambda kv: -kv[1]):
        table.add_row(rule, fmt(n))
    planted = titled_table("Planted incidents (the rest of the traffic is synthetic office-hours load)",
                           ["incident", "rule", "result", "what was planted", "alerts about it"], text=5)
    for i in incidents:
        about = sorted({a.rule for a in alerts if i.explains(a)})
        planted.add_row(i.name, i.rule, "[green]found[/green]" if hits[i.name] else "[red]missed[/red]",
                        i.story, ", ".join(about) or "-")
    normal = titled_table(f"Alerts from the normal traffic: {len(others):,} (expected: none)",
                          ["rule", "severity", "user", "events", "threshold", "window (UTC)"])
    for a in others[:10]:
        normal.add_row(a.rule, a.severity, a.user_id or "(all users)", fmt(a.count), fmt(a.threshold),
                       f"{a.window_start:%Y-%m-%d %H:%M} +{a.window_end - a.window_start}")
    return [table, planted, normal] if others else [table, planted, "Alerts from the normal traffic: none."]


def verify_step(out: Path, signer: SigningKey, update: Update) -> list[Any]:
    """Verify the folder with the public key alone, keep its checkpoint, and prove one event."""
    public = out / "demo-verifier.pub"
    public.write_text(str(signer.verifier()) + "\n")
    t = time.perf_counter()
    outcome = verify(out, public_key=public, progress=lambda done, total: update(completed=done, total=total))
    seconds = time.perf_counter() - t
    table = titled_table("Integrity check (Merkle log, signed checkpoints)", ["figure", "value"])
    table.add_row("result", "[green]intact[/green]" if outcome.ok else "[red]PROBLEMS[/red]")
    table.add_row("files checked", fmt(outcome.files_checked))
    table.add_row("events checked (each once)", f"{fmt(outcome.events_checked)} "
                  f"({outcome.events_checked / max(seconds, 1e-9):,.0f} events/s)")
    table.add_row("signed checkpoints checked", fmt(outcome.signatures_checked))
    for problem in outcome.problems[:5]:
        table.add_row("problem", problem)
    if outcome.ok and outcome.checkpoints:
        (origin, note), = outcome.checkpoints.items()
        (out / "demo-checkpoint.txt").write_text(note)
        table.add_row("checkpoint kept", f"{origin} at {fmt(outcome.tree_size)} events -> {out}/demo-checkpoint.txt")
        some = ExportLayout(out).parts(strict=True)[0].path
        event_id = pl.read_parquet(some, columns=["event_id"])["event_id"][0]
        bundle = prove(out, event_id)
        checked = verify_inclusion(bundle, public)
        table.add_row("inclusion proof", f"{event_id}: position {bundle['leaf_index']:,} of {checked.size:,}, "
                                         f"{len(bundle['proof'])} hashes, verified with the public key")
        table.add_row("check it yourself", f"axon-audit verify {out} --public-key {public} "
                                           f"--checkpoint {out}/demo-checkpoint.txt")
    return [table]
