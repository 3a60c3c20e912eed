"""PII redaction: each detector, the Luhn check, pluggable detectors, ids untouched, batch = single."""

from __future__ import annotations

import random

import orjson
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axon_audit import AuditLogger, AuditTypeError, Detector, PIIRedactor, luhn_valid
from axon_audit.workload import generate_events


def luhn_digit(body: str) -> str:
    for d in "0123456789":
        if luhn_valid(body + d):
            return d
    raise AssertionError


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("mail ann.lee+x@mail.example.co.uk now", ["email"]),
        ("card 4111 1111 1111 1111 ok", ["card"]),
        ("card 4111-1111-1111-1111", ["card"]),
        ("amex 378282246310005", ["card"]),
        ("ssn 123-45-6789", ["ssn"]),
        ("v4 192.168.1.20 and v6 2001:db8::8a2e:370:7334", ["ipv4", "ipv6"]),
        ("call +1 415-555-0100 or (415) 555-0199 or +442071838750", ["phone", "phone", "phone"]),
    ],
)
def test_each_detector_finds_its_kind(text, kinds):
    r = PIIRedactor()
    assert [k for k, _ in r.find(text)] == kinds
    redacted = r.redact_text(text)
    assert all(f"[REDACTED:{k}]" in redacted for k in kinds)
    assert not any(m in redacted for _, m in r.find(text))


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112",  # fails Luhn
        "ssn 000-12-3456 and 666-12-3456",  # never issued
        "not an ip 999.1.1.1, a version 10.2",
        "date 2026-11-27, time 10:30:45, ratio 0.53, count 1234567",
        "evt_1795778673962651129f3e00000000",
    ],
)
def test_no_false_positive_on_common_non_pii(text):
    assert PIIRedactor().redact_text(text) == text


@settings(max_examples=200, deadline=None)
@given(st.text("0123456789", min_size=12, max_size=18))
def test_luhn_valid_numbers_are_redacted_invalid_ones_kept(body):
    good = body + luhn_digit(body)
    bad = body + str((int(luhn_digit(body)) + 1) % 10)
    r = PIIRedactor()
    assert r.redact_text(f"pay {good}.") == "pay [REDACTED:card]."
    assert "[REDACTED:card]" not in r.redact_text(f"pay {bad}.")


def test_logger_redacts_metadata_but_never_ids():
    audit = AuditLogger(redact_pii=True)
    pii = "bob@example.com"
    e = audit.log("store", user_id=pii, session_id=pii, entry_ids=[pii],
                  metadata={"by": pii, pii: [{"ip": "10.1.2.3"}], "card": 5555555555554444, "ok": 1.5})
    assert e.metadata == {"by": "[REDACTED:email]", "[REDACTED:email]": [{"ip": "[REDACTED:ipv4]"}],
                          "card": "[REDACTED:card]", "ok": 1.5}
    (stored,) = audit.query_events()
    assert stored.metadata == e.metadata
    assert (stored.user_id, stored.session_id, stored.entry_ids) == (pii, pii, [pii])
    assert AuditLogger().log("store", metadata={"by": pii}).metadata == {"by": pii}  # off by default


def test_batch_and_single_logging_redact_alike():
    rng = random.Random(3)
    samples = ["ann@ex.org", "4111111111111111", "123-45-6789", "172.16.0.1", "+1 212 555 0147", "plain", "0.5"]
    metas = [{"note": f"{rng.choice(samples)} / {rng.choice(samples)}", "n": i} for i in range(300)]
    single, batch = AuditLogger(redact_pii=True), AuditLogger(redact_pii=True)
    for m in metas:
        single.log("store", user_id="u", metadata=m)
    batch.log_batch([{"operation": "store", "user_id": "u", "metadata": m} for m in metas])
    a = single.scan().select("metadata").collect()["metadata"].to_list()
    b = batch.scan().select("metadata").collect()["metadata"].to_list()
    assert a == b and sum("REDACTED" in x for x in a) > 200
    assert all(orjson.loads(x)["n"] == i for i, x in enumerate(b))


def test_workload_metadata_passes_unchanged_through_batch_redaction():
    df = generate_events(5_000, seed=2)
    audit = AuditLogger(enable_rotation=False, redact_pii=True)
    audit.log_batch(df)
    assert audit.scan().collect()["metadata"].to_list() == df["metadata"].to_list()


def test_pluggable_detectors_and_bad_arguments():
    employee = Detector("employee", r"\bEMP\d{5}\b")  # no prefilter: every row is screened in Python
    r = PIIRedactor([employee], replacement="<{name}>")
    audit = AuditLogger(redact_pii=r)
    audit.log_batch(pl.DataFrame({"operation": ["store"], "metadata": ['{"who":"EMP12345","mail":"a@b.io"}']}))
    assert audit.query_events()[0].metadata == {"who": "<employee>", "mail": "a@b.io"}
    with pytest.raises(AuditTypeError, match="redact_pii"):
        AuditLogger(redact_pii="yes")
    with pytest.raises(AuditTypeError, match=r"detectors\[0\]"):
        PIIRedactor(["email"])
    with pytest.raises(AuditTypeError, match="metadata"):
        AuditLogger(redact_pii=True).log("store", metadata=["not", "a", "dict"])
