"""Writing: the logger and the components it is a facade over.

`logger` (`AuditLogger`), `config` (its checked settings), `buffer` (the append
buffer, the hot store and rotation), `coverage` (what a read covers: the whole
trail when exporting; warnings when events are left out), `guard` (the guarded
append: backpressure and durability), `backpressure` (refuse, block or raise),
`exporter` (rotations written in order, all or nothing), `targets` (the commit
protocol per storage kind), `durability` (the write-ahead log's epochs, job
records and recovery), `wal` and `wal_records` (the write-ahead log's writer and
its record format).
"""
