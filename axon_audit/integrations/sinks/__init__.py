"""Sinks: a logger's events shipped off the logging path to a receiver, in order, never lost.

* `WebhookSink` (`webhook`): JSON batches POSTed to a URL;
* `OTLPSink` (`otlp`): OpenTelemetry log records over OTLP/HTTP (protobuf; the ``otlp`` extra);
* `SyslogSink` (`syslog`): RFC 5424 or ArcSight CEF messages over UDP or TCP (octet counting);
* `Sink` (`base`): their shared delivery loop (a live subscription with ``on_overflow="block"``,
  retries with capped, jittered exponential backoff, an ``Idempotency-Key`` per batch);
* `durable`: a sink's ``cursor=`` on the export log (re-delivery from the export folder after a
  crash) and the dead-letter file for batches refused for good.

Example:
    >>> from axon_audit.integrations.sinks import OTLPSink, SyslogSink, WebhookSink
    >>> WebhookSink.kind, OTLPSink.kind, SyslogSink.kind
    ('webhook', 'otlp', 'syslog')
"""

from axon_audit.integrations.sinks.base import Sink
from axon_audit.integrations.sinks.otlp import OTLPSink
from axon_audit.integrations.sinks.syslog import SyslogSink
from axon_audit.integrations.sinks.webhook import WebhookSink

__all__ = ["OTLPSink", "Sink", "SyslogSink", "WebhookSink"]
