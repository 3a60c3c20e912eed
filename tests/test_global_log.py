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
