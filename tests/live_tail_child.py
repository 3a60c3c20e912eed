"""A child process for the live tail tests: a logger with a write-ahead log that logs
events ``s<first>`` .. ``s<first+count-1>`` (times out of order, so an export's time
order differs from the logging order), one every `pause` seconds, then writes
``logged`` to stdout and waits for stdin to close before it closes the logger:

    python live_tail_child.py EXPORT_DIR WAL_DIR FIRST COUNT MAX_EVENTS PAUSE
"""

import random
import sys
import time
from datetime import datetime, timedelta, timezone

from axon_audit import AuditLogger


def main() -> None:
    export_dir, wal_dir = sys.argv[1:3]
    first, count, max_events = (int(a) for a in sys.argv[3:6])
    pause = float(sys.argv[6])
    rng = random.Random(first)
    start = datetime(2025, 6, 1, tzinfo=timezone.utc)
    audit = AuditLogger(max_events=max_events, auto_export_path=export_dir, wal_path=wal_dir)
    for i in range(first, first + count):
        if i % 3:  # a frame record, its time out of order
            audit.log_batch([{"operation": "store", "user_id": "u", "session_id": f"s{i}",
                              "timestamp": start + timedelta(seconds=rng.randrange(0, 86_400))}])
        else:  # a row record, timed now
            audit.log("store", user_id="u", session_id=f"s{i}")
        sys.stdout.write(f"{i}\n")
        sys.stdout.flush()
        time.sleep(pause)
    sys.stdout.write("logged\n")
    sys.stdout.flush()
    sys.stdin.read()
    audit.close()


if __name__ == "__main__":
    main()
