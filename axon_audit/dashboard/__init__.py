"""A local, read-only web dashboard over an export folder (`axon-audit serve PATH`).

Modules:

* `axon_audit.dashboard.params`: the API's query parameters, checked (a bad one
  raises `BadParam`, whose message names it).
* `axon_audit.dashboard.api`: pure functions from a source (an `AuditArchive`)
  to JSON-able dicts: summary, timeline, latency, users, alerts, events, user.
* `axon_audit.dashboard.server`: the stdlib `ThreadingHTTPServer` handler that
  serves those as ``/api/…``, the static page, the token check, the cache and the
  access log (every API read is itself an audit event, RECALL).
* ``static/``: index.html, app.js, style.css (vanilla JS, charts drawn as SVG, no
  external URL).

Nothing here is imported by ``import axon_audit``; the CLI's ``serve`` command is
in `axon_audit.app.serve_command`.
"""
