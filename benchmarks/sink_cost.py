"""What the sinks deliver per second, and what one attached costs the logging path.

    PYTHONPATH=. .venv/bin/python benchmarks/sink_cost.py [--events N] [--rounds R] [--cost-events M] [--cost-only]

The receivers run in a child process (so their parsing does not share the GIL
with the sink): an HTTP server that answers 200 to every POST (webhook, OTLP) and
a TCP syslog receiver that cuts the octet-counted stream into messages and counts
them (the syslog run checks it got every event).

1. Throughput: a sink is started, N events are logged with `log_batch` (1,000 a
   call, full arguments, so logging is not what limits), the logger is closed
   and the sink joined; events/s = N / (time from the first log to the sink's
   last delivery). One figure per sink (``webhook``, ``otlp``, ``syslog``, TCP,
   CEF), the median of R rounds, interleaved.
2. Cost on the logging path: ``await log_event(...)`` M times with nothing
   attached (``none``) or one sink to the same receivers; CPU time of the logging
   thread (`time.thread_time`) and wall time of the loop (which counts the sink's
   thread: they share the GIL), per event, medians of R interleaved rounds, and
   each case's ratio to its baseline, paired: in each round the case and its
   baseline run back to back, their ratio is taken, and the median of those R
   ratios is reported (beside the ratio of the medians). ``webhook+cursor`` is
   the durable webhook sink (`axon_audit.integrations.sinks.durable`: a cursor
   file rewritten and fsynced after every batch); it needs an export folder, so
   its baseline is ``export`` (the same logger with `auto_export_path`, no sink).
   Budget: every ratio within 1.05.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import socketserver
import statistics
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import polars as pl

from axon_audit import AuditLogger
from axon_audit.integrations.sinks import OTLPSink, Sink, SyslogSink, WebhookSink
from benchmarks._timing import LOG_EVENT_ARGS, log_event_loop

ARGS = LOG_EVENT_ARGS
SINKS = ("webhook", "otlp", "syslog")


def _receivers(ports: Any, counts: Any) -> None:
    """The child process: an HTTP receiver and a TCP syslog receiver, serving until killed."""

    class Http(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    class Syslog(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            buf, n = b"", 0
            while data := self.request.recv(1 << 20):
                buf += data
                i = 0
                while (space := buf.find(b" ", i)) >= 0:
                    end = space + 1 + int(buf[i:space])
                    if end > len(buf):
                        break
                    n += 1
                    i = end
                buf = buf[i:]
                with counts.get_lock():
                    counts.value += n
                n = 0

    http = ThreadingHTTPServer(("127.0.0.1", 0), Http)
    socketserver.ThreadingTCPServer.daemon_threads = True
    tcp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Syslog)
    ports[0], ports[1] = http.server_address[1], tcp.server_address[1]
    threading.Thread(target=tcp.serve_forever, daemon=True).start()
    http.serve_forever()


def _sink(kind: str, audit: AuditLogger, ports: tuple[int, int], cursor: str | None = None) -> Sink:
    if kind == "webhook+cursor":
        return WebhookSink(audit, f"http://127.0.0.1:{ports[0]}/hook", cursor=cursor)
    if kind == "webhook":
        return WebhookSink(audit, f"http://127.0.0.1:{ports[0]}/hook")
    if kind == "otlp":
        return OTLPSink(audit, f"http://127.0.0.1:{ports[0]}")
    return SyslogSink(audit, ("127.0.0.1", ports[1]), transport="tcp")


def throughput(kind: str, n: int, ports: tuple[int, int], counts: Any) -> float:
    """Events per second the sink delivers (see the module)."""
    chunk = pl.DataFrame({"operation": ["STORE"] * 1000, **{k: [v] * 1000 for k, v in ARGS.items()
                                                            if k not in ("metadata", "error_message")}})
    audit = AuditLogger(max_events=n + 1)
    sink = _sink(kind, audit, ports).start()
    before = counts.value
    gc.collect()
    t0 = time.perf_counter()
    for _ in range(n // 1000):
        audit.log_batch(chunk)
    audit.close()
    assert sink.join(300)
    seconds = time.perf_counter() - t0
    sink.close()
    assert sink.delivered == n // 1000 * 1000 and sink.pending == 0, sink
    if kind == "syslog":
        end = time.monotonic() + 10
        while counts.value - before < sink.delivered and time.monotonic() < end:
            time.sleep(0.01)
        assert counts.value - before == sink.delivered, (counts.value - before, sink.delivered)
    return sink.delivered / seconds


# Each cost case, and the case its ratio is taken against.
BASELINE = {"none": "none", "webhook": "none", "otlp": "none", "syslog": "none", "export": "export",
            "webhook+cursor": "export"}


def cost(case: str, n: int, ports: tuple[int, int]) -> tuple[float, float]:
    """(CPU µs, wall µs) per `log_event` with `case` attached."""
    with tempfile.TemporaryDirectory() as folder:
        exports = case in ("export", "webhook+cursor")
        audit = AuditLogger(max_events=n + 1, auto_export_path=folder + "/audit" if exports else None)
        sink = None if case in ("none", "export") else _sink(case, audit, ports, folder + "/hook.cursor.json").start()
        gc.collect()
        cpu, wall = asyncio.run(log_event_loop(audit, n))
        audit.close()
        if sink is not None:
            assert sink.join(300)
            sink.close()
            assert sink.delivered == n, sink
    return cpu / n * 1e6, wall / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000, help="events per throughput run")
    ap.add_argument("--cost-events", type=int, default=50_000, help="log_event calls per cost run")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cost-only", action="store_true", help="skip the throughput part")
    a = ap.parse_args()
    ctx = multiprocessing.get_context("spawn")
    shared_ports, counts = ctx.Array("i", 2), ctx.Value("q", 0)
    child = ctx.Process(target=_receivers, args=(shared_ports, counts), daemon=True)
    child.start()
    try:
        while not shared_ports[1]:
            time.sleep(0.01)
        ports = (shared_ports[0], shared_ports[1])
        rates: dict[str, list[float]] = {k: [] for k in SINKS}
        for r in range(0 if a.cost_only else a.rounds):
            for k in SINKS[r % 3:] + SINKS[: r % 3]:  # each first in turn
                rates[k].append(throughput(k, a.events, ports, counts))
        if not a.cost_only:
            print(f"throughput (median of {a.rounds}; {a.events} events logged with log_batch)")
            for k in SINKS:
                runs = "/".join(f"{x:,.0f}" for x in rates[k])
                print(f"  {k:8} {statistics.median(rates[k]):>10,.0f} events/s   runs: {runs}")

        cases = [c for c in BASELINE if BASELINE[c] != c]
        runs: dict[str, list[tuple[tuple[float, float], tuple[float, float]]]] = {c: [] for c in cases}
        for r in range(a.rounds):  # each round: every (baseline, case) pair back to back; the order turns
            for c in cases[r % len(cases):] + cases[: r % len(cases)]:
                base_run = cost(BASELINE[c], a.cost_events, ports)
                runs[c].append((base_run, cost(c, a.cost_events, ports)))
        print(f"\nlog_event cost ({a.cost_events} events; medians of {a.rounds} rounds; ratio = median of the "
              f"{a.rounds} paired ratios case/baseline, [ratio of the medians])")
        print(f"  {'case':15} {'baseline':8} {'cpu us/event':>17} {'wall us/event':>17} {'cpu ratio':>16} "
              f"{'wall ratio':>16}")
        for c in cases:
            for k, name in ((0, "cpu"), (1, "wall")):
                base_med = statistics.median(x[0][k] for x in runs[c])
                case_med = statistics.median(x[1][k] for x in runs[c])
                paired = statistics.median(x[1][k] / x[0][k] for x in runs[c])
                if name == "cpu":
                    cells = f"  {c:15} {BASELINE[c]:8} {base_med:7.2f} -> {case_med:6.2f}"
                    ratios = f"{paired:7.3f} [{case_med / base_med:.3f}]"
                else:
                    cells += f" {base_med:7.2f} -> {case_med:6.2f}"
                    ratios += f" {paired:7.3f} [{case_med / base_med:.3f}]"
            print(f"{cells}  {ratios}")
    finally:
        child.kill()
        child.join()


if __name__ == "__main__":
    main()
