"""The sinks' request bodies, written without Python work per event: the OTLP request
(`axon_audit.integrations.sinks.otlp_wire`, compiled and polars writers) byte for byte what the
generated protobuf classes serialize; the webhook's event objects byte for byte the export
format's (`event_objects`); and neither encoder making a Python call per event."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any
from unittest import mock

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from axon_audit import AuditLogger
from axon_audit.integrations.sinks import OTLPSink, SyslogSink, WebhookSink
from axon_audit.integrations.sinks.otlp import logs_request, request_head
from axon_audit.integrations.sinks.otlp_wire import logs_body, varint
from axon_audit.integrations.sinks.webhook import event_lines
from axon_audit.integrity import native
from axon_audit.io.json_export import event_objects
from axon_audit.model.schema import normalize_batch

OBSERVED = 1_736_942_400_123_456_789
_texts = st.text(max_size=12) | st.sampled_from(["x" * 127, "y" * 128, "é" * 70, "z" * 16_384])
_events = st.fixed_dictionaries({
    "operation": st.sampled_from(["store", "recall", "forget", "bulk_store"]),
    "timestamp": st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1),
                              timezones=st.just(timezone.utc)),
}, optional={
    "user_id": _texts | st.none(), "session_id": _texts | st.none(), "error_message": _texts | st.none(),
    "entry_ids": st.lists(_texts, max_size=4) | st.none(),
    "metadata": st.dictionaries(st.text(max_size=5), _texts | st.integers(-(2**63), 2**63 - 1), max_size=3) | st.none(),
    "status": st.sampled_from(["success", "failure", "partial"]),
    "duration_ms": (st.floats(min_value=0, allow_infinity=False) | st.sampled_from([0.0, -0.0, 5e-324, 1e308])
                    | st.none()),
})
_WRITERS = [True, False] if native.OTLP else [False]


def _frame(events: list[dict[str, Any]], categorical_users: bool) -> pl.DataFrame:
    df = normalize_batch(events)
    return df.with_columns(pl.col("user_id").cast(pl.Categorical)) if categorical_users else df


def _protobuf(df: pl.DataFrame, service: str, resource: dict[str, str]) -> bytes:
    with mock.patch("time.time_ns", return_value=OBSERVED):
        return bytes(logs_request(df, service, resource).SerializeToString())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(_events, min_size=0, max_size=8), categorical=st.booleans(),
       resource=st.dictionaries(st.text(min_size=1, max_size=5), st.text(max_size=5), max_size=2))
def test_the_otlp_request_is_what_protobuf_serializes(events: list[dict[str, Any]], categorical: bool,
                                                      resource: dict[str, str]) -> None:
    df = _frame(events, categorical) if events else normalize_batch([{"operation": "store"}]).clear()
    want = _protobuf(df, "svc", resource)
    for compiled in _WRITERS:
        assert logs_body(df, request_head("svc", resource), OBSERVED, compiled=compiled) == want, compiled


def test_the_otlp_request_of_a_slice_and_of_null_list_items() -> None:
    """A slice (Arrow offsets not at 0) and an entry list holding a null (an empty AnyValue)."""
    df = normalize_batch([{"operation": "store", "user_id": f"u{i}", "entry_ids": [f"e{i}"]} for i in range(5)])
    df = df.with_columns(pl.when(pl.int_range(5) == 3).then(pl.lit(["a", None, "b"])).otherwise("entry_ids")
                         .alias("entry_ids")).slice(2, 3)
    for compiled in _WRITERS:
        assert logs_body(df, request_head("svc"), OBSERVED, compiled=compiled) == _protobuf(df, "svc", {})


@pytest.mark.skipif(not native.OTLP, reason="the compiled writer is not built")
def test_the_compiled_writer_refuses_a_time_before_1970_as_protobuf_does() -> None:
    df = normalize_batch([{"operation": "store", "timestamp": datetime(1969, 12, 31, tzinfo=timezone.utc)}])
    with pytest.raises(ValueError):
        _protobuf(df, "svc", {})
    with pytest.raises(ValueError, match="before 1970"):
        logs_body(df, request_head("svc"), OBSERVED, compiled=True)


def test_varint() -> None:
    assert [varint(n) for n in (0, 127, 128, 16_383, 16_384, 2**35)] == [
        b"\x00", b"\x7f", b"\x80\x01", b"\xff\x7f", b"\x80\x80\x01", b"\x80\x80\x80\x80\x80\x01"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(_events, min_size=1, max_size=8), categorical=st.booleans(),
       start=st.integers(0, 3))
def test_the_webhook_writes_the_export_format_s_objects(events: list[dict[str, Any]], categorical: bool,
                                                        start: int) -> None:
    df = _frame(events, categorical).slice(start)
    assert event_lines(df) == ",".join(event_objects(df).to_list()).encode()


def _calls(fn: Callable[[], object]) -> int:
    """Python and C function calls made by `fn()` on this thread."""
    count = 0

    def profile(frame: object, what: str, arg: object) -> None:
        nonlocal count
        if what in ("call", "c_call"):
            count += 1

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return count


@pytest.mark.parametrize("make", [lambda audit: OTLPSink(audit, "http://127.0.0.1:9"),
                                  lambda audit: WebhookSink(audit, "http://127.0.0.1:9"),
                                  lambda audit: SyslogSink(audit, ("127.0.0.1", 9), transport="tcp")],
                         ids=["otlp", "webhook", "syslog"])
def test_encoding_a_batch_makes_no_python_call_per_event(make: Callable[[AuditLogger], Any]) -> None:
    """The sink's thread holds the GIL while it runs Python, which slows the loggers: the OTLP sink
    made ~13 calls per event before (26,000 for 2,000 events), the webhook ~2,200 per batch and the
    syslog sink ~3,500 (their polars queries' expressions built afresh); now a few hundred per
    batch, whatever its size."""
    t0 = datetime(2025, 1, 15, tzinfo=timezone.utc)
    big = normalize_batch([{"operation": "store", "user_id": f"u{i}", "entry_ids": ["a", "b"], "duration_ms": 1.5,
                            "metadata": {"i": i}, "timestamp": t0 + timedelta(seconds=i)} for i in range(2000)])
    sink = make(AuditLogger())
    sink.encode(big.head(10), "x")  # first use: imports, cached expressions
    small, large = _calls(lambda: sink.encode(big.head(10), "x")), _calls(lambda: sink.encode(big, "x"))
    assert large <= small + 20, (small, large)
    # Without the extension the webhook and the OTLP sink build a polars query instead (bounded all the same).
    compiled = {"otlp": native.OTLP, "webhook": native.AVAILABLE, "syslog": True}[sink.kind]
    if compiled:
        assert small < 1000, small
