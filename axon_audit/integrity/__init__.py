"""Tamper evidence.

Today's export folders: the per-event chain and the folder's manifest
(`manifest`), and their check (`verify`). The transparency-log core that issue 13
builds on, not yet wired into rotation: the canonical leaf encoding of an event
(`leaf`, RFC 8785 + RFC 6962 leaf hash), batch SHA-256 (`digest`), the Merkle
tree with inclusion and consistency proofs (`merkle`, RFC 9162), and signed
checkpoints (`checkpoint`, C2SP signed-note / tlog-checkpoint with Ed25519).
"""
