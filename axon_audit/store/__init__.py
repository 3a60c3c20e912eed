"""The hot store: sealed columnar chunks (`hot`), their lookup indexes (`index`) and
per-chunk statistics (`statistics`).
"""
