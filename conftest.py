"""Pytest setup for the whole repository: the package's doctests' temporary folders.

The docstring examples make their folders with a bare `tempfile.mkdtemp()`, as a reader pasting them would;
under pytest each doctest's `tempfile` points into its own `tmp_path` instead, which pytest prunes, so a
test run leaves nothing in the system's temporary folder.
"""

from __future__ import annotations

import tempfile

import pytest


@pytest.fixture(autouse=True)
def _doctest_temp_in_tmp_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if isinstance(request.node, pytest.DoctestItem):
        monkeypatch.setattr(tempfile, "tempdir", str(request.getfixturevalue("tmp_path")))
