"""Where bytes go and what files are called.

`location` (local folders, ``file://`` and ``s3://`` as one `Location`), `layout`
(`ExportLayout`: the one place that names and lists an export folder's files),
`atomic` (whole-or-nothing local writes), `sealed` (where an export may not write:
sealed evidence), `json_export` (the seed's JSON export
format) and `parquet` (the rotation's Parquet encoding and partitioned writes).
"""
