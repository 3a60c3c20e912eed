"""The benchmark driver: every backend at every size, one subprocess per case.

A backend goes up the sizes until its next size is projected (linearly, from
the case before) to take longer than `--case-limit` seconds or more than
`--memory-limit` GiB; it is then reported with the size it reached and why.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from .baselines import backend_classes
from .report import write_outputs

FULL_SIZES = (10_000, 100_000, 1_000_000, 10_000_000)
QUICK_SIZES = (1_000, 10_000)
RESULTS = Path(__file__).parent / "results"


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        mem = 0
    versions = {}
    for pkg in ("polars", "pyarrow", "duckdb", "pydantic", "orjson", "numpy"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "load_avg_start": os.getloadavg(),
    }


def run_one(name: str, size: int, quick: bool, timeout: float) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = Path(fh.name)
    cmd = [sys.executable, "-m", "benchmarks.case", name, str(size), str(out)] + (["--quick"] if quick else [])
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=Path(__file__).parent.parent, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            return {"backend": name, "size": size, "error": proc.stderr.strip().splitlines()[-1:] or ["failed"],
                    "wall_s": time.perf_counter() - t0}
        return json.loads(out.read_text())
    except subprocess.TimeoutExpired:
        return {"backend": name, "size": size, "error": [f"timed out after {timeout:.0f} s"], "wall_s": timeout}
    finally:
        out.unlink(missing_ok=True)


def run(sizes: tuple[int, ...], backends: list[str], quick: bool, case_limit: float, memory_limit_gib: float,
        log: Any = print, command: str | None = None) -> dict[str, Any]:
    started = datetime.now(timezone.utc)
    info = machine()
    classes = backend_classes()
    cases: list[dict[str, Any]] = []
    reach: dict[str, dict[str, Any]] = {}
    for name in backends:
        reached, stopped, prev = None, None, None
        for size in sizes:
            if prev is not None and not quick:
                # Fixed costs (start-up, warm-up, per-event logging of a capped number of
                # calls) stay; the part that grew with the event count scales linearly.
                factor = size / prev["size"]
                scaled = min(prev.get("scaled_s", prev["wall_s"]), prev["wall_s"])
                proj_s = prev["wall_s"] + scaled * factor
                proj_gib = prev.get("peak_rss", 0) * factor / 2**30
                if proj_s > case_limit or proj_gib > memory_limit_gib:
                    stopped = (f"not run at {size:,}: projected {proj_s:,.0f} s (limit {case_limit:.0f} s) and "
                               f"{proj_gib:,.1f} GiB (limit {memory_limit_gib:.0f} GiB) from the {prev['size']:,} case")
                    log(f"  {name}: {stopped}")
                    break
            log(f"  {name} @ {size:,} ...")
            result = run_one(name, size, quick, timeout=max(case_limit * 2, 120))
            error = f" ERROR {result['error']}" if "error" in result else ""
            log(f"  {name} @ {size:,}: {result.get('wall_s', 0):.1f} s{error}")
            cases.append(result)
            if "error" in result:
                stopped = f"failed at {size:,}: {result['error'][0]}"
                break
            reached, prev = size, result
        reach[name] = {"label": classes[name].label, "reached": reached, "stopped": stopped}
    info["load_avg_end"] = os.getloadavg()
    return {
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quick": quick,
        "sizes": list(sizes),
        "command": command or ("make bench-quick" if quick else "make bench"),
        "machine": info,
        "backends": reach,
        "cases": cases,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes, few runs (under a minute)")
    ap.add_argument("--sizes", help="comma-separated event counts (default: 10K,100K,1M,10M; quick: 1K,10K)")
    ap.add_argument("--backends", help=f"comma-separated, of: {', '.join(backend_classes())}")
    ap.add_argument("--out", type=Path, default=None, help="results folder (default: benchmarks/results)")
    ap.add_argument("--case-limit", type=float, default=300.0, help="seconds one case may be projected to take")
    ap.add_argument("--memory-limit", type=float, default=14.0, help="GiB one case may be projected to use")
    args = ap.parse_args(argv)
    sizes = tuple(int(s) for s in args.sizes.split(",")) if args.sizes else (QUICK_SIZES if args.quick else FULL_SIZES)
    names = args.backends.split(",") if args.backends else list(backend_classes())
    unknown = set(names) - set(backend_classes())
    if unknown:
        ap.error(f"unknown backends {sorted(unknown)}")
    out = args.out or RESULTS
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    # The command as given, so a partial run's tables say how to repeat them.
    given = sys.argv[1:] if argv is None else argv
    command = "python -m benchmarks " + " ".join(given) if given else None
    results = run(sizes, names, args.quick, args.case_limit, args.memory_limit,
                  log=lambda m: print(m, flush=True), command=command)
    results["total_s"] = round(time.perf_counter() - t0, 1)
    results["limits"] = {"case_s": args.case_limit, "memory_gib": args.memory_limit}
    paths = write_outputs(results, out)
    print(f"done in {results['total_s']:.0f} s: " + ", ".join(str(p) for p in paths))
    return 1 if any("error" in c for c in results["cases"]) else 0


if __name__ == "__main__":
    sys.exit(main())
