"""Tamper evidence: the event chain and the export folder's manifest (`manifest`),
and their check (`verify`); and the core of the Merkle transparency log that is
to replace them (issue 13): the RFC 8785 leaf encoding of an event (`leaf`), the
RFC 6962/9162 tree, compact range and proofs (`merkle`), over batched SHA-256
(`digest`).
"""
