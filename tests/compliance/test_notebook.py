"""The analysis notebook runs top to bottom in a real Jupyter kernel, and its plots are real images."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "compliance_analysis.ipynb"


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

    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit the notebook without outputs"
    NotebookClient(nb, kernel_name="axon-audit-test", timeout=180, resources={"metadata": {"path": str(tmp_path)}}
                   ).execute()

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
    rules = {line.split("┆")[0].strip("│ ") for line in table.splitlines() if "┆" in line and " UTC " in line}
    assert rules == {"excessive_deletions", "user_deletion_spike", "failure_burst", "user_failure_spike",
                     "recall_sweep"}
