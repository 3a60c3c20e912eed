"""Compliance tools over any source of events: reports (`report`), security monitoring
(`monitor`), data-subject access and erasure (`gdpr`), retention (`retention`), PII
detection and redaction (`pii`).
"""
