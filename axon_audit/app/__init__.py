"""The applications over the library.

The `axon-audit` command line (`cli`: the group and the entry point; `commands`,
`options`, `render`) and the end-to-end demo (`demo`).
"""
