"""Results → `results.json` (raw), `results.md` (tables, budget check), `scaling.png` (log-log)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OURS = "axon_audit"

#: figure key → (label, unit). Every figure: lower is better.
FIGURES: dict[str, tuple[str, str]] = {
    "log_event": ("`await log_event` per event", "µs"),
    "log": ("sync `log` per event", "µs"),
    "ingest": ("bulk ingest per event", "µs"),
    "query_filtered": ("filtered query (user + operation + last hour)", "ms"),
    "query_10k": ("query returning 10 K events (newest of a user)", "ms"),
    "lookup_entry": ("entry-id lookup", "ms"),
    "statistics": ("`get_statistics`", "ms"),
    "user_statistics": ("`get_user_statistics`", "ms"),
    "export_json": ("JSON export per event", "µs"),
    "rotation": ("`log_batch` (polars pieces of 5 K) + rotation every 100 K, end to end, per event", "µs"),
    "parquet": ("Parquet encoding alone (rotation's writer, no integrity) per event", "µs"),
    "memory_own": ("memory per event, own account (axon_audit: Arrow buffers)", "B"),
    "memory_estimated": ("memory per event, polars estimated_size", "B"),
    "memory_rss": ("memory per event, RSS delta", "B"),
    "json_bytes": ("JSON export on disk per event", "B"),
    "parquet_bytes": ("Parquet on disk per event (axon_audit: rotation's files)", "B"),
    "store_disk": ("store on disk per event", "B"),
}

# DESIGN.md's budget rows: (row, figure, size rule, limit, how the limit reads)
BUDGET: list[tuple[str, str, str, float, str]] = [
    ("`await log_event(...)`, one event, full arguments", "log_event", "largest", 2.0, "≤ 2 µs"),
    ("bulk ingest (`log_batch` from Arrow)", "ingest", "largest", 0.2, "≥ 5 M events/s (≤ 0.2 µs/event)"),
    ("memory in the hot store (Arrow buffers)", "memory_own", "largest", 100.0, "≤ 100 B/event"),
    ("filtered query (user + operation + time) over 10 M events", "query_filtered", 10_000_000, 20.0, "≤ 20 ms"),
    ("`get_statistics()` over 10 M events", "statistics", 10_000_000, 50.0, "≤ 50 ms"),
    ("`query_events` returning 10 K events as objects", "query_10k", "largest", 20.0, "≤ 20 ms"),
    ("JSON export in the seed format", "export_json", "largest", 1.0, "≥ 1 M events/s (≤ 1 µs/event)"),
    ("Parquet encoding (no integrity): speed", "parquet", "largest", 0.5, "≥ 2 M events/s (≤ 0.5 µs/event)"),
    ("rotation to Parquet: size (the files, every column)", "parquet_bytes", "largest", 30.0,
     "≤ 30 B/event on disk"),
]


def _fmt(v: float | None) -> str:
    if v is None:
        return "–"
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def _size(n: int) -> str:
    return f"{n // 1_000_000} M" if n >= 1_000_000 else f"{n // 1_000} K" if n >= 1000 else str(n)


def _index(results: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    return {(c["backend"], c["size"]): c for c in results["cases"] if "figures" in c}


def _cell(fig: dict[str, Any] | None) -> str:
    if fig is None:
        return "–"
    if fig.get("min") is None or fig.get("runs", 1) == 1:
        return _fmt(fig["median"])
    return f"{_fmt(fig['median'])} <sub>{_fmt(fig['min'])}–{_fmt(fig['max'])}</sub>"


def budget_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    idx = _index(results)
    ours = sorted(s for (b, s) in idx if b == OURS)
    rows = []
    for row, fig, rule, limit, reads in BUDGET:
        size = (ours[-1] if ours else None) if rule == "largest" else rule
        case = idx.get((OURS, size)) if size is not None else None
        value = case["figures"].get(fig, {}).get("median") if case else None
        if value is None:
            verdict = f"not measured ({_size(rule) if isinstance(rule, int) else 'no'} case)"
        else:
            verdict = "**met**" if value <= limit else "**not met**"
        rows.append({"row": row, "figure": fig, "budget": reads, "size": size, "value": value,
                     "unit": FIGURES[fig][1], "verdict": verdict})
    return rows


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    idx = _index(results)
    names = list(results["backends"])
    lines = [
        f"# axon_audit benchmarks ({'quick' if results['quick'] else 'full'} run)",
        "",
        f"`{results['command']}` on {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}, "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v) + ".",
        f"Started {results['started']}, {results.get('total_s', 0) / 60:.1f} min in all"
        + (f" (limits per case: {results['limits']['case_s']:.0f} s, {results['limits']['memory_gib']:.0f} GiB)"
           if "limits" in results else "")
        + "; load average "
        f"{m['load_avg_start'][0]:.1f} at the start and {m['load_avg_end'][0]:.1f} at the end "
        "(the machine is shared: absolute figures are noisy, ratios within one run are what count).",
        "",
        "Cells: median <sub>min–max</sub> over the runs after a warm-up; ratio = baseline / axon_audit "
        "(above 1: axon_audit is faster or smaller). Per-event logging is measured over up to 20 K calls per run "
        "into a store already holding the size's events. Memory (own account): axon_audit's distinct Arrow buffer "
        "bytes (string views and their data buffers, validity, offsets; polars' estimated_size, which leaves the "
        "16-byte views out, beside it). axon_audit's Parquet on disk: the files a real rotation wrote "
        "(`log_batch` pieces of 5 K, rotation every 100 K, every column the files carry).",
        "",
        "## Budget (DESIGN.md)",
        "",
        "| budget row | budget | measured | at | verdict |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in budget_rows(results):
        lines.append(f"| {r['row']} | {r['budget']} | {_fmt(r['value'])} {r['unit']} | "
                     f"{_size(r['size']) if r['size'] else '–'} | {r['verdict']} |")
    lines += ["", "## Reach", "", "| backend | largest size | note |", "| --- | --- | --- |"]
    for name in names:
        b = results["backends"][name]
        lines.append(f"| {b['label']} | {_size(b['reached']) if b['reached'] else '–'} | {b['stopped'] or ''} |")
    for size in results["sizes"]:
        present = [n for n in names if (n, size) in idx]
        if not present:
            continue
        head = ["figure", "unit"]
        for n in present:
            head.append(results["backends"][n]["label"])
            if n != OURS:
                head.append("ratio")
        lines += ["", f"## {_size(size)} events", "", "| " + " | ".join(head) + " |",
                  "| " + " | ".join(["---"] * len(head)) + " |"]
        ours = idx.get((OURS, size))
        for key, (label, unit) in FIGURES.items():
            figs = [idx[(n, size)]["figures"].get(key) for n in present]
            if all(f is None for f in figs):
                continue
            base = ours["figures"].get(key) if ours else None
            cells = [label, unit]
            for n, f in zip(present, figs, strict=True):
                cells.append(_cell(f))
                if n != OURS:
                    ok = f is not None and base is not None and base["median"] > 0 and f["median"] is not None
                    cells.append(f"{f['median'] / base['median']:.1f}×" if ok else "–")
            lines.append("| " + " | ".join(cells) + " |")
    errors = [c for c in results["cases"] if "error" in c]
    if errors:
        lines += ["", "## Errors", ""] + [f"- {c['backend']} @ {c['size']:,}: {c['error']}" for c in errors]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = _index(results)
    keys = [k for k in FIGURES if any(k in c["figures"] for c in idx.values())]
    cols = 4
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
    colors = {name: f"C{i}" for i, name in enumerate(results["backends"])}  # one color per backend throughout
    for ax, key in zip(axes.flat, keys, strict=False):
        label, unit = FIGURES[key]
        for name, b in results["backends"].items():
            pts = sorted((s, c["figures"][key]) for (n, s), c in idx.items()
                         if n == name and key in c["figures"] and c["figures"][key]["median"] > 0)
            if not pts:  # (an RSS delta can be <= 0 for a store kept on disk: nothing to plot)
                continue
            xs = [s for s, _ in pts]
            ys = [max(f["median"], 1e-6) for _, f in pts]
            lo = [max(f["min"], 1e-6) if f.get("min") is not None else y for (_, f), y in zip(pts, ys, strict=True)]
            hi = [f["max"] if f.get("max") is not None else y for (_, f), y in zip(pts, ys, strict=True)]
            line, = ax.plot(xs, ys, marker="o", lw=2.2 if name == OURS else 1.2, label=b["label"], color=colors[name])
            ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.15)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(label.replace("`", ""), fontsize=9)
        ax.set_xlabel("events", fontsize=8)
        ax.set_ylabel(unit, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, which="both", alpha=0.25)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colors[n], marker="o", lw=2.2 if n == OURS else 1.2) for n in results["backends"]]
    labels = [b["label"] for b in results["backends"].values()]
    fig.legend(handles, labels, loc="lower right", fontsize=9)
    fig.suptitle(f"axon_audit vs baselines (median, band = min–max; {results['started']})", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_outputs(results: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    raw, md, png = out / "results.json", out / "results.md", out / "scaling.png"
    raw.write_text(json.dumps(results, indent=1, default=str) + "\n")
    md.write_text(markdown(results))
    plot(results, png)
    return [raw, md, png]


def main() -> None:
    """Re-render the table and plot from an existing results.json."""
    import sys

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results"
    results = json.loads((out / "results.json").read_text())
    write_outputs(results, out)


if __name__ == "__main__":
    main()
