"""The applications over the library: the `axon-audit` command line (`cli`) and the end-to-end demo (`demo`)."""
