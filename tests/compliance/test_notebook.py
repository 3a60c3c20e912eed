"""The analysis notebook runs top to bottom in a real Jupyter kernel, its plots are real images an analyst can
read (measured on the figures the cells drew), and it leaves nothing in the temporary folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "compliance_analysis.ipynb"

# Run in the kernel after each plot cell: what the figure it left in `fig` / `ax` shows, drawn again with Agg
# (the inline backend closed it once shown, which takes its canvas away).
PROBE = """
import json as _json
from matplotlib.backends.backend_agg import FigureCanvasAgg as _Agg
_canvas = _Agg(fig); _canvas.draw(); _r = _canvas.get_renderer()
_ticks = [t.get_window_extent(_r) for t in ax.get_xticklabels() if t.get_visible() and t.get_text()]
_legend = ax.get_legend()
_fliers = [y for line in ax.lines if line.get_linestyle() == "None" for y in line.get_ydata()]
print(_json.dumps({
    "title": ax.get_title(), "xlabel": ax.get_xlabel(), "yscale": ax.get_yscale(), "ticks": len(_ticks),
    "ticks_overlap": any(a.overlaps(b) for i, a in enumerate(_ticks) for b in _ticks[i + 1:]),
    "legend": [t.get_text() for t in _legend.get_texts()] if _legend else None,
    "legend_over_axes": bool(_legend and _legend.get_window_extent(_r).overlaps(ax.get_window_extent(_r))),
    "first_x": str(ax.lines[0].get_xdata()[0]) if ax.lines else None,
    "fliers": len(_fliers), "highest_flier": max(_fliers, default=None),
    "slowest": max(float(d.max()) for d in data) if "data" in globals() else None,
}))
"""


def _run(nb: nbformat.NotebookNode, client: NotebookClient) -> tuple[str, dict[str, dict]]:
    """Executes every cell as `NotebookClient.execute` does, probing the kernel after the first and each plot cell."""
    work, probes = "", {}
    client.reset_execution_trackers()
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
            is_plot = "plot" in cell.metadata.get("tags", [])
            if cell.cell_type != "code" or not (is_plot or not work):
                continue
            probe = nbformat.v4.new_code_cell("print(WORK)" if not work else PROBE)
            client.execute_cell(probe, index, store_history=False)
            nb.cells[index] = cell  # execute_cell stores what it ran at that index
            text = probe.outputs[0]["text"]
            if not work:
                work = text.strip()
            else:
                found = json.loads(text)
                probes[found["title"]] = found
    return work, probes


@pytest.mark.slow
def test_notebook_executes_and_every_plot_cell_draws(tmp_path, monkeypatch):
    # A kernelspec for this interpreter: "python3" could resolve to another Python on PATH.
    spec = tmp_path / "kernels" / "axon-audit-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "axon_audit tests", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    temp = tmp_path / "temp"  # the kernel's temporary folder: it inherits the environment
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))

    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit the notebook without outputs"
    client = NotebookClient(nb, kernel_name="axon-audit-test", timeout=180,
                            resources={"metadata": {"path": str(tmp_path)}})
    work, probes = _run(nb, client)

    # Everything written went to one folder under the temporary folder, and the last cell removed it.
    assert Path(work).parent == temp and Path(work).name.startswith("axon_audit_notebook_")
    assert not list(temp.glob("axon_audit_notebook_*")), "the notebook left its folder behind"
    assert not Path(work).exists()

    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors
    plots = [c for c in code if "plot" in c.metadata.get("tags", [])]
    assert len(plots) == 4
    for cell in plots:
        images = [o for o in cell.outputs if o.output_type == "display_data" and "image/png" in o.get("data", {})]
        assert images, f"plot cell drew no image:\n{cell.source[:80]}"
        assert len(images[0]["data"]["image/png"]) > 5_000  # a real picture, not an empty canvas
    html = [o["data"]["text/html"] for c in code for o in c.outputs if "text/html" in o.get("data", {})]
    for title in ("AuditLogger", "Compliance report", "Security alerts", "Subject access report", "Retention"):
        assert any(title in h for h in html), title
    texts = "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for c in code for o in c.outputs)
    assert "events exported for user_00013" in texts and "[REDACTED:card]" in texts
    assert "0 files still name user_00013" in texts and "True" in texts and "events of a subject" in texts
    # The monitor finds the planted patterns, and nothing in the normal traffic.
    table = next(c for c in code if c.source.startswith("alerts.to_frame()")).outputs[0]["data"]["text/plain"]
    rows = [[f.strip("│ ") for f in line.split("┆")] for line in table.splitlines() if "┆" in line and " UTC " in line]
    assert {row[0] for row in rows} == {"excessive_deletions", "user_deletion_spike", "failure_burst",
                                        "user_failure_spike", "recall_sweep"}

    # The plots: date ticks that do not overlap, on axes that say UTC, with the data in UTC; legends off the data.
    assert len(probes) == 4, list(probes)
    for title, found in probes.items():
        assert found["ticks"] >= 2 and not found["ticks_overlap"], title
        assert found["legend"] is None or not found["legend_over_axes"], title
    times = [found for title, found in probes.items() if "UTC" in found["xlabel"]]
    assert len(times) == 2
    for found in times:  # the first bucket is the month's first hour in UTC, not shifted to a local zone
        assert found["first_x"] == "2026-11-01 00:00:00+00:00", found
    hourly = next(f for t, f in probes.items() if t.startswith("Events per hour"))
    assert hourly["legend"] == ["RECALL", "STORE", "FORGET", "BULK_STORE", "EXPORT"]
    # The latency plot shows its outliers, up to the slowest event, on a log scale, and says so.
    latency = next(f for t, f in probes.items() if t.startswith("Latency"))
    assert latency["yscale"] == "log" and "outlier" in latency["title"]
    assert latency["fliers"] > 100 and latency["highest_flier"] == latency["slowest"]
    assert {"p50 (median)", "p95", "p99"} <= set(latency["legend"])
    # The users chart highlights exactly the users the alerts name.
    users = next(f for t, f in probes.items() if "users" in t)
    assert "flagged by an alert" in users["legend"]
    flagged = sorted({row[2] for row in rows if row[2] != "null"})
    assert "user_00013" in flagged and "user_00042" in flagged
    assert f"highlighted as flagged: {', '.join(flagged)}" in texts
