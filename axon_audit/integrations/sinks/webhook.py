"""A webhook sink: the logger's events POSTed as JSON batches to a URL, in order, never lost.

Each request's body is one JSON object::

    {"events": [...], "batch_id": "<first event_id>..<last event_id>", "count": n}

with each event in the export format's shape (`axon_audit.io.json_export.event_objects`:
the keys of `axon_audit.model.schema.COLUMNS`, timestamps as ``2025-01-15T12:00:00.000000Z``),
and an ``Idempotency-Key`` header equal to `batch_id`: a retried batch has the same id
and the same events, so a receiver that has seen the key may answer 2xx and drop it.
Retries, ordering and what happens during an outage: `axon_audit.integrations.sinks.base`.

Example:
    >>> from axon_audit import AuditLogger
    >>> from axon_audit.integrations.sinks import WebhookSink
    >>> audit = AuditLogger()
    >>> sink = WebhookSink(audit, "http://127.0.0.1:9/hook", operation="forget", max_batch=500)
    >>> sink.url, sink.max_batch, sink.pending
    ('http://127.0.0.1:9/hook', 500, 0)

    Use it as ``with WebhookSink(audit, url) as sink: ...`` (start on entry; on exit,
    everything logged before is delivered, for up to `drain_timeout` seconds).
"""

from __future__ import annotations

import json

import polars as pl

from axon_audit.integrations.sinks.base import Sink
from axon_audit.integrity import native
from axon_audit.io.json_export import event_objects

__all__ = ["WebhookSink", "event_lines", "webhook_body"]


def webhook_body(batch: pl.DataFrame, batch_id: str) -> bytes:
    """The JSON body of one batch (the event objects are made vectorized, then joined once).

    Example:
        >>> import json
        >>> from axon_audit.model.schema import normalize_batch
        >>> df = normalize_batch([{"event_id": "evt_1", "timestamp": "2025-01-15T12:00:00Z", "operation": "store"}])
        >>> doc = json.loads(webhook_body(df, "evt_1..evt_1"))
        >>> doc["batch_id"], doc["count"], doc["events"][0]["operation"], doc["events"][0]["timestamp"]
        ('evt_1..evt_1', 1, 'STORE', '2025-01-15T12:00:00.000000Z')
    """
    # A log_batch row may bring its own event id, which may need escaping.
    tail = f'],"batch_id":{json.dumps(batch_id)},"count":{batch.height}}}'.encode()
    return b'{"events":[' + event_lines(batch) + tail


def event_lines(batch: pl.DataFrame) -> bytes:
    """The batch's export-format event objects, "," between them: written in C without the GIL
    when the extension is built (`axon_audit.integrity.native.EventBuffers`: the same bytes, checked
    in the tests), else by the polars query of `event_objects`. A sink thread that held the GIL
    here slowed the loggers' `log_event` (wall time) by up to 8 %."""
    if not batch.height:
        return b""
    if native.AVAILABLE:
        unused = pl.repeat("{}", batch.height, eager=True)  # the canonical texts, for leaves only
        return native.EventBuffers(batch, unused, unused, export=True).lines(0, batch.height, b",")
    return ",".join(event_objects(batch).to_list()).encode()


class WebhookSink(Sink):
    """POSTs the matching events of `audit_logger` to `url` as JSON batches (see the module).

    Keywords: `max_batch` events per request (1000), `max_pending` events held
    while the receiver is away (10,000; then the subscription blocks), `timeout`
    per request (10 s), `backoff` / `max_backoff` (0.1 s doubling, capped at 5 s,
    full jitter), `drain_timeout` for `close()` (30 s), `headers` (e.g.
    authorization), and the filters of `query_events` (without `limit`).
    """

    kind = "webhook"

    def encode(self, batch: pl.DataFrame, batch_id: str) -> tuple[bytes, str]:
        return webhook_body(batch, batch_id), "application/json"
