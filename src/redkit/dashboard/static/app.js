// redkit dashboard: polls the JSON API and draws tables and inline SVG charts.
// Untrusted values (job payloads, keys, errors) only ever go into textContent.
"use strict";

const POLL_MS = parseInt(document.body.dataset.pollMs, 10) || 2000;
const BASE = location.pathname.endsWith("/") ? location.pathname : location.pathname + "/";
const COLORS = { waiting: "#2980b9", delayed: "#8e44ad", active: "#27ae60", done: "#7f8c8d",
  failed: "#c0392b", dead: "#2c3e50", blocked: "#d35400" };
const PALETTE = ["#c0392b", "#2980b9", "#27ae60", "#8e44ad", "#d35400", "#16a085", "#2c3e50"];
const view = { tab: "queues", queue: null, jobState: "waiting", job: null, readOnly: false };

function $(sel) { return document.querySelector(sel); }

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else if (k === "onclick") node.addEventListener("click", v);
    else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return node;
}

async function api(path, options) {
  const response = await fetch(BASE + path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function post(path) {
  return api(path, { method: "POST", headers: { "X-Redkit-Dashboard": "1" } });
}

function status(text) { $("#status").textContent = text; }

function fmt(v) { return v == null ? "–" : (typeof v === "number" && !Number.isInteger(v) ? v.toFixed(1) : v); }

function when(ms) { return ms ? new Date(ms).toLocaleTimeString() : "–"; }

function minutesRange(minutes) {
  if (!minutes.length) return "";
  return `${when(minutes[0] * 60000)} – ${when(minutes[minutes.length - 1] * 60000 + 59000)}, per minute`;
}

function fill(tbody, rows) { tbody.replaceChildren(...rows); }

// --- confirmation --------------------------------------------------------------------
function confirmThen(text, action) {
  $("#confirm-text").textContent = text;
  $("#confirm").hidden = false;
  const yes = $("#confirm-yes"), no = $("#confirm-no");
  const close = () => { $("#confirm").hidden = true; yes.onclick = null; no.onclick = null; };
  yes.onclick = () => { close(); action(); };
  no.onclick = close;
}

async function run(path, label) {
  try {
    const out = await post(path);
    status(`${label}: ${JSON.stringify(out.result)}`);
  } catch (e) { status(`${label} failed: ${e.message}`); }
  await refresh();
}

// --- charts --------------------------------------------------------------------------
function chart(svg, series, legendBox, times) {
  // series: [{name, color, values: [numbers]}] on a shared scale; times (seconds), when
  // given, place the points (gaps stay gaps), else points are evenly spaced
  const W = 800, H = 200, P = 8;
  const n = Math.max(0, ...series.map(s => s.values.length));
  const max = Math.max(1, ...series.flatMap(s => s.values));
  const t0 = times && times.length ? times[0] : 0, t1 = times && times.length ? times[times.length - 1] : 0;
  const xOf = i => times && t1 > t0 ? (W - 2 * P) * (times[i] - t0) / (t1 - t0) + P
    : (n > 1 ? (W - 2 * P) * i / (n - 1) + P : W / 2);
  const yOf = v => H - P - (H - 2 * P) * v / max;
  const parts = [];
  for (let i = 0; i <= 4; i++) {
    const y = P + (H - 2 * P) * i / 4;
    parts.push(`<line x1="0" x2="${W}" y1="${y}" y2="${y}" stroke="#eee"/>`);
  }
  for (const s of series) {
    if (!s.values.length) continue;
    const pts = s.values.map((v, i) => `${xOf(i).toFixed(1)},${yOf(v).toFixed(1)}`);
    parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${pts.join(" ")}"/>`);
    if (n <= 60) {
      s.values.forEach((v, i) => parts.push(
        `<circle cx="${xOf(i).toFixed(1)}" cy="${yOf(v).toFixed(1)}" r="2.5" fill="${s.color}"/>`));
    }
  }
  parts.push(`<text x="4" y="14" font-size="12" fill="#6b7385">${max}</text>`);
  svg.innerHTML = parts.join("");  // numbers and fixed colours only
  if (legendBox) {
    legendBox.replaceChildren(...series.map(s =>
      el("span", {}, el("i", { style: `background:${s.color}` }), s.name)));
  }
  svg.setAttribute("data-points", String(n));
}

// --- queues --------------------------------------------------------------------------
async function loadQueues() {
  const queues = await api("api/queues");
  $("#no-queues").hidden = queues.length > 0;
  fill($("#queues-table tbody"), queues.map(q => {
    const c = q.counts, l = q.latency_ms;
    const row = el("tr", { "data-queue": q.name, onclick: () => selectQueue(q.name) },
      el("td", { class: "name" }, q.name),
      ...["waiting", "delayed", "active", "done", "failed", "dead", "blocked"].map(s =>
        el("td", { class: `num c-${s}` }, c[s])),
      el("td", { class: "num throughput" }, q.done_last_minute),
      el("td", { class: "num" }, fmt(l.p50)), el("td", { class: "num" }, fmt(l.p90)),
      el("td", { class: "num" }, fmt(l.p99)),
      el("td", { class: "num workers" }, q.workers),
      el("td", { class: "paused" }, q.paused ? "paused" : "running"));
    if (q.name === view.queue) row.classList.add("selected");
    return row;
  }));
  if (!view.queue && queues.length) selectQueue(queues[0].name);
  else if (view.queue) await loadQueue();
}

function selectQueue(name) {
  if (view.queue !== name) { view.job = null; $("#job-detail").hidden = true; }
  view.queue = name;
  for (const tr of document.querySelectorAll("#queues-table tbody tr")) {
    tr.classList.toggle("selected", tr.dataset.queue === name);
  }
  loadQueue();
}

async function loadQueue() {
  const name = view.queue;
  const q = await api(`api/queue?queue=${encodeURIComponent(name)}`);
  $("#queue-detail").hidden = false;
  $("#queue-title").textContent = `Queue ${q.name}`;
  $("#pause").hidden = q.paused;
  $("#resume").hidden = !q.paused;
  const states = ["waiting", "delayed", "active", "failed", "dead", "blocked"];
  chart($("#chart"), states.map(s => ({ name: s, color: COLORS[s], values: q.history.map(h => h[s] || 0) })),
    $("#chart-legend"), q.history.map(h => h.t));
  $("#chart-range").textContent = q.history.length
    ? `${when(q.history[0].t * 1000)} – ${when(q.history[q.history.length - 1].t * 1000)}` : "";
  fill($("#workers-table tbody"), q.workers.map(w => el("tr", { "data-worker": w.id },
    el("td", {}, w.id), el("td", {}, w.alive ? "yes" : "lease ended"),
    el("td", {}, when(w.lease_ends_ms)), el("td", { class: "current" }, w.jobs.join(", ")))));
  await loadJobs();
}

function jobButtons(job) {
  const cell = el("td", {});
  const add = (action, label, danger, confirmText) => {
    const button = el("button", { class: "job-action" + (danger ? " danger" : ""), "data-action": action }, label);
    button.addEventListener("click", (event) => {
      event.stopPropagation();
      const path = `api/job/${action}?queue=${encodeURIComponent(view.queue)}&id=${encodeURIComponent(job.id)}`;
      if (confirmText) confirmThen(confirmText, () => run(path, `${action} ${job.id}`));
      else run(path, `${action} ${job.id}`);
    });
    cell.append(button);
  };
  if (job.state === "failed" || job.state === "dead") add("retry", "Retry");
  if (job.state === "delayed") add("promote", "Run now");
  if (job.state === "waiting" || job.state === "delayed" || job.state === "blocked") add("cancel", "Cancel", true, `Cancel job ${job.id}?`);
  if (job.state !== "active") add("delete", "Delete", true, `Delete job ${job.id}? This cannot be undone.`);
  return cell;
}

async function loadJobs() {
  const jobs = await api(`api/jobs?queue=${encodeURIComponent(view.queue)}&state=${view.jobState}&count=50`);
  fill($("#jobs-table tbody"), jobs.map(job => el("tr", { "data-job": job.id, onclick: () => showJob(job.id) },
    el("td", { class: "id" }, job.id), el("td", {}, job.task), el("td", { class: "state" }, job.state),
    el("td", { class: "num attempts" }, job.attempts), el("td", {}, when(job.enqueued_ms)),
    el("td", {}, when(job.finished_ms)), jobButtons(job))));
  if (view.job) await showJob(view.job, true);
}

async function showJob(id, quiet) {
  view.job = id;
  let job;
  try { job = await api(`api/job?queue=${encodeURIComponent(view.queue)}&id=${encodeURIComponent(id)}`); }
  catch (e) { if (!quiet) status(e.message); $("#job-detail").hidden = true; view.job = null; return; }
  $("#job-detail").hidden = false;
  $("#job-id").textContent = job.id;
  const fields = [["state", job.state], ["task", job.task], ["attempts", job.attempts],
    ["worker deaths", job.deaths], ["worker", job.worker || "–"], ["enqueued", when(job.enqueued_ms)],
    ["finished", when(job.finished_ms)]];
  if (job.progress != null) fields.push(["progress", JSON.stringify(job.progress)]);
  $("#job-fields").replaceChildren(...fields.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { "data-field": k }, v)]));
  $("#job-payload").textContent = JSON.stringify(job.payload, null, 2);
  const error = job.error;
  $("#job-error-box").hidden = !error;
  if (error) {
    $("#job-error").textContent = `${error.type || ""}: ${error.message || ""}\n\n${error.traceback || ""}`;
  }
  $("#job-result-box").hidden = job.state !== "done";
  $("#job-result").textContent = JSON.stringify(job.result, null, 2);
}

// --- the other panels ----------------------------------------------------------------
async function loadRateLimits() {
  const rl = await api("api/ratelimits");
  const names = Object.keys(rl.rejected);
  chart($("#rl-chart"), names.map((n, i) => ({ name: n, color: PALETTE[i % PALETTE.length], values: rl.rejected[n] })),
    $("#rl-legend"));
  $("#rl-range").textContent = minutesRange(rl.minutes);
  fill($("#rl-table tbody"), names.map(n => el("tr", { "data-limiter": n },
    el("td", {}, n), el("td", { class: "num total" }, rl.totals[n]))));
  $("#rl-checks").textContent = rl.checks.reduce((a, b) => a + b, 0);
  fill($("#rl-keys tbody"), rl.top_keys.map(k => el("tr", { "data-key": k.key },
    el("td", {}, k.limiter), el("td", { class: "key" }, k.key), el("td", { class: "num count" }, k.rejections))));
}

async function loadCaches() {
  const data = await api("api/caches");
  const cols = ["hits", "near_hits", "misses", "loads", "stale_serves", "load_errors", "corrupt", "errors"];
  fill($("#cache-table tbody"), data.namespaces.map(ns => el("tr", { "data-ns": ns.namespace },
    el("td", {}, ns.namespace),
    el("td", { class: "num ratio" }, ns.hit_ratio == null ? "–" : (ns.hit_ratio * 100).toFixed(1) + " %"),
    ...cols.map(c => el("td", { class: `num ${c}` }, ns[c])))));
  chart($("#cache-chart"), data.namespaces.map((ns, i) => ({ name: ns.namespace,
    color: PALETTE[i % PALETTE.length], values: ns.per_minute })), $("#cache-legend"));
  $("#cache-range").textContent = minutesRange(data.minutes);
}

async function loadSessions() {
  const data = await api("api/sessions");
  $("#sessions-active").textContent = data.active + (data.capped ? "+" : "");
  chart($("#sessions-chart"), [{ name: "operations", color: PALETTE[1], values: data.operations }]);
  $("#sessions-range").textContent = minutesRange(data.minutes);
}

async function loadEvents() {
  const data = await api("api/events");
  $("#no-topics").hidden = data.topics.length > 0;
  fill($("#groups-table tbody"), data.topics.flatMap(t => t.groups.map(g =>
    el("tr", { "data-group": `${t.name}/${g.name}` }, el("td", {}, t.name), el("td", {}, g.name),
      el("td", { class: "num" }, g.consumers), el("td", { class: "num pending" }, g.pending),
      el("td", { class: "num lag" }, fmt(g.lag)), el("td", {}, g.last_delivered)))));
  fill($("#topics-table tbody"), data.topics.map(t => el("tr", { "data-topic": t.name },
    el("td", {}, t.name), el("td", { class: "num" }, t.length), el("td", { class: "num" }, t.sequence),
    el("td", { class: "num dead" }, t.dead_letters))));
  fill($("#dead-table tbody"), data.dead_letters.map(d => el("tr", { "data-topic": d.topic },
    el("td", {}, d.topic), el("td", {}, d.group || "–"), el("td", {}, d.message_id || d.id),
    el("td", { class: "reason" }, d.reason || "–"),
    el("td", { class: "payload" }, typeof d.payload === "string" ? d.payload : JSON.stringify(d.payload)))));
}

async function loadOverview() {
  const data = await api("api/overview");
  $("#ops-minutes").textContent = data.minutes.length;
  fill($("#ops-table tbody"), Object.entries(data.capabilities).map(([cap, v]) => el("tr", { "data-cap": cap },
    el("td", {}, cap), el("td", { class: "num" }, v.operations), el("td", { class: "num" }, v.errors),
    el("td", { class: "num" }, fmt(v.avg_ms)))));
}

const LOADERS = { queues: loadQueues, ratelimits: loadRateLimits, caches: loadCaches,
  sessions: loadSessions, events: loadEvents, overview: loadOverview };

let busy = false;
async function refresh() {
  if (busy) return;
  busy = true;
  try {
    await LOADERS[view.tab]();
    document.body.dataset.updated = String(Date.now());
  } catch (e) { status(`update failed: ${e.message}`); }
  finally { busy = false; }
}

function showTab(tab) {
  view.tab = tab;
  history.replaceState(null, "", "#" + tab);
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === tab);
  for (const p of document.querySelectorAll(".panel")) p.hidden = p.id !== `panel-${tab}`;
  refresh();
}

async function init() {
  for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));
  for (const b of document.querySelectorAll("#state-tabs button")) {
    b.addEventListener("click", () => {
      view.jobState = b.dataset.state;
      for (const o of document.querySelectorAll("#state-tabs button")) o.classList.toggle("active", o === b);
      loadJobs();
    });
  }
  for (const b of document.querySelectorAll("[data-queue-action]")) {
    b.addEventListener("click", () => {
      const action = b.dataset.queueAction;
      const q = encodeURIComponent(view.queue);
      if (action === "purge") {
        const state = $("#purge-state").value;
        confirmThen(`Delete every ${state} job of queue ${view.queue}? This cannot be undone.`,
          () => run(`api/queue/purge?queue=${q}&state=${state}`, `purge ${state}`));
      } else if (action === "retry-failed") {
        confirmThen(`Put every failed and dead job of ${view.queue} back in the queue?`,
          () => run(`api/queue/retry-failed?queue=${q}`, "retry failed"));
      } else {
        run(`api/queue/${action}?queue=${q}`, action);
      }
    });
  }
  try {
    const overview = await api("api/overview");
    view.readOnly = overview.read_only;
    $("#target").textContent = `${overview.target} · prefix ${overview.prefix}`;
    $("#readonly-badge").hidden = !view.readOnly;
    document.body.classList.toggle("readonly", view.readOnly);
  } catch (e) { status(e.message); }
  const start = location.hash.replace("#", "");
  showTab(LOADERS[start] ? start : "queues");
  setInterval(refresh, POLL_MS);
}

init();
