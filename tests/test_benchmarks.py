"""The benchmark suite stays runnable: its quick mode end to end, and the
baselines answer the benchmark's questions the same way axon_audit does.

Performance is never asserted here; only that every measurement is a number.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from axon_audit.workload import generate_events, iter_log_calls  # noqa: E402 - after sys.path holds the repository root
from benchmarks.baselines import backend_classes  # noqa: E402 - after sys.path holds the repository root
from benchmarks.case import DAYS, SEED, START, query_params  # noqa: E402 - after sys.path holds the repository root


@pytest.mark.slow
def test_quick_mode_measures_every_figure(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())
    names = set(backend_classes())
    assert {c["backend"] for c in results["cases"]} == names
    for case in results["cases"]:
        assert "error" not in case, case
        figures = case["figures"]
        for key in ("log_event", "log", "ingest", "query_filtered", "query_10k", "lookup_entry", "statistics",
                    "user_statistics", "export_json", "json_bytes", "memory_rss"):
            assert key in figures, (case["backend"], key)
        for key, fig in figures.items():
            assert isinstance(fig["median"], (int, float)) and math.isfinite(fig["median"]), (case["backend"], key, fig)
    ours = [c for c in results["cases"] if c["backend"] == "axon_audit"]
    assert all({"parquet", "parquet_bytes", "memory_own"} <= set(c["figures"]) for c in ours)
    md = (tmp_path / "results.md").read_text()
    assert "## Budget (DESIGN.md)" in md and md.count("| **") + md.count("not measured") >= 9
    assert (tmp_path / "scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def workload():
    df = generate_events(3000, seed=SEED, start=START, days=DAYS)
    return df, query_params(df)


@pytest.mark.parametrize("name", sorted(set(backend_classes()) - {"axon_audit"}))
def test_baselines_answer_like_axon_audit(name: str, workload, tmp_path: Path) -> None:
    df, p = workload
    classes = backend_classes()
    ours, other = classes["axon_audit"](tmp_path / "ours"), classes[name](tmp_path / name)
    for b in (ours, other):
        b.ingest(b.prepare(df))
    start = p["start"] - timedelta(days=3)  # wide enough to match some events at this size
    q_ours = ours.query(p["top_user"], "RECALL", start)
    assert len(q_ours) > 0
    assert len(other.query(p["top_user"], "RECALL", start)) == len(q_ours)
    assert len(other.query_user(p["top_user"], 50)) == len(ours.query_user(p["top_user"], 50)) == 50
    assert len(other.lookup(p["entry"])) == len(ours.lookup(p["entry"])) > 0
    s_ours, s_other = ours.statistics(), other.statistics()
    for key in ("total_events", "failure_count", "by_operation", "by_status", "unique_users", "unique_sessions"):
        assert s_other[key] == s_ours[key], key
    for key in ("success_rate", "avg_duration_ms", "p50_duration_ms", "p95_duration_ms", "max_duration_ms"):
        assert s_other[key] == pytest.approx(s_ours[key], rel=1e-9), key
    u_ours, u_other = ours.user_statistics(p["top_user"]), other.user_statistics(p["top_user"])
    for key in ("total_operations", "most_common_operation", "by_operation", "failure_count", "unique_sessions"):
        assert u_other[key] == u_ours[key], key
    path = tmp_path / "export.json"
    assert other.export_json(path) == df.height
    doc = json.loads(path.read_text())
    assert doc["total_events"] == df.height and len(doc["events"]) == df.height
    first = doc["events"][0]
    assert list(first)[:10] == ["event_id", "timestamp", "operation", "user_id", "session_id", "entry_ids",
                                "metadata", "status", "error_message", "duration_ms"]
    assert first["timestamp"].endswith("Z") and isinstance(first["metadata"], dict)
    n_before = s_ours["total_events"]
    for call in iter_log_calls(df.head(20)):
        other.log(call)
    assert other.statistics()["total_events"] == n_before + 20
    other.close()
    ours.close()
