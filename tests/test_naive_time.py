"""One rule for naive times at every entry point: local time (or UTC when asked for).

Each case runs a child Python with ``TZ`` set (America/New_York: DST; Asia/Kolkata:
+05:30, no DST), since the host zone is read once per process state; the child
prints what it stored and found as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from axon_audit import AuditLogger, open_archive
from axon_audit.exceptions import AuditValueError
from axon_audit.model.timestamps import naive_time_rule
from tests.cli_process import env, script

UTC = timezone.utc
NAIVE_SUMMER = datetime(2025, 7, 1, 12, 0, 0)
NAIVE_WINTER = datetime(2025, 1, 15, 9, 30, 0)

# Logs the same naive wall time through every entry point, then queries with the same naive bounds.
_CHILD = r'''
import json, sys
from datetime import datetime
import polars as pl
from axon_audit import AuditEvent, AuditLogger
rule = sys.argv[1] or None
kw = {} if rule is None else {"naive_time": rule}
audit = AuditLogger(**kw)
out = {}
for label, naive in (("summer", datetime(2025, 7, 1, 12)), ("winter", datetime(2025, 1, 15, 9, 30))):
    iso = naive.isoformat()
    audit.log_batch([AuditEvent("store", user_id=f"{label}-event", timestamp=naive, **kw)])
    audit.log_batch([AuditEvent("store", user_id=f"{label}-event-iso", timestamp=iso, **kw)])
    audit.log_batch([{"operation": "store", "user_id": f"{label}-dict", "timestamp": naive}])
    audit.log_batch([{"operation": "store", "user_id": f"{label}-iso", "timestamp": iso},
                     {"operation": "store", "user_id": f"{label}-iso-space", "timestamp": iso.replace("T", " ")}])
    audit.log_batch([{"operation": "store", "user_id": f"{label}-mixed", "timestamp": naive},
                     {"operation": "store", "user_id": f"{label}-mixed-iso", "timestamp": iso + ".000000"}])
    frame = pl.DataFrame({"operation": ["store"], "user_id": [f"{label}-polars"], "timestamp": [naive]})
    audit.log_batch(frame)
    audit.log_batch(frame.with_columns(user_id=pl.lit(f"{label}-polars-ms"),
                                       timestamp=pl.col("timestamp").dt.cast_time_unit("ms")))
    audit.log_batch(frame.with_columns(user_id=pl.lit(f"{label}-arrow")).to_arrow())
    found = audit.query_events(start_time=naive, end_time=naive)
    out[label] = {
        "found": sorted(e.user_id for e in found),
        "stored": sorted({e.timestamp_us for e in found}),
        "sql": audit.sql("SELECT count(*) AS n FROM events WHERE timestamp = ?", [naive])["n"][0],
        "scan": audit.scan(start_time=naive, end_time=naive).collect().height,
    }
before = datetime.now()
audit.log("recall", user_id="now")
after = datetime.now()
out["log"] = [e.user_id for e in audit.query_events(start_time=before, end_time=after)]
print(json.dumps(out))
'''

_ENTRY_POINTS = ["event", "event-iso", "dict", "iso", "iso-space", "mixed", "mixed-iso", "polars", "polars-ms",
                 "arrow"]


def _child(code: str, tz: str, *args: str, **more_env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                          env=env(TZ=tz, **more_env))


def _run(code: str, tz: str, *args: str, **more_env: str) -> dict:
    proc = _child(code, tz, *args, **more_env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _us(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


# A POSIX rule has no IANA name: converted row by row through the C library, with the same result.
_ZONES = {"America/New_York": "America/New_York", "Asia/Kolkata": "Asia/Kolkata",
          "EST5EDT,M3.2.0,M11.1.0": "America/New_York"}


@pytest.mark.parametrize("tz", list(_ZONES))
def test_naive_times_are_local_everywhere_and_found_again_with_the_same_naive_bounds(tz):
    out = _run(_CHILD, tz, "")
    for label, naive in (("summer", NAIVE_SUMMER), ("winter", NAIVE_WINTER)):
        got = out[label]
        assert got["found"] == sorted(f"{label}-{p}" for p in _ENTRY_POINTS)  # each exactly once
        assert got["stored"] == [_us(naive.replace(tzinfo=ZoneInfo(_ZONES[tz])))]  # the UTC of that local time
        assert got["sql"] == len(_ENTRY_POINTS) and got["scan"] == len(_ENTRY_POINTS)
    assert out["log"] == ["now"]  # log() with datetime.now() bounds, as the seed's examples do
    if _ZONES[tz] == "America/New_York":  # EDT in July, EST in January
        assert out["summer"]["stored"] == [_us(datetime(2025, 7, 1, 16, tzinfo=UTC))]
        assert out["winter"]["stored"] == [_us(datetime(2025, 1, 15, 14, 30, tzinfo=UTC))]
    else:
        assert out["summer"]["stored"] == [_us(datetime(2025, 7, 1, 6, 30, tzinfo=UTC))]


@pytest.mark.parametrize("how", ["argument", "env"])
def test_naive_time_utc_reads_naive_times_as_utc(how):
    extra = {"AXON_AUDIT_NAIVE_TIME": "UTC"} if how == "env" else {}
    out = _run(_CHILD, "America/New_York", "utc" if how == "argument" else "", **extra)
    for label, naive in (("summer", NAIVE_SUMMER), ("winter", NAIVE_WINTER)):
        assert out[label]["found"] == sorted(f"{label}-{p}" for p in _ENTRY_POINTS)
        assert out[label]["stored"] == [_us(naive.replace(tzinfo=UTC))]


_DST = r'''
import json
from datetime import datetime, timezone
import polars as pl
from axon_audit import AuditEvent, AuditLogger
from axon_audit.exceptions import AuditValueError
audit = AuditLogger()
out = {}
def refused(fn):
    try:
        fn()
    except AuditValueError as exc:
        return str(exc)
    return None
gap = datetime(2025, 3, 9, 2, 30)  # New York skips 02:00-03:00
out["dict"] = refused(lambda: audit.log_batch([{"operation": "store", "timestamp": datetime(2025, 3, 8)},
                                               {"operation": "store", "timestamp": gap}]))
out["iso"] = refused(lambda: audit.log_batch([{"operation": "store", "timestamp": "2025-03-09T02:30:00"}]))
out["polars"] = refused(lambda: audit.log_batch(pl.DataFrame({"operation": ["store"] * 3,
    "timestamp": [datetime(2025, 3, 8), datetime(2025, 3, 10), gap]})))
out["event"] = refused(lambda: AuditEvent("store", timestamp=gap))
out["held"] = audit.event_count
utc = timezone.utc
audit.log_batch([{"operation": "store", "user_id": "before", "timestamp": datetime(2025, 3, 9, 6, 59, 59, tzinfo=utc)},
                 {"operation": "store", "user_id": "after", "timestamp": datetime(2025, 3, 9, 7, tzinfo=utc)},
                 {"operation": "store", "user_id": "twice", "timestamp": "2025-11-02T01:30:00"}])
out["from_gap"] = [e.user_id for e in audit.query_events(start_time=gap, end_time=datetime(2025, 3, 10))]
out["until_gap"] = [e.user_id for e in audit.query_events(start_time=datetime(2025, 3, 8), end_time=gap)]
out["twice"] = audit.query_events(user_id="twice")[0].timestamp.isoformat()
print(json.dumps(out))
'''


@pytest.mark.parametrize("tz", ["America/New_York", "EST5EDT,M3.2.0,M11.1.0"])
def test_dst_gap_is_refused_for_events_and_a_bound_in_it_splits_at_the_change(tz):
    out = _run(_DST, tz)
    assert out["dict"].startswith("events: row 1: timestamp 2025-03-09T02:30:00 does not exist in local time (")
    assert out["iso"].startswith("events: row 0: timestamp 2025-03-09T02:30:00 does not exist")
    assert out["polars"].startswith("events: row 2: timestamp 2025-03-09T02:30:00 does not exist")
    assert "timestamp 2025-03-09T02:30:00 does not exist in local time" in out["event"]
    assert out["held"] == 0  # nothing of a refused batch was logged
    assert out["from_gap"] == ["after"] and out["until_gap"] == ["before"]
    assert out["twice"] == "2025-11-02T05:30:00+00:00"  # the repeated hour: its first (EDT) instant


def test_bad_naive_time_values_name_the_argument(tmp_path, monkeypatch):
    with pytest.raises(AuditValueError, match=r"^naive_time must be 'local' or 'utc', got 'gmt'$"):
        AuditLogger(naive_time="gmt")  # type: ignore[arg-type]
    with pytest.raises(AuditValueError, match=r"^naive_time must be 'local' or 'utc', got 5$"):
        open_archive(tmp_path, naive_time=5)  # type: ignore[arg-type]
    monkeypatch.setenv("AXON_AUDIT_NAIVE_TIME", "zulu")
    with pytest.raises(AuditValueError, match=r"^AXON_AUDIT_NAIVE_TIME must be 'local' or 'utc', got 'zulu'$"):
        naive_time_rule()
    assert naive_time_rule("Local") == "local"


_ARCHIVE = r'''
import json, sys
from datetime import datetime
from pathlib import Path
import orjson
from axon_audit import open_archive
folder = Path(sys.argv[1])
doc = {"events": [{"event_id": "evt_x", "timestamp": "2025-07-01T12:00:00", "operation": "STORE"}]}
path = folder / "other.json"
path.write_bytes(orjson.dumps(doc))
out = {}
for rule in ("local", "utc"):
    archive = open_archive(path, source="json", naive_time=rule)
    out[rule] = [e.timestamp.isoformat() for e in archive.query_events(start_time=datetime(2025, 7, 1, 12),
                                                                     end_time=datetime(2025, 7, 1, 12))]
print(json.dumps(out))
'''


def test_open_archive_reads_a_foreign_files_naive_times_by_its_rule(tmp_path):
    out = _run(_ARCHIVE, "America/New_York", str(tmp_path))
    assert out["local"] == ["2025-07-01T16:00:00+00:00"]
    assert out["utc"] == ["2025-07-01T12:00:00+00:00"]  # and the naive bounds follow the same rule


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("naive") / "exports"
    utc = timezone.utc
    with AuditLogger(auto_export_path=folder) as audit:
        audit.log_batch([{"operation": "store", "user_id": u, "timestamp": datetime(2025, 7, 1, h, tzinfo=utc)}
                         for u, h in (("at10", 10), ("at12", 12), ("at16", 16), ("at18", 18))])
    return folder


def _cli_users(folder: Path, tz: str, *args: str, **more_env: str) -> list[str]:
    proc = subprocess.run([script(), "query", str(folder), *args, "-f", "json"], capture_output=True, text=True,
                          timeout=120, env=env(TZ=tz, **more_env))
    assert proc.returncode == 0, proc.stderr
    return sorted(e["user_id"] for e in json.loads(proc.stdout)["events"])


def test_cli_since_without_offset_is_local_time_unless_told_utc(folder):
    window = ("--since", "2025-07-01T12:00:00", "--until", "2025-07-01T14:00:00")
    assert _cli_users(folder, "America/New_York", *window) == ["at16", "at18"]  # 16:00-18:00 UTC
    assert _cli_users(folder, "America/New_York", *window, "--naive-time", "utc") == ["at12"]
    assert _cli_users(folder, "America/New_York", "--naive-time", "UTC", *window) == ["at12"]
    assert _cli_users(folder, "America/New_York", *window, AXON_AUDIT_NAIVE_TIME="utc") == ["at12"]
    assert _cli_users(folder, "Asia/Kolkata", "--since", "2025-07-01T15:30:00", "--until",
                      "2025-07-01T17:30:00") == ["at10", "at12"]  # 10:00-12:00 UTC
    with_offset = ("--since", "2025-07-01T12:00:00Z", "--until", "2025-07-01T14:00:00+00:00")
    assert _cli_users(folder, "America/New_York", *with_offset) == ["at12"]  # an offset is taken as given


def test_cli_bad_naive_time_is_one_line_exit_2(folder):
    proc = subprocess.run([script(), "query", str(folder), "--since", "2025-07-01T12:00:00", "--naive-time", "gmt"],
                          capture_output=True, text=True, timeout=120, env=env())
    assert proc.returncode == 2 and "--naive-time" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([script(), "query", str(folder), "--since", "2025-07-01T12:00:00"], capture_output=True,
                          text=True, timeout=120, env=env(AXON_AUDIT_NAIVE_TIME="zulu"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "AXON_AUDIT_NAIVE_TIME must be 'local' or 'utc', got 'zulu'" in proc.stderr


_RETZ = r'''
import json, os, time
from datetime import datetime
from axon_audit import AuditLogger
out = []
for step in ("start", "env only", "tzset"):
    if step == "env only":
        os.environ["TZ"] = "Asia/Kolkata"  # the clock (datetime.now()) still follows New York
    elif step == "tzset":
        time.tzset()
    audit = AuditLogger()
    audit.log_batch([{"operation": "store", "timestamp": datetime(2025, 7, 1, 12)}])
    out.append(audit.query_events()[0].timestamp.isoformat())
print(json.dumps(out))
'''


def test_the_local_zone_is_the_one_the_process_clock_follows():
    assert _run(_RETZ, "America/New_York") == ["2025-07-01T16:00:00+00:00", "2025-07-01T16:00:00+00:00",
                                               "2025-07-01T06:30:00+00:00"]
