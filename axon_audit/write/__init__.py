"""Writing: the logger facade (`logger`) and its write-ahead log (`wal`)."""
