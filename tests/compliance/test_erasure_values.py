"""Erasure works on parsed values: hostile ids (``42``, ``null``, ``true``, a metadata key's
name, quotes, substrings of other ids) are erased from the subject's events, in memory,
JSON export documents and Parquet parts; in anybody else's event only a metadata string
value that is the id, whole, changes, and nothing else of theirs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from axon_audit import AuditLogger, erase_subject, open_archive, verify

HOSTILE = ["42", "null", "true", "false", "count", "n", "ann", "ann.lee@example.com", 'q"uote', "back\\slash",
           "é", "a b", "u1", "u10", "erased", "[erased]", "0"]


def json_lines(folder: Path) -> dict[str, tuple[str, bytes]]:
    """Every event line of the folder's JSON documents, by event id: (file, line bytes)."""
    out = {}
    for doc in folder.glob("*.json"):
        if doc.name == "manifest.json":
            continue
        for line in doc.read_bytes().splitlines():
            if line.startswith(b'{"event_id":'):
                out[orjson.loads(line.rstrip(b","))["event_id"]] = (doc.name, line)
    return out


def parquet_rows(folder: Path) -> dict[str, tuple[str, tuple[Any, ...]]]:
    """Every row of the folder's Parquet parts, by event id: (file, row)."""
    out = {}
    for part in (folder / "parquet").rglob("*.parquet"):
        df = pl.read_parquet(part).with_columns(pl.col(pl.Categorical, pl.Enum).cast(pl.String))
        out.update({r[0]: (part.name, r) for r in df.select("event_id", pl.exclude("event_id")).rows()})
    return out


def memory_rows(audit: AuditLogger) -> dict[str, tuple[Any, ...]]:
    df = audit.scan(include_archived=False).collect().with_columns(pl.col(pl.Categorical, pl.Enum).cast(pl.String))
    return {r[0]: r for r in df.select("event_id", pl.exclude("event_id")).rows()}


def shape(value: Any) -> Any:
    """`value` with every string blanked: what erasure must keep (keys, numbers, booleans, null, nesting)."""
    if isinstance(value, str):
        return "<s>"
    if isinstance(value, list):
        return [shape(v) for v in value]
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    return value


def whole_swapped(value: Any, subject: str, to: str) -> Any:
    """Someone else's metadata after the erasure: string values equal to `subject` become `to`."""
    if isinstance(value, str):
        return to if value == subject else value
    if isinstance(value, list):
        return [whole_swapped(v, subject, to) for v in value]
    if isinstance(value, dict):
        return {k: whole_swapped(v, subject, to) for k, v in value.items()}
    return value


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    return []


@st.composite
def scenario(draw: st.DrawFn) -> tuple[list[str], list[dict[str, Any]]]:
    name = st.text(st.characters(exclude_categories=["Cs", "Cc"]), min_size=1, max_size=6)
    users = draw(st.lists(st.sampled_from(HOSTILE) | name, min_size=2, max_size=4, unique=True)
                 .filter(lambda us: all(u.strip() for u in us)))
    forms = st.sampled_from(["{u}", "by {u}", "{u}x", "x{u}", "{u}-{v}", "{u}{v}", "{u}.{v}"])
    text = st.builds(lambda f, u, v: f.format(u=u, v=v), forms, st.sampled_from(users),
                     st.sampled_from(users)) | st.text(max_size=8)
    leaf = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False,
                                                                                      allow_infinity=False) | text
    key = st.sampled_from(users) | st.text(max_size=5)
    meta = st.dictionaries(key, st.recursive(leaf, lambda inner: st.lists(inner, max_size=3)
                                             | st.dictionaries(key, inner, max_size=3), max_leaves=8), max_size=4)
    events = []
    for i in range(draw(st.integers(6, 14))):
        who = users[0] if i == 0 else draw(st.sampled_from(users))  # users[0], the subject, has events
        events.append({"operation": draw(st.sampled_from(["store", "recall", "forget"])), "user_id": who,
                       "session_id": f"sess{users.index(who)}_{i % 2}", "metadata": draw(meta),
                       "entry_ids": [draw(text) or "e"], "error_message": draw(st.none() | text)})
    return users, events


@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(case=scenario(), mode=st.sampled_from(["pseudonymize", "remove"]), batched=st.booleans(),
       via=st.sampled_from(["logger", "folder", "archive"]))
def test_erasure_touches_only_the_subjects_values(tmp_path_factory, case, mode, batched, via):
    users, events = case
    subject = users[0]
    folder = tmp_path_factory.mktemp("erase")
    audit = AuditLogger(max_events=4, auto_export_path=folder)
    if batched:
        audit.log_batch(events)
    else:
        for e in events:
            audit.log(**e)
    if via == "logger":
        audit.flush()  # some events stay in memory
    else:
        audit.close()  # all in files, erased through the folder's path or its archive
    mem, docs, parts = memory_rows(audit), json_lines(folder), parquet_rows(folder)
    assert set(docs) == set(parts) and not set(mem) & set(parts) and len(mem) + len(parts) == len(events)
    before = {**{k: v[1] for k, v in parts.items()}, **mem}  # every event once, as a row
    own = {k for k, r in before.items() if r[3] == subject}  # r[3]: user_id (event_id first, then COLUMNS order)
    assert own

    result = erase_subject({"logger": audit, "folder": str(folder), "archive": open_archive(folder)}[via], subject,
                           mode=mode)

    audit.flush()  # the erasure's record may rotate memory out: wait for that export before reading the files
    mem2, docs2, parts2 = memory_rows(audit), json_lines(folder), parquet_rows(folder)
    after = {**{k: v[1] for k, v in parts2.items()}, **mem2}  # (the erasure's record may rotate memory out)
    to = result.pseudonym if mode == "pseudonymize" else "[erased]"
    for k in set(before) - own:  # anybody else's event: only a metadata value that is the id, whole, changed
        meta = before[k][6]
        swapped = meta and orjson.dumps(whole_swapped(orjson.loads(meta), subject, to)).decode()
        expected = before[k] if swapped == meta else (*before[k][:6], swapped, *before[k][7:])
        assert after[k] == expected, k
        if swapped == meta:  # untouched: byte for byte in every file
            assert (k not in docs or docs2[k] == docs[k]) and (k not in parts or parts2[k] == parts[k]), k
    for k in own:
        old, new = before[k], after[k]
        if mode == "pseudonymize":
            assert new[3] == result.pseudonym and new[4].startswith(f"{result.pseudonym}_s")
        else:
            assert new[3] is None and new[4] is None
        if k in docs2:  # the document says what the part says
            line = orjson.loads(docs2[k][1].rstrip(b","))
            assert (line["user_id"], line["session_id"], line["metadata"]) == (
                new[3], new[4], orjson.loads(new[6] or "{}")), k
        if old[6] is None:
            assert new[6] is None
            continue
        was, now = orjson.loads(old[6]), orjson.loads(new[6])
        assert shape(now) == shape(was)  # keys, numbers, booleans and null as they were
        assert subject not in strings(now) or (mode, subject) == ("remove", "[erased]")  # its own placeholder
    check = verify(folder)
    assert check.ok, check.problems
    audit.close()


@pytest.mark.parametrize("subject", ["42", "null", "true", "count"])
def test_the_issues_ids_leave_keys_numbers_and_literals_alone(tmp_path, subject):
    theirs = {"count": 42, "flag": True, "none": None, "s": "42", "who": subject, "note": f"x{subject}y"}
    folder = tmp_path / "audit"
    with AuditLogger(max_events=2, auto_export_path=folder) as audit:
        audit.log_batch([{"operation": "store", "user_id": subject, "metadata": {**theirs, "me": f"by {subject}"}},
                         {"operation": "store", "user_id": "bob", "metadata": theirs}])  # rotated to files
        audit.log("store", user_id=subject, metadata={"count": 42, "flag": True, "me": subject})  # in memory
        audit.flush()
        assert audit.event_count == 1 and len(list(folder.glob("audit_*.json"))) == 1
        result = erase_subject(audit, subject)
        p = result.pseudonym
        events = sorted(audit.scan(include_archived=True, operation="store").collect().rows(named=True),
                        key=lambda r: r["timestamp"])
    kept = {**theirs, "who": p, "s": p if subject == "42" else "42"}
    assert [(e["user_id"], orjson.loads(e["metadata"])) for e in events] == [  # bob's "who" names the subject
        (p, {**kept, "me": f"by {p}"}), ("bob", kept), (p, {"count": 42, "flag": True, "me": p})]
    assert verify(folder).ok


def test_a_logger_that_has_not_exported_yet_can_erase(tmp_path):
    folder = tmp_path / "not-yet"
    with AuditLogger(auto_export_path=folder) as audit:
        audit.log("store", user_id="ann", metadata={"by": "ann"})
        assert not folder.exists()  # refused once: "export folder ... does not exist"
        result = erase_subject(audit, "ann", mode="remove")
        assert result.events == 1 and audit.query_events(user_id="ann") == []
    assert verify(folder).ok and b"ann" not in b"".join(p.read_bytes() for p in folder.rglob("*.json"))
