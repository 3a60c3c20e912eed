"""Spawning the `axon-audit` console script from the tests, on this checkout's code."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

# The spawned script imports axon_audit from this checkout, whichever one the venv was installed from.
ROOT = Path(__file__).resolve().parents[1]


def env(**more: str) -> dict[str, str]:
    """os.environ as it is now (tests change it), with this checkout first on PYTHONPATH."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, **more}


def script() -> str:
    """The console script of the running interpreter's environment."""
    found = Path(sys.executable).parent / "axon-audit"
    return str(found) if found.exists() else shutil.which("axon-audit") or "axon-audit"
