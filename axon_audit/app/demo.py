"""`axon-audit demo`: the whole product on a month of realistic load, printed as tables.

The workload (`demo_plan.office_traffic`) is 30 days of synthetic office-hours
traffic of a memory system for AI agents, with five planted incidents
(`demo_plan.plant_incidents`); concurrent asyncio "agents" replay it through
`log_batch` with its timestamps while others drive a `MemorySystem` (audited by
`audited`) on their own simulated office clock. The logger rotates into Parquet
+ JSON in the output folder (by default under the system temp dir), which is
then read back for the seed's queries, the statistics, the compliance report,
the security alerts (with each incident found or missed), verification, SQL,
and the DuckDB one-liner a user can paste.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from rich.console import Console

from axon_audit.app.demo_agents import AtSimulatedTime, memory_agent, replay
from axon_audit.app.demo_plan import CALENDAR, Incident, office_traffic, plant_incidents
from axon_audit.app.demo_steps import alerts_step, fmt, folder_size, ms, phase, report_step, titled_table, verify_step
from axon_audit.exceptions import AuditValueError
from axon_audit.integrations.memory import MemoryConfig, MemorySystem
from axon_audit.integrity.checkpoint import SigningKey
from axon_audit.io.layout import ExportLayout
from axon_audit.read.sources import open_source
from axon_audit.write.logger import AuditLogger

__all__ = ["DemoResult", "default_out", "duckdb_one_liner", "run_demo"]

MARKER = ".axon_audit_demo"  # written into the output folder: lets a rerun replace its own output only
CHUNK = 5_000  # events an agent logs (one log_batch) before handing the loop to the others
DAYS = 30


def default_out() -> Path:
    """Where the demo writes unless told: outside any checkout, replaced by the next run."""
    return Path(tempfile.gettempdir()) / "axon_audit_demo"


@dataclass
class DemoResult:
    """What a demo run did: counts, the folder, per-step seconds, the DuckDB command."""

    workload_events: int
    memory_events: int
    folder: Path
    steps: dict[str, float] = field(default_factory=dict)
    duckdb_command: str = ""
    incidents: list[Incident] = field(default_factory=list)
    found: dict[str, bool] = field(default_factory=dict)  # incident name -> its rule fired for it
    folder_bytes: int = 0

    @property
    def planted_events(self) -> int:
        return sum(i.events for i in self.incidents)

    @property
    def total_events(self) -> int:
        return self.workload_events + self.planted_events + self.memory_events


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


def run_demo(
    events: int = 1_000_000,
    out: str | Path | None = None,
    seed: int = 0,
    tasks: int = 8,
    console: Console | None = None,
    progress: bool | None = None,
) -> DemoResult:
    """Run the demo: log `events` events of a month's office-hours workload plus the
    planted incidents from `tasks` concurrent agents (plus about `events / 200`
    memory-system operations), rotate into `out` (default: `default_out()`), then
    query, summarize, check the incidents were found, and print. `progress`: show
    transient progress bars on stderr (default: when stderr is a terminal).

    Example:
        >>> import tempfile, io
        >>> from rich.console import Console
        >>> from axon_audit.app.demo import run_demo
        >>> folder = tempfile.mkdtemp()
        >>> result = run_demo(events=2000, out=folder, console=Console(file=io.StringIO()))
        >>> result.workload_events, (result.folder / "parquet").is_dir(), len(result.incidents)
        (2000, True, 5)
    """
    if isinstance(events, bool) or not isinstance(events, int) or events < 1:
        raise AuditValueError(f"events must be an int >= 1, got {events!r}")
    if isinstance(tasks, bool) or not isinstance(tasks, int) or not 1 <= tasks <= 256:
        raise AuditValueError(f"tasks must be an int in [1, 256], got {tasks!r}")
    console = console or Console()
    show = sys.stderr.isatty() if progress is None else progress
    out = default_out() if out is None else Path(out)
    _prepare_folder(out)
    memory_ops = max(100, events // 200)
    max_events = min(100_000, max(1_000, events // 10))
    # The month ends at today's UTC midnight: the same seed gives the same events all day.
    end = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=DAYS)
    result = DemoResult(events, 0, out)
    steps = result.steps

    t = time.perf_counter()
    with phase(show, "generating the workload"):
        df, result.incidents = plant_incidents(office_traffic(events, seed, start, DAYS), seed, start, DAYS)
    steps["generate workload"] = time.perf_counter() - t

    zones = ", ".join(name for name, _ in CALENDAR.zones)
    console.rule("[bold]axon_audit demo")
    console.print(
        f"Simulated: {DAYS} days ({start:%Y-%m-%d} to {end - timedelta(days=1):%Y-%m-%d} UTC) of synthetic "
        f"office-hours traffic of a memory system for AI agents: {events:,} events (seed {seed}), weekdays "
        f"08:00-19:00 local in {zones}, light weekends, plus {memory_ops:,} audited MemorySystem operations "
        f"of {max(1, tasks // 2)} agents on the same calendar. Logged by {tasks} concurrent agents through "
        f"`log_batch` with their timestamps; rotation every {max_events:,} events into [bold]{out}/[/bold] "
        "(Parquet + JSON)."
    )
    itable = titled_table(f"Planted incidents: {len(result.incidents)} ({result.planted_events:,} events), "
                          "each meant to trip one rule of the SecurityMonitor", ["incident", "rule", "planted"], text=3)
    for inc in result.incidents:
        itable.add_row(inc.name, inc.rule, inc.story)
    console.print(itable)

    # The demo's signing key lives in memory only; its public half is written beside the exports.
    signer = SigningKey.generate("axon-audit.demo/trail")
    audit = AuditLogger(max_events=max_events, auto_export_path=out, signing_key=signer)
    clocked = AtSimulatedTime(audit)
    memory = MemorySystem(MemoryConfig(max_entries=max(200, memory_ops // 4), compact_below=0.2),
                          audit_logger=clocked)
    chunks = [df.slice(o, CHUNK) for o in range(0, df.height, CHUNK)]
    memory_agents = max(1, tasks // 2)
    total_in = df.height + memory_ops

    with phase(show, "logging", total=total_in, rate=True) as update:
        started = time.perf_counter()
        done = [0]

        def advance(n: int) -> None:
            done[0] += n
            update(advance=n, rate=f"{done[0] / max(time.perf_counter() - started, 1e-9):,.0f} ev/s")

        async def main() -> None:
            per_agent = [memory_ops // memory_agents + (i < memory_ops % memory_agents) for i in range(memory_agents)]
            await asyncio.gather(
                *(replay(audit, chunks[i::tasks], advance) for i in range(tasks)),
                *(memory_agent(memory, i, n, seed, start, DAYS, advance) for i, n in enumerate(per_agent)),
            )

        asyncio.run(main())
        clocked.flush()
        steps["log (concurrent agents)"] = time.perf_counter() - started
    chunks.clear()  # the workload frames are not needed any more
    month = df["timestamp"].dt.strftime("%Y-%m").value_counts(sort=True)["timestamp"][0]  # the busiest month
    last = df["timestamp"].max()
    assert isinstance(last, datetime)  # the frame holds at least the planted events
    del df

    t = time.perf_counter()
    with phase(show, "writing the last exports"):
        audit.close()  # the last partial rotation, and wait for every write
    steps["final rotation + writes"] = time.perf_counter() - t
    counters = audit.get_stats()
    result.memory_events = counters["total_events_logged"] - events - result.planted_events
    console.print(
        f"logged {counters['total_events_logged']:,} events in {steps['log (concurrent agents)']:.1f} s "
        f"({counters['total_events_logged'] / steps['log (concurrent agents)']:,.0f} events/s), "
        f"{counters['rotations']} rotations, {counters['exported_events']:,} events exported"
    )

    # ---------------------------------------------------------------- files
    json_files = [d.path for d in ExportLayout(out).json_documents() if ExportLayout.is_rotation_document(d.name)]
    source = open_source(out)
    parquet_files = [Path(p) for p in source.files() if Path(p).suffix == ".parquet"]  # a local folder's files
    files = titled_table("Export folder", ["files", "count", "size", "bytes/event"])
    total = counters["total_events_logged"]
    for name, group in (("JSON (seed export format)", json_files), ("Parquet (zstd, by date)", parquet_files)):
        size = sum(p.stat().st_size for p in group)
        files.add_row(name, f"{len(group):,}", f"{size / 1e6:,.1f} MB", f"{size / max(total, 1):,.1f}")
    console.print(files)

    # ---------------------------------------------------------------- the seed's queries
    top_user = source.sql(
        "SELECT user_id FROM events WHERE user_id LIKE 'user_%' GROUP BY user_id ORDER BY count(*) DESC LIMIT 1"
    )["user_id"][0]
    now = last + timedelta(microseconds=1)  # "now" is the end of the simulated trail
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
    qtable = titled_table(f"The seed's queries (query_events over the export folder; \"last\" = before "
                          f"{now:%Y-%m-%d %H:%M} UTC, the trail's end)", ["query", "events", "time"])
    t_all = time.perf_counter()
    with phase(show, "queries", total=len(queries)) as update:
        for label, filters in queries:
            t = time.perf_counter()
            found = source.query_events(**filters)
            qtable.add_row(label, f"{len(found):,}", ms(time.perf_counter() - t))
            update(advance=1)
    steps["seed queries"] = time.perf_counter() - t_all
    console.print(qtable)

    # ---------------------------------------------------------------- statistics
    t = time.perf_counter()
    with phase(show, "statistics"):
        stats = source.get_statistics()
        user = source.get_user_statistics(top_user)
    steps["statistics"] = time.perf_counter() - t
    stable = titled_table(f"Statistics ({ms(steps['statistics'])})", ["figure", "value"])
    for key in ("total_events", "success_rate", "failure_count", "avg_duration_ms", "p95_duration_ms",
                "p99_duration_ms", "unique_users", "unique_sessions"):
        value = stats[key]
        stable.add_row(key, f"{value:.2%}" if key == "success_rate" else fmt(value))
    for key in ("total_operations", "most_common_operation", "last_activity"):
        stable.add_row(f"{top_user}: {key}", fmt(user[key]))
    console.print(stable)
    optable = titled_table("By operation", ["operation", "events", "share"])
    for op, n in sorted(stats["by_operation"].items(), key=lambda kv: -kv[1]):
        optable.add_row(op, f"{n:,}", f"{n / max(stats['total_events'], 1):.1%}")
    console.print(optable)

    # ---------------------------------------------------------------- compliance, security, integrity
    for step, show_step in (("compliance report", lambda _: report_step(source, month)),
                            ("security alerts", lambda _: alerts_step(source, result.incidents, result.found)),
                            ("integrity check", lambda update: verify_step(out, signer, update))):
        t = time.perf_counter()
        with phase(show, step, counts=step == "integrity check") as update:
            tables = show_step(update)
        steps[step] = time.perf_counter() - t
        tables[0].title = f"{tables[0].title} ({ms(steps[step])})"
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
    wtable = titled_table(f"SQL: users with most failures ({ms(steps['SQL: top failing users'])})",
                          ["user_id", "failures", "an error"])
    for row in worst.iter_rows():
        wtable.add_row(str(row[0]), f"{row[1]:,}", str(row[2]))
    console.print(wtable)

    # ---------------------------------------------------------------- timings and DuckDB
    ttable = titled_table("Timings", ["step", "time"])
    for name, seconds in steps.items():
        ttable.add_row(name, ms(seconds))
    console.print(ttable)

    import duckdb  # CLI-only: `import axon_audit` must not load duckdb

    sql, command = duckdb_one_liner(out, _python_for_display())
    result.duckdb_command = command
    t = time.perf_counter()
    relation = duckdb.sql(sql)
    assert relation is not None  # a SELECT gives a relation (None is for statements without a result)
    answer = relation.pl()
    elapsed = time.perf_counter() - t
    dtable = titled_table(f"Plain DuckDB over the exported Parquet ({ms(elapsed)})",
                          ["operation", "events", "failure %", "median ms"])
    for row in answer.iter_rows():
        dtable.add_row(*(fmt(v) for v in row))
    console.print(dtable)
    n_files, result.folder_bytes = folder_size(out)
    n_found = sum(result.found.values())
    console.print(f"Planted incidents found: {n_found} of {len(result.incidents)}. Output: {out}/ "
                  f"({n_files:,} files, {result.folder_bytes / 1e6:,.1f} MB; the next demo replaces it).",
                  markup=False, highlight=False, soft_wrap=True)
    console.print("Query the export yourself, with no axon_audit code:")
    console.print(command, markup=False, highlight=False, soft_wrap=True)
    return result
