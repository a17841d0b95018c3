// The web UI of a weir pipeline binary (`--http`): polls /api/pipeline every second and
// draws the job graph (layered top to bottom, as `weir explain` orders it) with each node's
// live rate, watermark lag and backpressure, the checkpoints and the last dead letters.
// Rates come from the difference between polls up to five seconds apart.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const NODE_W = 236, NODE_H = 70, GAP_X = 28, GAP_Y = 46, PAD = 12;

let previous = null;   // the last poll: {at: elapsed seconds, view}
let history = [];      // polls of the last few seconds, oldest first: rates are taken over them
const RATE_WINDOW_S = 5;
let drawnPlan = null;  // the plan the SVG was drawn for (drawn once, updated in place)
let nodes = {};        // operator id -> its SVG elements to update

function el(name, attrs, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function count(n) {
  if (n === null || n === undefined) return "-";
  if (n >= 1e9) return (n / 1e9).toFixed(2) + " G";
  if (n >= 1e6) return (n / 1e6).toFixed(2) + " M";
  if (n >= 1e4) return (n / 1e3).toFixed(1) + " k";
  return String(Math.round(n));
}

function millis(ms) {
  if (ms === null || ms === undefined) return "-";
  const a = Math.abs(ms);
  if (a < 1000) return ms.toFixed(a < 10 ? 1 : 0) + " ms";
  if (a < 120e3) return (ms / 1e3).toFixed(1) + " s";
  if (a < 7200e3) return (ms / 60e3).toFixed(1) + " min";
  if (a < 172800e3) return (ms / 3600e3).toFixed(1) + " h";
  return (ms / 86400e3).toFixed(0) + " d";
}

function bytes(n) {
  if (n === null || n === undefined) return "-";
  if (n >= 1 << 30) return (n / (1 << 30)).toFixed(2) + " GiB";
  if (n >= 1 << 20) return (n / (1 << 20)).toFixed(1) + " MiB";
  if (n >= 1 << 10) return (n / (1 << 10)).toFixed(1) + " KiB";
  return n + " B";
}

function cut(text, n) {
  return text.length > n ? text.slice(0, n - 1) + "…" : text;
}

function setText(id, text) {
  const e = document.getElementById(id);
  if (e.textContent !== text) e.textContent = text;
}

// Longest path from a source: an operator sits one layer below the lowest of its inputs.
function layers(plan) {
  const layer = {};
  for (const op of plan.operators) layer[op.id] = 0;
  for (let round = 0; round < plan.operators.length; round++) {
    let moved = false;
    for (const e of plan.edges) {
      if (layer[e.from] !== undefined && layer[e.to] !== undefined && layer[e.to] < layer[e.from] + 1) {
        layer[e.to] = layer[e.from] + 1;
        moved = true;
      }
    }
    if (!moved) break;
  }
  return layer;
}

function drawGraph(plan) {
  const svg = document.getElementById("graph");
  svg.replaceChildren();
  nodes = {};
  const layer = layers(plan);
  const rows = [];
  for (const op of plan.operators) (rows[layer[op.id]] = rows[layer[op.id]] || []).push(op);
  // Fewer crossings: rows sorted by the mean position of their neighbours in the row above
  // (going down) or below (going up), a few sweeps (ties keep the plan's order).
  for (let y = 0; y < rows.length; y++) rows[y] = rows[y] || [];
  const position = {};
  const place = row => row.forEach((op, i) => { position[op.id] = i - (row.length - 1) / 2; });
  rows.forEach(place);
  const sortBy = (y, neighbours) => {
    const mean = op => {
      const at = neighbours(op).filter(id => position[id] !== undefined).map(id => position[id]);
      return at.length ? at.reduce((a, b) => a + b, 0) / at.length : position[op.id];
    };
    const keyed = rows[y].map((op, i) => ({op, i, key: mean(op)}));
    keyed.sort((a, b) => a.key - b.key || a.i - b.i);
    rows[y] = keyed.map(k => k.op);
    place(rows[y]);
  };
  const inputs = op => plan.edges.filter(e => e.to === op.id).map(e => e.from);
  const outputs = op => plan.edges.filter(e => e.from === op.id).map(e => e.to);
  for (let sweep = 0; sweep < 2; sweep++) {
    for (let y = 1; y < rows.length; y++) sortBy(y, inputs);
    for (let y = rows.length - 2; y >= 0; y--) sortBy(y, outputs);
  }
  const widest = Math.max(1, ...rows.map(r => (r || []).length));
  const width = PAD * 2 + widest * NODE_W + (widest - 1) * GAP_X;
  const height = PAD * 2 + rows.length * NODE_H + Math.max(0, rows.length - 1) * GAP_Y;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  const defs = el("defs");
  const marker = el("marker", {id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5,
    markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse"});
  marker.appendChild(el("path", {d: "M 0 0 L 10 5 L 0 10 z", fill: "#7a8a9a"}));
  defs.appendChild(marker);
  svg.appendChild(defs);
  const at = {};
  rows.forEach((row, y) => {
    const rowWidth = row.length * NODE_W + (row.length - 1) * GAP_X;
    const left = (width - rowWidth) / 2;
    row.forEach((op, i) => {
      at[op.id] = {x: left + i * (NODE_W + GAP_X), y: PAD + y * (NODE_H + GAP_Y)};
    });
  });
  const edges = el("g", {class: "edges"});
  for (const e of plan.edges) {
    const a = at[e.from], b = at[e.to];
    if (!a || !b) continue;
    const x1 = a.x + NODE_W / 2, y1 = a.y + NODE_H, x2 = b.x + NODE_W / 2, y2 = b.y;
    const mid = (y1 + y2) / 2;
    edges.appendChild(el("path", {
      class: "edge" + (e.exchange ? " exchange" : ""),
      d: `M ${x1} ${y1} C ${x1} ${mid}, ${x2} ${mid}, ${x2} ${y2}`,
      "marker-end": "url(#arrow)",
    }));
    if (e.kind !== "forward") {
      edges.appendChild(el("text", {class: "edge-label", x: (x1 + x2) / 2 + 6, y: mid + 4}, e.kind));
    }
  }
  svg.appendChild(edges);
  for (const op of plan.operators) {
    const p = at[op.id];
    const g = el("g", {class: "node", "data-op": op.id, transform: `translate(${p.x} ${p.y})`});
    const title = el("title", {}, [op.label, ...op.properties, "parallelism: " + op.parallelism,
      "task: " + op.task].join("\n"));
    const rect = el("rect", {width: NODE_W, height: NODE_H, rx: 6, fill: "hsl(120, 55%, 86%)"});
    const head = el("text", {class: "title", x: 8, y: 16}, `${op.id} ${op.kind}` +
      (op.stream === "updating" ? " (updating)" : ""));
    const label = el("text", {x: 8, y: 32}, cut(op.label, 32));
    const live = el("text", {class: "live", x: 8, y: 50}, "-");
    const more = el("text", {class: "live records", "data-op": op.id, x: 8, y: 64}, "");
    g.append(title, rect, head, label, live, more);
    svg.appendChild(g);
    nodes[op.id] = {rect, live, more};
  }
}

// The counters of every operator by name, and of every source by name.
function index(view) {
  const ops = {}, sources = {};
  for (const o of view.operators) ops[o.name] = o;
  for (const s of view.sources) sources[s.name] = s;
  return {ops, sources};
}

function recordsOf(op, idx) {
  if (op.source && idx.sources[op.source]) return idx.sources[op.source].records;
  if (op.counters && idx.ops[op.counters]) return idx.ops[op.counters].records_in;
  return null;
}

function updateGraph(view, before, dt) {
  const plan = view.graph;
  const now = index(view), then = before ? index(before) : null;
  // Per task: how full the channels into it are (busy), and the share of time its
  // producers spent blocked sending out of it (backpressure).
  const taskOf = {};
  for (const op of plan.operators) taskOf[op.id] = op.task;
  const fill = {}, blocked = {};
  for (const e of plan.edges) {
    const x = e.exchange && now.ops[e.exchange];
    if (!x) continue;
    const into = taskOf[e.to], from = taskOf[e.from];
    if (x.queue_capacity > 0) {
      fill[into] = Math.max(fill[into] || 0, x.queued_messages / x.queue_capacity);
    }
    const old = then && then.ops[e.exchange];
    if (old && dt > 0) {
      const share = (x.blocked_ms - old.blocked_ms) / 1000 / dt / Math.max(1, x.instances);
      blocked[from] = Math.max(blocked[from] || 0, Math.min(1, Math.max(0, share)));
    }
  }
  for (const op of plan.operators) {
    const n = nodes[op.id];
    if (!n) continue;
    const records = recordsOf(op, now);
    const old = then ? recordsOf(op, then) : null;
    const parts = [];
    if (records !== null) {
      const rate = old !== null && dt > 0 ? (records - old) / dt : null;
      parts.push(rate === null ? count(records) : count(rate) + "/s");
    }
    let lag = null;
    if (op.source && now.sources[op.source]) lag = now.sources[op.source].watermark_lag_ms;
    else if (op.counters && now.ops[op.counters] && now.ops[op.counters].event_time_lag_max_ms > 0) {
      lag = now.ops[op.counters].event_time_lag_max_ms;
    }
    if (lag !== null) parts.push("lag " + millis(lag));
    const bp = blocked[op.task];
    if (bp !== undefined) parts.push("bp " + Math.round(bp * 100) + " %");
    n.live.textContent = parts.join(" · ") || "-";
    const c = op.counters && now.ops[op.counters];
    const source = op.source && now.sources[op.source];
    n.more.textContent = (records === null ? "" : "in " + count(records) +
      (c ? " · out " + count(c.records_out) + (c.late_records ? " · late " + count(c.late_records) : "") : "")) +
      (source && source.kafka_lag !== null && source.kafka_lag !== undefined ? " · kafka lag " + count(source.kafka_lag) : "") +
      (c && c.state_keys !== null && c.state_keys !== undefined ? " · state " + count(c.state_keys) + " keys, " + bytes(c.state_bytes) : "");
    const busy = Math.min(1, fill[op.task] || 0);
    n.rect.setAttribute("fill", `hsl(${Math.round(120 * (1 - busy))}, ${55 + 15 * busy}%, ${86 - 6 * busy}%)`);
  }
}

function updateCheckpoints(view) {
  const c = view.checkpoints;
  document.getElementById("checkpoints-off").hidden = !!c;
  document.getElementById("checkpoint-stats").hidden = !c;
  document.getElementById("cp-history").hidden = !c;
  if (!c) return;
  const last = c.history.length ? c.history[c.history.length - 1] : null;
  setText("cp-completed", String(c.completed) + (c.restored_from ? ` (resumed from ${c.restored_from})` : ""));
  setText("cp-failed", String(c.failed));
  setText("cp-duration", last ? millis(last.duration_ms) : "-");
  setText("cp-size", last ? bytes(last.bytes) : "-");
  setText("cp-age", last ? millis(view.now_ms - last.completed_ms) : "-");
  const body = document.querySelector("#cp-history tbody");
  body.replaceChildren(...c.history.slice().reverse().slice(0, 8).map(h => {
    const tr = document.createElement("tr");
    for (const v of [String(h.id), millis(h.duration_ms), bytes(h.bytes), millis(view.now_ms - h.completed_ms)]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.appendChild(td);
    }
    return tr;
  }));
}

function updateDeadLetters(view) {
  const letters = view.recent_dead_letters || [];
  document.getElementById("no-dead-letters").hidden = letters.length > 0;
  const list = document.getElementById("dead-letter-list");
  list.replaceChildren(...letters.slice().reverse().map(d => {
    const li = document.createElement("li");
    li.className = "dead-letter";
    li.textContent = d.from + (d.line !== null ? " line " + d.line : "") + ": " + d.reason;
    const code = document.createElement("code");
    code.textContent = cut(d.record, 200);
    li.appendChild(code);
    return li;
  }));
}

function update(view) {
  // Rates over the oldest poll of the last few seconds: sources publish their counts at
  // watermarks and ticks, so two polls close together may see the same count.
  history = history.filter(h => view.elapsed_seconds - h.at <= RATE_WINDOW_S && h.at < view.elapsed_seconds);
  const base = history.length ? history[0] : null;
  const before = base ? base.view : null;
  const dt = base ? view.elapsed_seconds - base.at : 0;
  setText("pipeline", view.pipeline);
  document.title = "weir " + view.pipeline;
  const records = view.sources.reduce((sum, s) => sum + s.records, 0);
  setText("records", String(records));
  if (before && dt > 0) {
    const old = before.sources.reduce((sum, s) => sum + s.records, 0);
    setText("rate", count((records - old) / dt) + "/s");
  }
  setText("dead-letters", String(view.dead_letters));
  setText("elapsed", millis(view.elapsed_seconds * 1000));
  setText("cpu", view.process.cpu_seconds === null ? "-" : view.process.cpu_seconds.toFixed(1) + " s");
  setText("memory", bytes(view.process.resident_memory_bytes));
  if (view.graph) {
    const key = JSON.stringify(view.graph);
    if (key !== drawnPlan) {
      drawGraph(view.graph);
      drawnPlan = key;
    }
    updateGraph(view, before, dt);
  }
  updateCheckpoints(view);
  updateDeadLetters(view);
  previous = {at: view.elapsed_seconds, view};
  history.push(previous);
}

async function poll() {
  const status = document.getElementById("status");
  try {
    const response = await fetch("api/pipeline", {cache: "no-store"});
    if (!response.ok) throw new Error(response.status);
    update(await response.json());
    status.textContent = "live";
    status.className = "status live";
  } catch (e) {
    // The run ended (or the endpoint went away): the page keeps the last values.
    status.textContent = previous ? "ended" : "unreachable";
    status.className = "status ended";
  }
  setTimeout(poll, 1000);
}

poll();
