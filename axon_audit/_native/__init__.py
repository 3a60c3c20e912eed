"""Compiled parts (C): `leafhash`, the Merkle log's hot loops, imported only through
`axon_audit.integrity.native`; `ingest`, `log_batch`'s (generated event ids, metadata
texts), imported only through `axon_audit.model.batch_ids` and
`axon_audit.model.metadata_texts`. Each falls back to polars/Python when not built."""
