"""Benchmarks: axon_audit side by side with what users would otherwise pick.

`python -m benchmarks` (``make bench``) runs every backend of `backends()` at
10 K .. 10 M events, each (backend, size) case in a fresh subprocess, and writes
raw JSON, a markdown table and a log-log plot to `benchmarks/results/`.
``make bench-quick`` does the same at small sizes in under a minute.
"""
