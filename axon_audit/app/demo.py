"""`axon-audit demo`: the whole product on a realistic load, printed as tables.

Several asyncio "agents" replay the seeded workload (`axon_audit.workload`)
through the real `log_event` path while others drive a `MemorySystem` (whose
calls are audited by `audited`); the logger rotates into Parquet + JSON in the
output folder; then the folder is read back for the seed's queries, the
statistics, SQL, and the DuckDB one-liner a user can paste.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from axon_audit.compliance.monitor import SecurityMonitor
from axon_audit.compliance.report import compliance_report
from axon_audit.exceptions import AuditValueError
from axon_audit.integrations.hooks import audit_context
from axon_audit.integrations.memory import MemoryConfig, MemorySystem
from axon_audit.integrity.checkpoint import SigningKey
from axon_audit.integrity.proofs import prove, verify_inclusion
from axon_audit.integrity.verify import verify
from axon_audit.io.layout import ExportLayout
from axon_audit.read.sources import open_source
from axon_audit.workload import generate_events, iter_log_calls
from axon_audit.write.logger import AuditLogger

__all__ = ["DemoResult", "duckdb_one_liner", "run_demo"]

MARKER = ".axon_audit_demo"  # written into the output folder: lets a rerun replace its own output only
YIELD_EVERY = 1_000  # events an agent logs before handing the loop to the others


@dataclass
class DemoResult:
    """What a demo run did: counts, the folder, per-step seconds, the DuckDB command."""

    workload_events: int
    memory_events: int
    folder: Path
    steps: dict[str, float] = field(default_factory=dict)
    duckdb_command: str = ""

    @property
    def total_events(self) -> int:
        return self.workload_events + self.memory_events


def duckdb_one_liner(folder: str | Path, python: str = "python") -> tuple[str, str]:
    """The SQL over the folder's Parquet and a shell command that runs it with plain DuckDB.

    Example:
        >>> sql, cmd = duckdb_one_liner("audit_demo")
        >>> "read_parquet('audit_demo/parquet/**/*.parquet'" in sql, cmd.startswith("python -c ")
        (True, True)
    """
    glob = f"{Path(folder).as_posix()}/{ExportLayout.PARQUET_GLOB}".replace("'", "''")
    sql = ("SELECT operation, count(*) AS events, round(100 * avg((status = 'FAILURE')::INT), 2) AS failure_pct, "
           "round(median(duration_ms), 1) AS median_ms "
           f"FROM read_parquet('{glob}', hive_partitioning = true) GROUP BY operation ORDER BY events DESC")
    code = f'import duckdb; duckdb.sql("{sql}").show()'
    if any(c in code for c in '$`\\!') or code.count('"') != 2:
        import shlex

        return sql, f"{python} -c {shlex.quote(code)}"
    return sql, f'{python} -c "{code.replace(chr(34), chr(92) + chr(34))}"'


def _python_for_display() -> str:
    exe = Path(sys.executable)
    try:
        rel = os.path.relpath(exe)
    except ValueError:
        return str(exe)
    return rel if not rel.startswith("..") else str(exe)


def _prepare_folder(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise AuditValueError(f"out {str(out)!r} is a file, expected a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise AuditValueError(
                f"out {str(out)!r} is not empty and was not written by the demo; choose another folder"
            )
        shutil.rmtree(out)  # our own previous run: replace it, so the counts below are this run's
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by `axon-audit demo`; a rerun replaces this folder\n")


async def _replay(audit: AuditLogger, df: pl.DataFrame, advance: Callable[[int], None]) -> None:
    """One agent: the workload's events through `log_event`, yielding now and then."""
    log_event = audit.log_event
    n = 0
    for kwargs in iter_log_calls(df):
        await log_event(**kwargs)
        n += 1
        if n == YIELD_EVERY:
            advance(n)
            n = 0
            await asyncio.sleep(0)
    advance(n)


async def _memory_agent(memory: MemorySystem, agent: int, ops: int, seed: int,
                        advance: Callable[[int], None]) -> None:
    """One user of the memory system: stores, recalls, forgets, imports, compacts."""
    rng = random.Random(seed * 1_000 + agent)
    words = ["tea", "meeting", "project", "invoice", "travel", "birthday", "password", "report"]
    mine: list[str] = []
    with audit_context(user_id=f"agent_{agent:02d}", session_id=f"agent_{agent:02d}_s{seed}"):
        for i in range(ops):
            roll = rng.random()
            try:
                if roll < 0.40:
                    mine.append(await memory.store(f"{rng.choice(words)} note {i}", importance=round(rng.random(), 2),
                                                   tags=[rng.choice(["work", "home"])]))
                elif roll < 0.85:
                    await memory.recall(rng.choice(words), k=rng.choice([3, 5, 10]))
                elif roll < 0.95:
                    # Some ids were already forgotten (by compaction): a PARTIAL event, as in real life.
                    picks = rng.sample(mine, min(len(mine), 2)) + (["entry_gone"] if rng.random() < 0.2 else [])
                    await memory.forget(picks)
                    mine = [m for m in mine if m not in picks]
                elif roll < 0.98:
                    await memory.import_data([f"{w} imported" for w in rng.sample(words, 4)])
                elif roll < 0.99:
                    await memory.export()
                else:
                    await memory.compact()
            except AuditValueError:
                # "memory is full": audited as FAILURE already; make room as an operator would.
                await memory.compact(session_id="maintenance")
            if i % 50 == 49:
                advance(50)
                await asyncio.sleep(0)
    advance(ops % 50)


def _timed_table(title: str, columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold")
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    return table


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _report_step(source: Any, month: str) -> list[Any]:
    report = compliance_report(source, month)
    d = report.to_dict()
    summary = _timed_table(f"Compliance report {d['period']}", ["figure", "value"])
    summary.add_row("events", _fmt(d["total_events"]))
    summary.add_row("users", _fmt(d["users"]))
    summary.add_row("success rate", f"{d['success_rate']:.2%}")
    for op in ("STORE", "RECALL", "FORGET", "EXPORT"):
        summary.add_row(f"{op} events", _fmt(d["operations"].get(op, 0)))
    users = _timed_table("Most active users this month",
                         ["user", "total", "stores", "recalls", "deletions"])
    top = sorted(d["user_activity"].items(), key=lambda kv: -kv[1]["total"])[:5]
    for user, a in top:
        users.add_row(user, _fmt(a["total"]), _fmt(a["stores"]), _fmt(a["recalls"]), _fmt(a["deletions"]))
    return [summary, users]


def _alerts_step(source: Any) -> list[Any]:
    alerts = SecurityMonitor().evaluate(source)
    table = _timed_table(f"Security alerts: {len(alerts):,}", ["rule", "alerts"])
    for rule, n in sorted(alerts.by_rule().items(), key=lambda kv: -kv[1]):
        table.add_row(rule, _fmt(n))
    worst = _timed_table("Most severe alerts", ["rule", "severity", "user", "events", "threshold", "window (UTC)"])
    for a in list(alerts)[:5]:
        worst.add_row(a.rule, a.severity, a.user_id or "(all users)", _fmt(a.count), _fmt(a.threshold),
                      f"{a.window_start:%Y-%m-%d %H:%M} +{a.window_end - a.window_start}")
    return [table, worst] if len(alerts) else [table]


def _verify_step(out: Path, signer: SigningKey) -> list[Any]:
    """Verify the folder with the public key alone, keep its checkpoint, and prove one event."""
    public = out / "demo-verifier.pub"
    public.write_text(str(signer.verifier()) + "\n")
    t = time.perf_counter()
    outcome = verify(out, public_key=public)
    seconds = time.perf_counter() - t
    table = _timed_table("Integrity check (Merkle log, signed checkpoints)", ["figure", "value"])
    table.add_row("result", "[green]intact[/green]" if outcome.ok else "[red]PROBLEMS[/red]")
    table.add_row("files checked", _fmt(outcome.files_checked))
    table.add_row("events checked (each once)", f"{_fmt(outcome.events_checked)} "
                  f"({outcome.events_checked / max(seconds, 1e-9):,.0f} events/s)")
    table.add_row("signed checkpoints checked", _fmt(outcome.signatures_checked))
    for problem in outcome.problems[:5]:
        table.add_row("problem", problem)
    if outcome.ok and outcome.checkpoints:
        (origin, note), = outcome.checkpoints.items()
        (out / "demo-checkpoint.txt").write_text(note)
        table.add_row("checkpoint kept", f"{origin} at {_fmt(outcome.tree_size)} events -> {out}/demo-checkpoint.txt")
        some = ExportLayout(out).parts(strict=True)[0].path
        event_id = pl.read_parquet(some, columns=["event_id"])["event_id"][0]
        bundle = prove(out, event_id)
        checked = verify_inclusion(bundle, public)
        table.add_row("inclusion proof", f"{event_id}: position {bundle['leaf_index']:,} of {checked.size:,}, "
                                         f"{len(bundle['proof'])} hashes, verified with the public key")
        table.add_row("check it yourself", f"axon-audit verify {out} --public-key {public} "
                                           f"--checkpoint {out}/demo-checkpoint.txt")
    return [table]


def run_demo(
    events: int = 1_000_000,
    out: str | Path = "audit_demo",
    seed: int = 0,
    tasks: int = 8,
    console: Console | None = None,
) -> DemoResult:
    """Run the demo: log `events` workload events from `tasks` concurrent agents
    (plus about `events / 200` memory-system operations), rotate into `out`,
    then query, summarize and print. Returns what it did.

    Example:
        >>> import tempfile, io
        >>> from rich.console import Console
        >>> from axon_audit.app.demo import run_demo
        >>> folder = tempfile.mkdtemp()
        >>> result = run_demo(events=2000, out=folder, console=Console(file=io.StringIO()))
        >>> result.workload_events, (result.folder / "parquet").is_dir()
        (2000, True)
    """
    if isinstance(events, bool) or not isinstance(events, int) or events < 1:
        raise AuditValueError(f"events must be an int >= 1, got {events!r}")
    if isinstance(tasks, bool) or not isinstance(tasks, int) or not 1 <= tasks <= 256:
        raise AuditValueError(f"tasks must be an int in [1, 256], got {tasks!r}")
    console = console or Console()
    out = Path(out)
    _prepare_folder(out)
    memory_ops = max(100, events // 200)
    max_events = min(100_000, max(1_000, events // 10))
    result = DemoResult(events, 0, out)
    steps = result.steps

    console.rule("[bold]axon_audit demo")
    console.print(
        f"{events:,} workload events (seed {seed}) from {tasks} concurrent agents through `log_event`, "
        f"plus {memory_ops:,} audited MemorySystem operations; rotation every {max_events:,} events "
        f"into [bold]{out}/[/bold] (Parquet + JSON)."
    )

    t = time.perf_counter()
    df = generate_events(events, seed=seed)
    steps["generate workload"] = time.perf_counter() - t

    # The demo's signing key lives in memory only; its public half is written beside the exports.
    signer = SigningKey.generate("axon-audit.demo/trail")
    audit = AuditLogger(max_events=max_events, auto_export_path=out, signing_key=signer)
    memory = MemorySystem(MemoryConfig(max_entries=max(200, memory_ops // 4), compact_below=0.2),
                          audit_logger=audit)
    slices = [df.slice(i * (events // tasks) + min(i, events % tasks), events // tasks + (i < events % tasks))
              for i in range(tasks)]
    memory_agents = max(1, tasks // 2)

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=console) as progress:
        bar = progress.add_task("logging", total=events + memory_ops, rate="")
        started = time.perf_counter()
        done = [0]

        def advance(n: int) -> None:
            done[0] += n
            rate = done[0] / max(time.perf_counter() - started, 1e-9)
            progress.update(bar, advance=n, rate=f"{rate:,.0f} ev/s")

        async def main() -> None:
            per_agent = [memory_ops // memory_agents + (i < memory_ops % memory_agents) for i in range(memory_agents)]
            await asyncio.gather(
                *(_replay(audit, s, advance) for s in slices),
                *(_memory_agent(memory, i, n, seed, advance) for i, n in enumerate(per_agent)),
            )

        asyncio.run(main())
        steps["log (concurrent agents)"] = time.perf_counter() - started
    slices.clear()  # the workload frames are not needed any more
    del df

    t = time.perf_counter()
    audit.close()  # the last partial rotation, and wait for every write
    steps["final rotation + writes"] = time.perf_counter() - t
    counters = audit.get_stats()
    result.memory_events = counters["total_events_logged"] - events
    console.print(
        f"logged {counters['total_events_logged']:,} events in {steps['log (concurrent agents)']:.1f} s "
        f"({counters['total_events_logged'] / steps['log (concurrent agents)']:,.0f} events/s), "
        f"{counters['rotations']} rotations, {counters['exported_events']:,} events exported"
    )

    # ---------------------------------------------------------------- files
    json_files = [d.path for d in ExportLayout(out).json_documents() if ExportLayout.is_rotation_document(d.name)]
    source = open_source(out)
    parquet_files = [Path(p) for p in source.files() if Path(p).suffix == ".parquet"]  # a local folder's files
    files = _timed_table("Export folder", ["files", "count", "size", "bytes/event"])
    total = counters["total_events_logged"]
    for name, group in (("JSON (seed export format)", json_files), ("Parquet (zstd, by date)", parquet_files)):
        size = sum(p.stat().st_size for p in group)
        files.add_row(name, f"{len(group):,}", f"{size / 1e6:,.1f} MB", f"{size / max(total, 1):,.1f}")
    console.print(files)

    # ---------------------------------------------------------------- the seed's queries
    top_user = source.sql(
        "SELECT user_id FROM events WHERE user_id LIKE 'user_%' GROUP BY user_id ORDER BY count(*) DESC LIMIT 1"
    )["user_id"][0]
    now = datetime.now()
    queries: list[tuple[str, dict[str, Any]]] = [
        (f"all events of {top_user}", {"user_id": top_user}),
        (f"{top_user}, STORE", {"user_id": top_user, "operation": "STORE"}),
        (f"{top_user}, STORE, last hour", {"user_id": top_user, "operation": "STORE",
                                           "start_time": now - timedelta(hours=1)}),
        ("last hour", {"start_time": now - timedelta(hours=1)}),
        ("failures", {"status": "FAILURE"}),
        ("successful stores", {"operation": "STORE", "status": "SUCCESS"}),
        (f"failed recalls of {top_user}, last 24 h", {"user_id": top_user, "operation": "RECALL",
                                                      "status": "FAILURE", "start_time": now - timedelta(days=1)}),
        ("events on entry_0000001 or entry_0000002", {"entry_ids": ["entry_0000001", "entry_0000002"]}),
        ("newest 100 failures", {"status": "FAILURE", "limit": 100}),
    ]
    qtable = _timed_table("The seed's queries (query_events over the export folder)", ["query", "events", "time"])
    t_all = time.perf_counter()
    for label, filters in queries:
        t = time.perf_counter()
        found = source.query_events(**filters)
        qtable.add_row(label, f"{len(found):,}", _ms(time.perf_counter() - t))
    steps["seed queries"] = time.perf_counter() - t_all
    console.print(qtable)

    # ---------------------------------------------------------------- statistics
    t = time.perf_counter()
    stats = source.get_statistics()
    user = source.get_user_statistics(top_user)
    steps["statistics"] = time.perf_counter() - t
    stable = _timed_table(f"Statistics ({_ms(steps['statistics'])})", ["figure", "value"])
    for key in ("total_events", "success_rate", "failure_count", "avg_duration_ms", "p95_duration_ms",
                "p99_duration_ms", "unique_users", "unique_sessions"):
        value = stats[key]
        stable.add_row(key, f"{value:.2%}" if key == "success_rate" else _fmt(value))
    for key in ("total_operations", "most_common_operation", "last_activity"):
        stable.add_row(f"{top_user}: {key}", _fmt(user[key]))
    console.print(stable)
    optable = _timed_table("By operation", ["operation", "events", "share"])
    for op, n in sorted(stats["by_operation"].items(), key=lambda kv: -kv[1]):
        optable.add_row(op, f"{n:,}", f"{n / max(stats['total_events'], 1):.1%}")
    console.print(optable)

    # ---------------------------------------------------------------- compliance, security, integrity
    month = datetime.now().strftime("%Y-%m")
    for step, show in (("compliance report", lambda: _report_step(source, month)),
                       ("security alerts", lambda: _alerts_step(source)),
                       ("integrity check", lambda: _verify_step(out, signer))):
        t = time.perf_counter()
        tables = show()
        steps[step] = time.perf_counter() - t
        tables[0].title = f"{tables[0].title} ({_ms(steps[step])})"
        tables[0].min_width = len(tables[0].title)  # keep the title on one line
        for table in tables:
            console.print(table)

    # ---------------------------------------------------------------- SQL
    t = time.perf_counter()
    worst = source.sql(
        "SELECT user_id, count(*) AS failures, any_value(error_message) AS an_error FROM events "
        "WHERE status = 'FAILURE' GROUP BY user_id ORDER BY failures DESC, user_id LIMIT 5"
    )
    steps["SQL: top failing users"] = time.perf_counter() - t
    wtable = _timed_table(f"SQL: users with most failures ({_ms(steps['SQL: top failing users'])})",
                          ["user_id", "failures", "an error"])
    for row in worst.iter_rows():
        wtable.add_row(str(row[0]), f"{row[1]:,}", str(row[2]))
    console.print(wtable)

    # ---------------------------------------------------------------- timings and DuckDB
    ttable = _timed_table("Timings", ["step", "time"])
    for name, seconds in steps.items():
        ttable.add_row(name, _ms(seconds))
    console.print(ttable)

    import duckdb

    sql, command = duckdb_one_liner(out, _python_for_display())
    result.duckdb_command = command
    t = time.perf_counter()
    relation = duckdb.sql(sql)
    assert relation is not None  # a SELECT gives a relation (None is for statements without a result)
    answer = relation.pl()
    elapsed = time.perf_counter() - t
    dtable = _timed_table(f"Plain DuckDB over the exported Parquet ({_ms(elapsed)})",
                          ["operation", "events", "failure %", "median ms"])
    for row in answer.iter_rows():
        dtable.add_row(*(_fmt(v) for v in row))
    console.print(dtable)
    console.print("Query the export yourself, with no axon_audit code:")
    console.print(command, markup=False, highlight=False, soft_wrap=True)
    return result

