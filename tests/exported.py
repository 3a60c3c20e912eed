"""Reading what an export folder committed, for the tests: the event ids its manifest lists."""

from __future__ import annotations

from pathlib import Path

import orjson


def listed_ids(folder: Path) -> list[str]:
    """Event ids in the folder's JSON exports, in manifest (= export) order."""
    manifest = orjson.loads((folder / "manifest.json").read_bytes())
    out: list[str] = []
    for e in manifest["entries"]:
        if e["kind"] == "json":
            out += [ev["event_id"] for ev in orjson.loads((folder / e["file"]).read_bytes())["events"]]
    return out
