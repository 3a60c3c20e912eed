"""Compliance tools over any source of events: reports (`report`), security monitoring
(`monitor`), data-subject access (`subject_access`) and erasure (`erasure`),
retention (`retention`), PII detection and redaction (`pii`).
"""
