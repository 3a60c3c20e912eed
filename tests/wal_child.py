"""A child process for the crash tests: logs from several threads and writes each
acknowledged event id to stdout (one os.write per id, atomic on a pipe) once
`log` has returned. The parent SIGKILLs it mid-stream, or it SIGKILLs itself at a
chosen point of a rotation:

    python wal_child.py EXPORT_DIR WAL_DIR SYNC CRASH_AT [MAX_EVENTS] [THREADS]

EXPORT_DIR may be an s3:// URI (the endpoint from AWS_ENDPOINT_URL); there the
commit is the writer manifest's upload (`WriterManifest.commit`).

CRASH_AT: ``stream`` (the parent kills), ``before_commit`` (after an export's
files are written, before the manifest commit), ``before_release`` (after the
commit, before the WAL epochs are deleted), ``before_global`` (object storage: after
the second export's manifest is up, before its global log entry).
"""

import os
import signal
import sys
import threading

from axon_audit import AuditLogger
from axon_audit.integrity import manifest as _integrity
from axon_audit.write import wal as _wal


def main() -> None:
    export_dir, wal_dir, sync, crash_at = sys.argv[1:5]
    max_events = int(sys.argv[5]) if len(sys.argv) > 5 else 500
    threads = int(sys.argv[6]) if len(sys.argv) > 6 else 4
    die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
    if crash_at == "before_commit":
        real = _integrity.append_entries
        calls = [0]

        def append_entries(*args, **kwargs):  # the second export dies before its commit
            calls[0] += 1
            if calls[0] == 2:
                die()
            return real(*args, **kwargs)

        _integrity.append_entries = append_entries
        real_commit = _integrity.WriterManifest.commit

        def commit(self, *args, **kwargs):  # the same on object storage: objects up, manifest not
            calls[0] += 1
            if calls[0] == 2:
                die()
            return real_commit(self, *args, **kwargs)

        _integrity.WriterManifest.commit = commit
    elif crash_at == "before_global":
        from axon_audit.integrity.global_log import GlobalLog

        real_global = GlobalLog.commit
        calls3 = [0]

        def global_commit(self, *args, **kwargs):  # the second export dies after its manifest landed
            calls3[0] += 1
            if calls3[0] == 2:
                die()
            return real_global(self, *args, **kwargs)

        GlobalLog.commit = global_commit
    elif crash_at == "before_release":
        real_release = _wal.WriteAheadLog.release
        calls2 = [0]

        def release(self, upto):  # the second export dies after its commit
            calls2[0] += 1
            if calls2[0] == 2:
                die()
            return real_release(self, upto)

        _wal.WriteAheadLog.release = release

    audit = AuditLogger(max_events=max_events, auto_export_path=export_dir, wal_path=wal_dir, wal_sync=sync,
                        hmac_key="k")

    def work(t: int) -> None:
        i = 0
        while True:
            ev = audit.log("store", user_id=f"t{t}", metadata={"i": i}, duration_ms=float(i))
            os.write(1, (ev.event_id + "\n").encode())
            i += 1
            if sync == "interval" and t == 0 and i % 300 == 0:
                # Every id written before SYNC-START is durable once SYNC-END is written.
                os.write(1, b"SYNC-START\n")
                audit.flush()
                os.write(1, b"SYNC-END\n")

    for t in range(threads):
        threading.Thread(target=work, args=(t,), daemon=True).start()
    threading.Event().wait()


if __name__ == "__main__":
    main()
