// axon-audit dashboard: a one-page app over the read-only JSON API (hash routes).
// Every value from the data goes into the page as text (textContent / text nodes /
// attributes), never as HTML; charts are SVG built here, no library, no external URL.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const COLORS = ["#2f6fde", "#e8833a", "#1e8e3e", "#c0392b", "#8e44ad", "#16a2b8", "#b7791f", "#7f8c8d"];
const NUM = new Intl.NumberFormat("en-US");
const view = () => document.getElementById("view");

// An element with attributes and children (strings become text nodes: never parsed as HTML).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = String(v);
    else e.setAttribute(k, String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}

function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  for (const c of children) e.append(c instanceof Node ? c : String(c));
  return e;
}

function titled(node, text) { node.append(svg("title", {}, text)); return node; }

async function api(path) {
  const res = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
  let body;
  try { body = await res.json(); } catch (e) { body = { error: res.statusText }; }
  if (!res.ok) throw new Error(body.error || `${res.status} ${res.statusText}`);
  return body;
}

const fmt = {
  n: (v) => (v === null || v === undefined ? "–" : NUM.format(v)),
  pct: (v) => (v === null || v === undefined ? "–" : `${(v * 100).toFixed(2)}%`),
  ms: (v) => (v === null || v === undefined ? "–" : `${v < 10 ? v.toFixed(2) : NUM.format(Math.round(v))} ms`),
  time: (v) => (v ? String(v).replace("T", " ").replace(/\.\d+/, "").replace("Z", " UTC").replace("+00:00", " UTC") : "–"),
  day: (v) => String(v).slice(0, 10),
  hour: (v) => String(v).slice(5, 13).replace("T", " ") + "h",
  span: (s) => {
    if (s === null || s === undefined) return "–";
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    return d ? `${d} d ${h} h` : h ? `${h} h ${m} min` : `${m} min ${Math.round(s % 60)} s`;
  },
};

function userLink(id) {
  return el("a", { href: `#/user/${encodeURIComponent(id)}`, class: "user-link" }, String(id));
}

function failure(err) { return el("p", { class: "error", role: "alert" }, String(err.message || err)); }

// ------------------------------------------------------------------ charts

// A round axis maximum at or above v, split into 4 round steps.
function scaleMax(v) {
  if (!(v > 0)) return 1;
  const raw = v / 4, p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= raw) return 4 * m * p;
  return 40 * p;
}

function frame(width, height, max, yfmt, pad) {
  const root = svg("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img" });
  for (let i = 0; i <= 4; i++) {
    const y = pad.t + (height - pad.t - pad.b) * (1 - i / 4);
    root.append(svg("line", { class: "axis", x1: pad.l, x2: width - pad.r, y1: y, y2: y }));
    root.append(svg("text", { x: pad.l - 6, y: y + 4, "text-anchor": "end" }, yfmt((max * i) / 4)));
  }
  return root;
}

// Every how many labels one is drawn so that they never overlap (a date takes ~84 px).
function labelStep(count, plotWidth) {
  return Math.max(1, Math.ceil(count / Math.max(2, Math.floor(plotWidth / 84))));
}

// Tick labels for a share axis with as many decimals as its step needs (0.05%, 1.5%, 25%).
function pctAxis(values) {
  const max = scaleMax(Math.max(0, ...values.filter((v) => v !== null)));
  const step = (max * 100) / 4;
  let digits = Math.max(0, -Math.floor(Math.log10(step)));
  if (Math.abs(step * 10 ** digits - Math.round(step * 10 ** digits)) > 1e-9) digits += 1;
  digits = Math.min(digits, 4);
  return { max, fmt: (v) => `${(v * 100).toFixed(digits)}%` };
}

function xLabels(root, labels, x, y, every) {
  labels.forEach((label, i) => {
    if (i % every === 0) root.append(svg("text", { x: x(i), y, "text-anchor": "middle" }, label));
  });
}

function legend(names) {
  return el("div", { class: "legend" },
    ...names.map((n, i) => el("span", {}, el("span", { class: "sw", "data-color": COLORS[i % COLORS.length] }), n)));
}

function paintSwatches(root) {
  // CSSOM, not a style attribute: allowed by the page's Content-Security-Policy.
  root.querySelectorAll("span.sw").forEach((s) => { s.style.background = s.dataset.color; });
}

function stackedBars(labels, series, names, opts = {}) {
  const W = opts.width || 900, H = 260, pad = { l: 56, r: 10, t: 10, b: 28 };
  const totals = labels.map((_, i) => names.reduce((s, n) => s + (series[n][i] || 0), 0));
  const max = scaleMax(Math.max(0, ...totals));
  const root = frame(W, H, max, (v) => NUM.format(v), pad);
  const bw = (W - pad.l - pad.r) / Math.max(1, labels.length);
  const y = (v) => ((H - pad.t - pad.b) * v) / max;
  labels.forEach((label, i) => {
    let base = H - pad.b;
    names.forEach((n, k) => {
      const v = series[n][i] || 0;
      if (!v) return;
      const h = y(v);
      base -= h;
      const w = Math.max(1, Math.min(bw * 0.8, 48));
      root.append(titled(svg("rect", { x: pad.l + i * bw + (bw - w) / 2, y: base, width: w,
        height: h, fill: COLORS[k % COLORS.length] }), `${label} ${n}: ${NUM.format(v)}`));
    });
  });
  xLabels(root, labels.map(opts.xfmt || String), (i) => pad.l + i * bw + bw / 2, H - 8,
    labelStep(labels.length, W - pad.l - pad.r));
  return root;
}

function lines(labels, series, names, yfmt, opts = {}) {
  const W = opts.width || 900, H = opts.height || 220, pad = { l: 64, r: 10, t: 10, b: 28 };
  const all = names.flatMap((n) => series[n].filter((v) => v !== null));
  const max = opts.max || scaleMax(Math.max(0, ...all));
  const root = frame(W, H, max, yfmt, pad);
  const step = (W - pad.l - pad.r) / Math.max(1, labels.length - 1);
  const x = (i) => (labels.length === 1 ? (W + pad.l - pad.r) / 2 : pad.l + i * step);
  const y = (v) => H - pad.b - ((H - pad.t - pad.b) * v) / max;
  names.forEach((n, k) => {
    const pts = series[n].map((v, i) => (v === null ? null : `${x(i).toFixed(1)},${y(v).toFixed(1)}`)).filter(Boolean);
    const color = COLORS[k % COLORS.length];
    root.append(svg("polyline", { points: pts.join(" "), fill: "none", stroke: color, "stroke-width": 2 }));
    series[n].forEach((v, i) => {
      if (v !== null) root.append(titled(svg("circle", { cx: x(i), cy: y(v), r: 2.5, fill: color }),
        `${labels[i]} ${n}: ${yfmt(v)}`));
    });
  });
  xLabels(root, labels.map(opts.xfmt || String), x, H - 8, labelStep(labels.length, W - pad.l - pad.r));
  return root;
}

function bars(labels, values, opts = {}) {
  const W = opts.width || 900, H = opts.height || 220, pad = { l: 56, r: 10, t: 10, b: 28 };
  const max = scaleMax(Math.max(0, ...values));
  const root = frame(W, H, max, (v) => NUM.format(v), pad);
  const bw = (W - pad.l - pad.r) / Math.max(1, labels.length);
  values.forEach((v, i) => {
    const h = ((H - pad.t - pad.b) * v) / max;
    const w = Math.min(bw * 0.8, 48);
    root.append(titled(svg("rect", { x: pad.l + i * bw + (bw - w) / 2, y: H - pad.b - h, width: w, height: h,
      fill: COLORS[0] }), `${(opts.titles || labels)[i]}: ${NUM.format(v)}`));
  });
  xLabels(root, labels, (i) => pad.l + i * bw + bw / 2, H - 8, Math.max(1, Math.ceil(labels.length / 14)));
  return root;
}

const HALF = 560; // viewBox width of a chart in a half-width panel: its text stays legible

function edgeLabel(ms, i, all) {
  const t = ms >= 1000 ? `${ms / 1000}s` : String(ms);
  return i === all.length - 1 ? `≥${t}` : t;
}

function panel(title, ...children) { return el("section", { class: "panel" }, el("h2", {}, title), ...children); }

// ------------------------------------------------------------------ tables

function table(columns, rows, opts = {}) {
  const head = el("tr", {}, ...columns.map((c) => el("th", { scope: "col" }, c.label || c.key)));
  const body = el("tbody", {});
  for (const row of rows) {
    const tr = el("tr", { class: row.status === "FAILURE" ? "failure" : null });
    for (const c of columns) {
      const v = row[c.key];
      const td = el("td", { class: c.cls || null, "data-col": c.key });
      if (c.render) td.append(c.render(v, row));
      else td.textContent = v === null || v === undefined ? "" : Array.isArray(v) ? v.join(", ") : String(v);
      tr.append(td);
    }
    body.append(tr);
  }
  return el("table", { id: opts.id || null }, el("thead", {}, head), body);
}

const EVENT_COLUMNS = [
  { key: "timestamp", label: "time (UTC)", render: (v) => fmt.time(v) },
  { key: "operation" }, { key: "user_id", label: "user", render: (v) => (v === null ? "" : userLink(v)) },
  { key: "session_id", label: "session", cls: "mono" }, { key: "status" },
  { key: "duration_ms", label: "ms", cls: "num", render: (v) => (v === null ? "" : v.toFixed(1)) },
  { key: "error_message", label: "error" }, { key: "entry_ids", label: "entries", cls: "mono" },
  { key: "metadata", cls: "mono" }, { key: "event_id", label: "event id", cls: "mono" },
];

// ------------------------------------------------------------------ pages

function cards(items, id) {
  return el("dl", { class: "cards", id },
    ...items.map(([key, label, value, raw]) => el("div", { class: /(_event|_activity|time_span)$/.test(key) ? "card time" : "card", "data-key": key },
      el("dt", {}, label), el("dd", { "data-value": raw === undefined ? "" : raw }, value))));
}

async function overview(root, params) {
  let bucket = params.get("bucket") === "hour" ? "hour" : "day";
  let [s, tl, lat, us, al] = await Promise.all([api("/api/summary"), api(`/api/timeline?bucket=${bucket}`),
    api("/api/latency"), api("/api/users?top=10"), api("/api/alerts")]);
  if (!params.get("bucket") && tl.start.length < 3) {  // a day or two: hours say more
    bucket = "hour";
    tl = await api("/api/timeline?bucket=hour");
  }
  document.getElementById("folder").textContent = `folder: ${s.path}`;
  if (!s.total_events) {
    root.append(el("p", { class: "error", id: "empty" },
      "No audit events in this folder (is it a folder an AuditLogger exports to?)"));
  }
  root.append(cards([
    ["total_events", "Events", fmt.n(s.total_events), s.total_events],
    ["unique_users", "Users", fmt.n(s.unique_users), s.unique_users],
    ["unique_sessions", "Sessions", fmt.n(s.unique_sessions), s.unique_sessions],
    ["success_rate", "Success rate", fmt.pct(s.success_rate), s.success_rate],
    ["failure_count", "Failures", fmt.n(s.failure_count), s.failure_count],
    ["alerts", "Security alerts", fmt.n(al.count), al.count],
    ["time_span", "Time span", fmt.span(s.time_span_seconds), s.time_span_seconds],
    ["first_event", "First event", fmt.time(s.first_event), s.first_event],
    ["last_event", "Last event", fmt.time(s.last_event), s.last_event],
  ], "totals"));
  const xfmt = bucket === "hour" ? fmt.hour : fmt.day;
  const toggle = el("span", { class: "toggle" },
    el("a", { href: "#/?bucket=day", class: bucket === "day" ? "on" : "" }, "per day"),
    el("a", { href: "#/?bucket=hour", class: bucket === "hour" ? "on" : "" }, "per hour"));
  const events = panel("Events over time by operation",
    stackedBars(tl.start, tl.by_operation, tl.operations, { xfmt }), legend(tl.operations));
  events.querySelector("h2").append(toggle);
  root.append(events);
  const rate = { "failure rate": tl.failure_rate };
  const share = pctAxis(tl.failure_rate);
  root.append(el("div", { class: "grid2" },
    panel("Failure rate over time", lines(tl.start, rate, ["failure rate"], share.fmt,
      { xfmt, width: HALF, max: share.max })),
    panel("Latency per day (p50 / p95 / p99)",
      lines(lat.daily.start, { p50: lat.daily.p50, p95: lat.daily.p95, p99: lat.daily.p99 }, ["p50", "p95", "p99"],
        (v) => `${NUM.format(v >= 10 ? Math.round(v) : v)} ms`, { xfmt: fmt.day, width: HALF }), legend(["p50", "p95", "p99"]))));
  const o = lat.overall;
  root.append(el("div", { class: "grid2" },
    panel(`Latency histogram (p50 ${fmt.ms(o.p50)}, p95 ${fmt.ms(o.p95)}, p99 ${fmt.ms(o.p99)})`,
      bars(lat.histogram.edges_ms.map(edgeLabel), lat.histogram.counts,
        { width: HALF, height: 260, titles: lat.histogram.labels }),
      el("p", { class: "muted" }, "bins by lower edge (ms; s = seconds); hover a bar for its range")),
    panel(`Top users (of ${fmt.n(us.unique_users)})`, table([
      { key: "user_id", label: "user", render: (v) => (v === null ? "(none)" : userLink(v)) },
      { key: "events", cls: "num", render: fmt.n }, { key: "failures", cls: "num", render: fmt.n },
      { key: "sessions", cls: "num", render: fmt.n },
      { key: "last_activity", label: "last activity", render: fmt.time }], us.users, { id: "top-users" }))));
  paintSwatches(root);
}

const FILTERS = ["user_id", "operation", "status", "since", "until", "limit"];
const OPERATIONS = ["STORE", "RECALL", "FORGET", "COMPACT", "EXPORT", "IMPORT", "BULK_STORE", "REINDEX"];
const STATUSES = ["SUCCESS", "FAILURE", "PARTIAL"];

function select(name, values, current) {
  const s = el("select", { name }, el("option", { value: "" }, "any"));
  for (const v of values) s.append(el("option", { value: v }, v));
  s.value = (current || "").toUpperCase();
  return s;
}

async function eventsPage(root, params) {
  const form = el("form", { class: "filters", id: "event-filters" },
    el("label", {}, "user", el("input", { name: "user_id", value: params.get("user_id") || "", size: 18 })),
    el("label", {}, "operation", select("operation", OPERATIONS, params.get("operation"))),
    el("label", {}, "status", select("status", STATUSES, params.get("status"))),
    el("label", {}, "since (UTC)", el("input", { name: "since", placeholder: "2025-01-31", value: params.get("since") || "" })),
    el("label", {}, "until (UTC)", el("input", { name: "until", placeholder: "2025-02-01T12:00", value: params.get("until") || "" })),
    el("label", {}, "limit", el("input", { name: "limit", type: "number", min: 1, max: 10000, value: params.get("limit") || 100 })),
    el("button", { type: "submit" }, "Apply"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const n of FILTERS) { const v = form.elements[n].value.trim(); if (v) q.set(n, v); }
    // The page shown is no longer the answer from here until the new route has rendered
    // (hashchange fires later): readers of data-ready must not take the old table for it.
    root.removeAttribute("data-ready");
    location.hash = `#/events?${q}`;
  });
  root.append(panel("Events (newest first)", form));
  const q = new URLSearchParams();
  for (const n of FILTERS) if (params.get(n)) q.set(n, params.get(n));
  const out = el("div", { id: "events-result" });
  root.append(out);
  try {
    const r = await api(`/api/events?${q}`);
    out.append(el("p", { id: "events-count", class: "muted", "data-shown": r.events.length, "data-total": r.total },
      `${fmt.n(r.events.length)} of ${fmt.n(r.total)} matching events`));
    out.append(table(EVENT_COLUMNS, r.events, { id: "events-table" }));
  } catch (err) { out.append(failure(err)); }
}

async function userPage(root, userId) {
  root.append(el("h2", {}, "Subject access view: ", el("span", { id: "user-title", class: "mono" }, userId)));
  const u = await api(`/api/user/${encodeURIComponent(userId)}`);
  const st = u.statistics;
  root.append(cards([
    ["total_operations", "Events", fmt.n(st.total_operations), st.total_operations],
    ["unique_sessions", "Sessions", fmt.n(st.unique_sessions), st.unique_sessions],
    ["success_rate", "Success rate", fmt.pct(st.success_rate), st.success_rate],
    ["failure_count", "Failures", fmt.n(st.failure_count), st.failure_count],
    ["avg_duration_ms", "Mean latency", fmt.ms(st.avg_duration_ms), st.avg_duration_ms],
    ["most_common_operation", "Most common", st.most_common_operation || "–", st.most_common_operation],
    ["first_activity", "First activity", fmt.time(st.first_activity), st.first_activity],
    ["last_activity", "Last activity", fmt.time(st.last_activity), st.last_activity],
  ], "user-totals"));
  const ops = Object.keys(u.operations);
  root.append(el("div", { class: "grid2" },
    panel("Operations", bars(ops, ops.map((k) => u.operations[k]), { height: 200, width: HALF })),
    panel(`Sessions (${fmt.n(u.session_count)})`, table([
      { key: "session_id", label: "session", cls: "mono" }, { key: "events", cls: "num", render: fmt.n },
      { key: "failures", cls: "num", render: fmt.n }, { key: "first", render: fmt.time },
      { key: "last", render: fmt.time }], u.sessions, { id: "user-sessions" }))));
  root.append(panel(`Events (newest ${fmt.n(u.events.length)} of ${fmt.n(u.total)})`,
    table(EVENT_COLUMNS, u.events, { id: "user-events" })));
}

async function alertsPage(root) {
  const r = await api("/api/alerts");
  root.append(panel(`Security alerts (${fmt.n(r.count)})`, r.count ? table([
    { key: "severity", render: (v) => el("span", { class: `sev-${String(v).toLowerCase()}` }, v) },
    { key: "rule" }, { key: "user_id", label: "user", render: (v) => (v ? userLink(v) : "") },
    { key: "window_start", label: "from", render: fmt.time }, { key: "window_end", label: "to", render: fmt.time },
    { key: "count", cls: "num" }, { key: "threshold", cls: "num" }, { key: "event_count", label: "events", cls: "num" },
    { key: "message" }], r.alerts, { id: "alerts-table" }) : el("p", { class: "muted" }, "No alerts.")));
}

async function integrityPage(root) {
  const r = await api("/api/integrity");
  const state = r.state === "checking" ? "checking…" : r.ok ? "OK: nothing altered, removed or inserted" : "PROBLEMS FOUND";
  root.append(panel("Integrity (axon_audit.verify, run once at start)",
    el("p", { id: "integrity-state" }, state),
    r.state === "checking" ? "" : el("p", { class: "muted" },
      `${fmt.n(r.events_checked)} events in ${fmt.n(r.files_checked)} files checked in ${r.seconds} s`),
    ...(r.problems || []).map((p) => el("p", { class: "error" }, p)),
    ...(r.notes || []).map((p) => el("p", { class: "muted" }, p))));
  if (r.state === "checking") setTimeout(() => { if (location.hash.startsWith("#/integrity")) route(); }, 1000);
}

async function badge() {
  const b = document.getElementById("integrity-badge");
  try {
    const r = await api("/api/integrity");
    if (r.state === "checking") { setTimeout(badge, 1000); return; }
    b.className = `badge ${r.ok ? "ok" : "bad"}`;
    b.textContent = r.ok ? `integrity: ok (${fmt.n(r.events_checked)} events)` : `integrity: ${r.problems.length} problem(s)`;
  } catch (err) { b.className = "badge bad"; b.textContent = "integrity: unavailable"; }
}

// ------------------------------------------------------------------ routing

let routed = 0; // only the newest route marks the page ready (an older one may finish later)

async function route() {
  const mine = ++routed;
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?", 2);
  const params = new URLSearchParams(query || "");
  const root = el("div", { id: "page" });
  view().replaceChildren(root);
  const name = path.startsWith("/user/") ? "user" : path.slice(1) || "overview";
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.route === name));
  try {
    if (name === "overview") await overview(root, params);
    else if (name === "events") await eventsPage(root, params);
    else if (name === "alerts") await alertsPage(root);
    else if (name === "integrity") await integrityPage(root);
    else if (name === "user") await userPage(root, decodeURIComponent(path.slice("/user/".length)));
    else root.append(failure(new Error(`no such page: ${path}`)));
  } catch (err) { root.append(failure(err)); }
  if (mine === routed) root.setAttribute("data-ready", "1");
}

window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", () => { route(); badge(); });
