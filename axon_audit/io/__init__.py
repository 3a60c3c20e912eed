"""Where bytes go: locations on local disk and object storage (`location`), the atomic
JSON and Parquet writers (`sinks`).
"""
