"""The global log of an s3:// lake (integrity/global_log.py) under contention, on a real moto server."""

from __future__ import annotations

import threading

import orjson

from axon_audit.integrity.global_log import GENESIS, GlobalLog, global_name
from axon_audit.io.location import resolve


def test_three_concurrent_writers_commit_every_entry_exactly_once(s3_server, s3_bucket) -> None:
    root = resolve(f"s3://{s3_bucket}/contended", storage_options={"endpoint_url": s3_server.endpoint})
    logs = [GlobalLog(root, key=b"k") for _ in range(3)]
    per_writer = 15
    start = threading.Barrier(3)

    def run(w: int) -> None:
        start.wait()
        for i in range(per_writer):
            logs[w].commit(f"w{w}", f"manifests/w{w}-000001.json", {"entries": i + 1, "hash": f"{w:02d}{i:062d}"},
                           ("ab" * 32, i))

    threads = [threading.Thread(target=run, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entries = [orjson.loads((root / global_name(n)).read_bytes()) for n in range(1, 3 * per_writer + 1)]
    assert not (root / global_name(3 * per_writer + 1)).exists()
    assert [e["seq"] for e in entries] == list(range(1, 3 * per_writer + 1))
    assert [e["prev"] for e in entries] == [GENESIS] + [e["hash"] for e in entries[:-1]]  # one chain
    assert sorted((e["writer"], e["head"]["entries"]) for e in entries) == sorted(
        (f"w{w}", i + 1) for w in range(3) for i in range(per_writer))  # each commit exactly once
    assert sum(g.commits for g in logs) == 3 * per_writer and sum(g.failures for g in logs) == 0


def test_a_writer_that_loses_every_race_keeps_its_events_and_says_so(s3_server, s3_bucket, monkeypatch) -> None:
    """Every conditional create of the next global entry answered 412 (another writer
    took it, TRIES times running): the commit gives up, the writer's manifest is put
    back, the export is undone, nothing is lost; the next try lands each event once."""
    import pytest

    from axon_audit import AuditLogger, verify
    from axon_audit.exceptions import ExportError
    from axon_audit.integrity import global_log
    from axon_audit.workload import generate_events

    monkeypatch.setattr(global_log, "BASE_DELAY", 0.001)  # the backoff's shape, not its length, is tested
    monkeypatch.setattr(global_log, "MAX_DELAY", 0.002)
    opts = {"endpoint_url": s3_server.endpoint}
    uri = f"s3://{s3_bucket}/race"
    audit = AuditLogger(max_events=10_000, auto_export_path=uri, storage_options=opts, hmac_key="k")
    events = generate_events(300, seed=8, days=2)
    audit.log_batch(events)
    s3_server.taken = lambda method, path: method == "PUT" and "/race/global/" in path
    try:
        with pytest.raises(ExportError, match="300 events could not be exported"):
            audit.close()
        stats = audit.get_stats()
        assert stats["pending_export_events"] == 300  # nothing lost
        assert stats["global_log_failures"] >= 1 and stats["global_log_conflicts"] >= global_log.TRIES
        assert "gave up after 12 conflicting commits" in stats["last_global_log_error"]
        # Undone whole: no manifest lists anything, no global entry, no export object left.
        result = verify(uri, key="k", storage_options=opts)
        assert result.events_checked == 0 and not any(n.startswith("global log:") for n in result.notes)
    finally:
        s3_server.taken = None
    audit.close()
    result = verify(uri, key="k", storage_options=opts)
    assert result.ok and result.events_checked == 300, result.problems
    assert "global log: 1 entries checked across 1 writer manifests" in result.notes
