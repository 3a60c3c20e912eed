"""Compiled parts (C): `leafhash`, the Merkle log's hot loops. Imported only through
`axon_audit.integrity.native`, which falls back to polars when it was not built."""
