"""A test run leaves nothing in the system's temporary folder: the package's doctests, which make their
folders with a bare `tempfile.mkdtemp()`, get them inside their own `tmp_path` (the repository's conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_package_doctests_leave_nothing_in_the_temp_folder(tmp_path: Path) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()
    # A pytest of its own over the doctests, with its base folder outside `temp`: whatever is in `temp`
    # afterwards was left by the doctests themselves.
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "axon_audit", "-q", "-p", "no:cacheprovider",
         "--basetemp", str(tmp_path / "base")],
        cwd=ROOT, env={**os.environ, "TMPDIR": str(temp), "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout
    assert sorted(os.listdir(temp)) == []
    # The doctests' folders went into their tmp_path instead (mkdtemp names them tmp*).
    assert len([p for p in (tmp_path / "base").glob("*/tmp*") if p.is_dir()]) >= 20
