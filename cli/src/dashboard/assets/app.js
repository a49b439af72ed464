// weft dashboard: polls /api/snapshot every 2 s and draws it; the tap panel streams /api/tap.
// Every element a test reads carries a data- attribute (data-edge, data-node, data-endpoint,
// data-route, data-service, data-tap-event) holding the raw number, not the formatted text.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const POLL_MS = 2000;
const TAP_ROWS = 200;

function el(tag, attrs, text) {
  const node = tag.startsWith("svg:")
    ? document.createElementNS(SVG, tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined) node.setAttribute(k, String(v));
  }
  if (text !== undefined) node.textContent = text;
  return node;
}

const pct = (r) => (r === null || r === undefined ? "-" : (r * 100).toFixed(2) + "%");
const ms = (v) => (v === null || v === undefined ? "-" : v < 10 ? v.toFixed(2) + "ms" : v.toFixed(0) + "ms");
const rps = (v) => v.toFixed(2) + " rps";
const shortRps = (v) => (v >= 100 ? v.toFixed(0) : v.toFixed(1)) + " rps";
const shortPct = (r) => (r === null || r === undefined ? "-" : +(r * 100).toFixed(2) + "%");
const attr = (v) => (v === null || v === undefined ? "" : String(v));

function health(stats) {
  if (!stats || stats.requests <= 0 || stats.success_rate === null) return "idle";
  if (stats.success_rate >= 0.99) return "good";
  if (stats.success_rate >= 0.95) return "warn";
  return "bad";
}

// ---- the service graph -------------------------------------------------------------------

function layout(snapshot) {
  const nodes = new Map();
  const add = (id, kind) => { if (!nodes.has(id)) nodes.set(id, { id, kind, depth: 0 }); };
  for (const w of snapshot.workloads) add(w.id, "workload");
  for (const e of snapshot.edges) {
    add(e.source, e.source === "unmeshed" ? "unmeshed" : "workload");
    add(e.destination, e.destination_identity ? "workload" : "service");
  }
  // Depth: the longest chain of callers above a node (bounded, so cycles end).
  for (let round = 0; round < nodes.size; round++) {
    let changed = false;
    for (const e of snapshot.edges) {
      const from = nodes.get(e.source), to = nodes.get(e.destination);
      if (from !== to && to.depth < from.depth + 1 && from.depth + 1 < nodes.size) {
        to.depth = from.depth + 1;
        changed = true;
      }
    }
    if (!changed) break;
  }
  const columns = [];
  for (const n of [...nodes.values()].sort((a, b) => a.id.localeCompare(b.id))) {
    (columns[n.depth] = columns[n.depth] || []).push(n);
  }
  columns.forEach((column, depth) => column.forEach((n, row) => {
    n.x = 30 + depth * COLUMN;
    n.y = 50 + row * ROW;
  }));
  const width = Math.max(2 * COLUMN, 60 + (columns.length - 1) * COLUMN + NODE_W);
  const height = Math.max(180, 70 + Math.max(1, ...columns.map((c) => c.length)) * ROW);
  return { nodes, width, height };
}

const NODE_W = 160, NODE_H = 44, COLUMN = 480, ROW = 130;

function drawGraph(snapshot) {
  const svg = document.getElementById("graph");
  const { nodes, width, height } = layout(snapshot);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.replaceChildren();
  const defs = el("svg:defs");
  for (const h of ["good", "warn", "bad", "idle"]) {
    const marker = el("svg:marker", { id: "arrow-" + h, viewBox: "0 0 10 10", refX: 10, refY: 5,
      markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
    marker.append(el("svg:path", { d: "M0,0 L10,5 L0,10 z", class: "arrow-" + h,
      fill: { good: "#2e7d32", warn: "#e0a000", bad: "#c62828", idle: "#9aa5ae" }[h] }));
    defs.append(marker);
  }
  svg.append(defs);
  const pods = new Map(snapshot.workloads.map((w) => [w.id, w]));
  snapshot.edges.forEach((e, i) => svg.append(drawEdge(e, nodes, i)));
  for (const n of nodes.values()) {
    const w = pods.get(n.id);
    const g = el("svg:g", { class: "node " + n.kind, "data-node": n.id, "data-kind": n.kind,
      "data-pods": w ? w.meshed_pods : "", transform: `translate(${n.x},${n.y})` });
    g.append(el("svg:rect", { width: NODE_W, height: NODE_H }));
    g.append(el("svg:text", { x: 10, y: 18 }, n.id));
    const sub = w ? `${w.meshed_pods} pod${w.meshed_pods === 1 ? "" : "s"} · ${rps(w.inbound.requests_per_second)}`
      : n.kind === "unmeshed" ? "no identity" : "no sidecar answered";
    g.append(el("svg:text", { x: 10, y: 35, class: "sub" }, sub));
    if (w && w.fault_drills > 0) g.append(badge(NODE_W - 4, 0, "drill", "fault drill active"));
    svg.append(g);
  }
}

function drawEdge(e, nodes, i) {
  const from = nodes.get(e.source), to = nodes.get(e.destination);
  const h = health(e.stats);
  const g = el("svg:g", {
    class: "edge " + h, "data-edge": e.id, "data-source": e.source,
    "data-destination": e.destination, "data-service": e.service,
    "data-rate": e.stats.requests_per_second, "data-success": attr(e.stats.success_rate),
    "data-p99": attr(e.stats.p99_ms), "data-mtls": e.mtls, "data-health": h,
    "data-breakers-open": e.breakers_open, "data-fault-drills": e.fault_drills,
  });
  const x1 = from.x + NODE_W, y1 = from.y + NODE_H / 2 + (i % 3) * 4;
  const x2 = to.x, y2 = to.y + NODE_H / 2 + (i % 3) * 4;
  const bend = Math.max(60, Math.abs(x2 - x1) / 2);
  const d = from === to
    ? `M${x1},${y1} C${x1 + 80},${y1 - 80} ${x2 - 80},${y2 - 80} ${x2},${y2}`
    : `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`;
  g.append(el("svg:path", { d, "marker-end": `url(#arrow-${h})` }));
  const mx = (x1 + x2) / 2, my = (y1 + y2) / 2 - 10 - (i % 2) * 14;
  const label = `${e.service} · ${shortRps(e.stats.requests_per_second)} · ` +
    `${shortPct(e.stats.success_rate)} · p99 ${ms(e.stats.p99_ms)}`;
  g.append(el("svg:text", { x: mx, y: my, "text-anchor": "middle", class: "label" }, label));
  g.append(el("svg:title", {}, `${e.source} → ${e.service} (${e.destination})\n` +
    `${e.source_identity} → ${e.destination_identity || "no identity"}`));
  // Above the label: the lock, then a badge per open breaker or active drill.
  let ix = mx - 8;
  if (e.mtls) { g.append(lock(ix - 6, my - 34)); ix += 22; }
  if (e.breakers_open > 0) {
    g.append(badge(ix + 4, my - 27, "breaker", `${e.breakers_open} breaker(s) open`));
    g.append(el("svg:text", { x: ix + 16, y: my - 23, class: "badge-text" },
      `${e.breakers_open} breaker${e.breakers_open === 1 ? "" : "s"} open`));
    ix += 130;
  }
  if (e.fault_drills > 0) {
    g.append(badge(ix + 4, my - 27, "drill", "fault drill active"));
    g.append(el("svg:text", { x: ix + 16, y: my - 23, class: "badge-text" }, "fault drill"));
  }
  return g;
}

function lock(x, y) {
  const g = el("svg:g", { class: "lock", "data-lock": "mtls", transform: `translate(${x},${y})` });
  g.append(el("svg:path", { d: "M3,6 V3.5 A3,3 0 0 1 9,3.5 V6" }));
  g.append(el("svg:rect", { x: 1, y: 6, width: 10, height: 7, rx: 1 }));
  g.append(el("svg:title", {}, "mutual TLS"));
  return g;
}

function badge(x, y, kind, title) {
  const g = el("svg:g", { class: "badge", "data-badge": kind, transform: `translate(${x},${y})` });
  g.append(el("svg:circle", { r: 8 }));
  g.append(el("svg:text", { "text-anchor": "middle", y: 4 }, "!"));
  g.append(el("svg:title", {}, title));
  return g;
}

// ---- golden-signal charts per service ---------------------------------------------------

function drawServices(snapshot, history) {
  const box = document.getElementById("services");
  box.replaceChildren();
  for (const s of snapshot.services) {
    const points = history.map((r) => r.services[s.name]).filter(Boolean);
    const card = el("div", { class: "service-card", "data-service": s.name,
      "data-rps": s.effective.requests_per_second, "data-success": attr(s.effective.success_rate),
      "data-actual-success": attr(s.actual.success_rate), "data-points": points.length });
    card.append(el("h3", {}, `${s.name} — ${rps(s.effective.requests_per_second)}, ` +
      `${pct(s.effective.success_rate)} (servers: ${pct(s.actual.success_rate)}), ` +
      `p50 ${ms(s.effective.p50_ms)} p95 ${ms(s.effective.p95_ms)} p99 ${ms(s.effective.p99_ms)}`));
    const charts = el("div", { class: "charts" });
    charts.append(chart("requests/s", points, [["rate", (p) => p.rps]]));
    charts.append(chart("success", points, [["success", (p) => p.success]], 1));
    charts.append(chart("latency ms", points, [["p50", (p) => p.p50_ms], ["p95", (p) => p.p95_ms],
      ["p99", (p) => p.p99_ms]]));
    card.append(charts);
    box.append(card);
  }
}

function chart(title, points, lines, fixedMax) {
  const W = 180, H = 70;
  const svg = el("svg:svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, "data-chart": title });
  const values = lines.flatMap(([, f]) => points.map(f)).filter((v) => v !== null && v !== undefined);
  const max = fixedMax || Math.max(1e-9, ...values);
  for (const [cls, f] of lines) {
    const xy = points.map((p, i) => [i, f(p)]).filter(([, v]) => v !== null && v !== undefined)
      .map(([i, v]) => `${(i / Math.max(1, points.length - 1)) * W},${H - 4 - (v / max) * (H - 16)}`);
    svg.append(el("svg:polyline", { class: cls, points: xy.join(" ") }));
  }
  const shown = values.length ? +Math.max(...values).toPrecision(3) : "-";
  svg.append(el("svg:text", { x: 4, y: 10 }, `${title} (max ${shown})`));
  return svg;
}

// ---- tables ------------------------------------------------------------------------------

function fill(id, rows) {
  document.querySelector(`#${id} tbody`).replaceChildren(...rows);
}

function row(attrs, cells) {
  const tr = el("tr", attrs);
  for (const c of cells) tr.append(el("td", {}, c));
  return tr;
}

function drawTables(snapshot) {
  fill("endpoints", snapshot.endpoints.map((e) => row(
    { "data-endpoint": e.address, "data-caller": e.caller, "data-service": e.service,
      "data-state": e.state, "data-ewma-ms": attr(e.ewma_ms) },
    [e.caller, e.service, e.address, e.identity || "-", e.state, ms(e.ewma_ms),
      attr(e.consecutive_failures) || "-"])));
  fill("routes", snapshot.routes.map((r) => row(
    { "data-route": `${r.service}/${r.route}`, "data-effective-success": attr(r.effective.success_rate),
      "data-actual-success": attr(r.actual.success_rate), "data-retries": r.retries,
      "data-budget-exhausted": r.budget_exhausted },
    [r.service, r.route, pct(r.effective.success_rate), rps(r.effective.requests_per_second),
      pct(r.actual.success_rate), rps(r.actual.requests_per_second), String(r.retries),
      String(r.budget_exhausted), ms(r.effective.p99_ms)])));
  fill("versions", snapshot.versions.map((v) => row(
    { "data-version": v.version, "data-workload": v.workload, "data-kind": v.kind },
    [v.workload, v.kind, v.service, v.version])));
}

// ---- polling -----------------------------------------------------------------------------

let loads = 0;

async function refresh() {
  try {
    const answer = await (await fetch("/api/snapshot", { cache: "no-store" })).json();
    const snapshot = answer.snapshot;
    if (snapshot) {
      const source = document.getElementById("source");
      source.dataset.source = snapshot.source;
      source.textContent = `source: ${snapshot.source}, window ${snapshot.window_seconds.toFixed(1)} s`;
      document.getElementById("updated").textContent =
        "updated " + new Date(snapshot.time * 1000).toLocaleTimeString();
      document.getElementById("errors").replaceChildren(
        ...snapshot.errors.map((e) => el("li", { "data-error": "" }, e)));
      drawGraph(snapshot);
      drawServices(snapshot, answer.history);
      drawTables(snapshot);
      document.body.dataset.loaded = String(++loads);
      document.body.dataset.time = String(snapshot.time);
      document.body.dataset.window = String(snapshot.window_seconds);
    }
  } catch (e) {
    document.getElementById("errors").replaceChildren(el("li", { "data-error": "" }, String(e)));
  }
  setTimeout(refresh, POLL_MS);
}

// ---- tap ---------------------------------------------------------------------------------

let tapping = null;

function tapState(state, text) {
  const s = document.getElementById("tap-state");
  s.dataset.state = state;
  s.textContent = text || state;
  document.getElementById("tap-start").disabled = state === "streaming";
  document.getElementById("tap-stop").disabled = state !== "streaming";
}

// `spiffe://td/ns/NS/sa/SA` → `NS/SA`, as the graph names workloads.
const workload = (id) => (id ? id.replace(/^spiffe:\/\/[^/]+\/ns\/([^/]+)\/sa\/(.+)$/, "$1/$2") : "-");

function tapRow(event) {
  const body = document.querySelector("#tap-events tbody");
  const tr = event.error !== undefined
    ? row({ "data-tap-error": event.sidecar }, [new Date().toISOString().slice(11, 23), event.sidecar, "", "", "",
      "", "", "", "", "", "", "", event.error])
    : event.dropped !== undefined
      ? row({ "data-tap-dropped": event.dropped }, ["", event.sidecar, "", "", "",
        `${event.dropped} events dropped`, "", "", "", "", "", "", ""])
      : row({ "data-tap-event": "", "data-status": attr(event.status), "data-path": attr(event.path) },
        [(event.time || "").slice(11, 23), event.sidecar, event.direction, event.method,
          event.authority, event.path,
          attr(event.status) + (event.grpc_status !== null && event.grpc_status !== undefined
            ? ` grpc ${event.grpc_status}` : ""),
          ms(event.latency_ms), workload(event.source), workload(event.destination),
          event.route || "-", attr(event.attempts), event.weft_error || ""]);
  body.prepend(tr);
  while (body.children.length > TAP_ROWS) body.lastChild.remove();
}

function formQuery(form) {
  const query = new URLSearchParams();
  for (const [k, v] of new FormData(form)) if (v) query.set(k, v);
  return query;
}

async function startTap(query) {
  tapping = new AbortController();
  tapState("streaming");
  try {
    const answer = await fetch("/api/tap?" + query, { signal: tapping.signal });
    if (!answer.ok) throw new Error(`${answer.status}: ${await answer.text()}`);
    const reader = answer.body.getReader();
    const decoder = new TextDecoder();
    let pending = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      pending += decoder.decode(value, { stream: true });
      let end;
      while ((end = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, end);
        pending = pending.slice(end + 1);
        if (line.trim()) tapRow(JSON.parse(line));
      }
    }
    tapState("idle", "ended");
  } catch (e) {
    tapState("idle", e.name === "AbortError" ? "stopped" : "error: " + e.message);
  }
}

document.getElementById("tap-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  startTap(formQuery(ev.target));
});
document.getElementById("tap-stop").addEventListener("click", () => tapping && tapping.abort());

refresh();
// `/?tap=FILTERS` (a query string of the tap filters, encoded) starts tapping at once.
const tapOnLoad = new URLSearchParams(location.search).get("tap");
if (tapOnLoad !== null) startTap(new URLSearchParams(tapOnLoad));
