// sleepstream central station: one page, three views (beds, one bed, alarms), kept live by the
// server's event stream (/api/events). No framework, no network but this server.
"use strict";

const STAGE_Y = { W: 0, REM: 1, N1: 2, N2: 3, N3: 4 };
const PRIO = { high: 0, medium: 1, low: 2 };
const OPEN = new Set(["active", "escalated", "acknowledged"]);
const state = { run: 0, beds: new Map(), live: {}, pending: false, connected: false };

const esc = (s) => String(s ?? "").replace(/[&<>"']/g,
  (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const pad = (n) => String(n).padStart(2, "0");

function clock(wall, t) {
  if (wall != null) {
    const d = new Date(wall * 1000);
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }
  if (t == null) return "--:--:--";
  const s = Math.floor(t);
  return `+${pad(Math.floor(s / 3600))}:${pad(Math.floor(s / 60) % 60)}:${pad(s % 60)}`;
}

const alarmKey = (a) => `${a.run ?? 0}:${a.id}`;
const isOpen = (a) => OPEN.has(a.state) && !a.previous_run;
const byPriority = (a, b) => (isOpen(b) - isOpen(a)) || ((PRIO[a.priority] ?? 3) - (PRIO[b.priority] ?? 3))
  || ((b.wall ?? b.onset ?? 0) - (a.wall ?? a.onset ?? 0));

function loadSnapshot(snap) {
  state.run = snap.run;
  state.beds.clear();
  for (const b of snap.beds) {
    const alarms = new Map(b.alarms.map((a) => [alarmKey(a), a]));
    state.beds.set(b.bed, { ...b, alarms });
    state.live[b.bed] = b.live;
  }
}

// ---- live updates ------------------------------------------------------------------------------

function onMessage(kind, data) {
  const bed = state.beds.get(data.bed);
  if (kind === "health") { state.live = data.beds; }
  else if (!bed) { return; }
  else if (kind === "stage") { bed.stage = data.epoch; bed.hypnogram.push(data.epoch); }
  else if (kind === "trend") { bed.trends.push(data.trend); }
  else if (kind === "alarm") { bed.alarms.set(alarmKey(data.alarm), data.alarm); }
  else if (kind === "index") { bed.indices = data.indices; }
  else if (kind === "status") { bed.status = data.status; }
  schedule();
}

function connect() {
  const es = new EventSource("/api/events");
  for (const kind of ["stage", "trend", "alarm", "index", "status", "health"]) {
    es.addEventListener(kind, (e) => onMessage(kind, JSON.parse(e.data)));
  }
  es.onopen = () => { setConn(true); };
  es.onerror = () => { setConn(false); };
}

function setConn(up) {
  state.connected = up;
  const el = document.getElementById("conn");
  el.textContent = up ? "live" : "reconnecting…";
  el.className = "conn " + (up ? "up" : "down");
}

function schedule() {
  if (state.pending) return;
  state.pending = true;
  requestAnimationFrame(() => { state.pending = false; render(); });
}

// ---- drawing -----------------------------------------------------------------------------------

function xScale(rows, w) {
  const xs = rows.map((r) => r.wall ?? r.t).filter((x) => x != null);
  const lo = Math.min(...xs), hi = Math.max(...xs, lo + 60);
  return (x) => ((x - lo) / (hi - lo)) * (w - 24) + 22;
}

function hypnogram(rows, w, h) {
  if (!rows.length) return `<svg viewBox="0 0 ${w} ${h}"><text x="22" y="${h / 2}">no stages yet</text></svg>`;
  const x = xScale(rows.map((r) => ({ wall: r.wall, t: r.t })).concat(
    rows.slice(-1).map((r) => ({ wall: r.wall != null ? r.wall + r.epoch_s : null, t: r.t + r.epoch_s }))), w);
  const y = (s) => 4 + (STAGE_Y[s] * (h - 8)) / 4;
  let d = "", open = false;
  for (const r of rows) {
    const x0 = x(r.wall ?? r.t), x1 = x((r.wall ?? r.t) + r.epoch_s);
    if (r.stage == null || !(r.stage in STAGE_Y)) { open = false; continue; }
    d += (open ? `L${x0.toFixed(1)},${y(r.stage)}` : `M${x0.toFixed(1)},${y(r.stage)}`) + `L${x1.toFixed(1)},${y(r.stage)}`;
    open = true;
  }
  const labels = Object.keys(STAGE_Y).map((s) => `<text x="0" y="${y(s) + 3}">${s}</text>`).join("");
  return `<svg viewBox="0 0 ${w} ${h}" class="hypnogram">${labels}<path class="hyp" d="${d}"/></svg>`;
}

function trendLine(rows, key, lo, hi, w, h) {
  const pts = rows.filter((r) => r[key] != null);
  if (!pts.length) return "";
  const x = xScale(rows, w);
  const y = (v) => h - 2 - ((Math.min(hi, Math.max(lo, v)) - lo) / (hi - lo)) * (h - 4);
  return `<path class="${key}" d="${pts.map((r, i) => `${i ? "L" : "M"}${x(r.wall ?? r.t).toFixed(1)},${y(r[key]).toFixed(1)}`).join("")}"/>`;
}

function trends(rows, w, h) {
  return `<svg viewBox="0 0 ${w} ${h}" class="trends"><text x="0" y="9">SpO2</text>
    <text x="0" y="${h - 2}" style="fill:#f778ba">HR</text>
    ${trendLine(rows, "spo2", 80, 100, w, h)}${trendLine(rows, "hr", 40, 130, w, h)}</svg>`;
}

function last(rows, key) {
  for (let i = rows.length - 1; i >= 0; i--) if (rows[i][key] != null) return rows[i][key];
  return null;
}

// A source replayed faster than real time (a simulator's speed) stamps data ahead of the clock:
// say so rather than "0 s ago"; a second either way is clock jitter.
function dataAge(age) {
  if (age == null) return "";
  return age < -1 ? ` (${-age} s ahead of the clock)` : ` (${Math.max(0, age)} s ago)`;
}

// The running indices per hour of valid signal; the engine sends null until ten minutes of it.
function indices(ix) {
  const f = (v) => (v == null ? "--" : v.toFixed(1));
  if (!ix) return "indices: waiting for data";
  return `ODI3 ${f(ix.odi3)}/h · AHI ${f(ix.ahi)}/h · apnea minutes ${f(ix.apnea_minutes_per_hour)}/h`;
}

function sortedAlarms(bed) { return [...bed.alarms.values()].sort(byPriority); }

function tile(bed) {
  const active = sortedAlarms(bed).filter(isOpen);
  const top = active.find((a) => a.state !== "acknowledged");
  const live = state.live[bed.bed] || {};
  const technical = active.filter((a) => a.kind === "technical").map((a) => a.code);
  const q = last(bed.trends, "quality");
  const stage = bed.stage ? (bed.stage.stage ?? "—") : "…";
  const conf = bed.stage && bed.stage.confidence != null ? `${Math.round(bed.stage.confidence * 100)} %` : "";
  const age = live.last_data_wall != null ? Math.round(Date.now() / 1000 - live.last_data_wall) : null;
  return `<article class="tile ${top ? "alarm-" + esc(top.priority) : ""}" data-bed="${esc(bed.bed)}">
    <h3>${esc(bed.bed)} <span class="site">${esc(bed.site)}</span></h3>
    <div class="row"><span class="stage" data-role="stage">${esc(stage)}</span>
      <span class="conf" data-role="confidence">${conf ? "confidence " + conf : ""}</span>
      <span class="vital">${last(bed.trends, "spo2") ?? "--"}<small> % SpO2</small></span>
      <span class="vital">${last(bed.trends, "hr") != null ? Math.round(last(bed.trends, "hr")) : "--"}<small> bpm</small></span></div>
    <div class="row dim"><span data-role="indices">${esc(indices(bed.indices))}</span></div>
    ${hypnogram(bed.hypnogram, 340, 56)}
    ${trends(bed.trends, 340, 44)}
    <div class="chips" data-role="alarms">${active.map((a) =>
      `<span class="chip ${esc(a.priority)} ${esc(a.state)}" data-alarm-id="${esc(a.id)}" title="${esc(a.message)}">${esc(a.code)}${a.state === "acknowledged" ? " ✓" : ""}</span>`).join("")}</div>
    <div class="row dim"><span class="quality ${technical.length ? "bad" : "ok"}" data-role="quality">${technical.length
      ? "sensor: " + esc(technical.join(", ")) : "signal ok"}${q != null ? ` · ${Math.round(q * 100)} % valid` : ""}</span>
      <span data-role="last-data">last data ${clock(live.last_data_wall, live.last_data_t)}${dataAge(age)}</span></div>
  </article>`;
}

function alarmRows(list, withBed) {
  return list.map((a) => {
    const canAck = isOpen(a) && a.state !== "acknowledged";
    const acked = a.acked_by ? `${esc(a.acked_by)} at ${clock(a.acked_wall, null)}` : (a.state === "acknowledged" ? "yes" : "");
    return `<tr class="${isOpen(a) ? "open" : "closed"}" data-alarm-id="${esc(a.id)}" data-state="${esc(a.state)}">
      <td><span class="chip ${esc(a.priority)}">${esc(a.priority)}</span></td>${withBed ? `<td>${esc(a.bed)}</td>` : ""}
      <td title="${esc(a.message)}">${esc(a.code)} <span class="dim">${esc(a.kind)}</span></td>
      <td data-role="state">${esc(a.previous_run ? a.state + " (before restart)" : a.state)}</td>
      <td>${clock(a.wall, a.onset)}</td><td data-role="acked">${acked}</td>
      <td>${canAck && a.kind === "physiological" ? `<button data-ack="${esc(a.id)}" data-bed="${esc(a.bed)}">Acknowledge</button>` : ""}</td></tr>`;
  }).join("");
}

function render() {
  const path = location.pathname;
  const beds = document.getElementById("beds"), detail = document.getElementById("detail"),
    alarms = document.getElementById("alarms");
  beds.hidden = path !== "/"; detail.hidden = !path.startsWith("/bed/"); alarms.hidden = path !== "/alarms";
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("on", a.getAttribute("href") === path));
  if (!beds.hidden) beds.innerHTML = [...state.beds.values()].map(tile).join("");
  if (!alarms.hidden) {
    const all = [...state.beds.values()].flatMap(sortedAlarms).sort(byPriority);
    alarms.querySelector("tbody").innerHTML = alarmRows(all, true);
  }
  if (!detail.hidden) {
    const bed = state.beds.get(decodeURIComponent(path.slice(5)));
    detail.innerHTML = bed ? `<h2>${esc(bed.bed)} <span class="dim">${esc(bed.site)}</span></h2>
      <div class="panel">${tile(bed)}</div>
      <div class="panel"><h3>Hypnogram so far</h3>${hypnogram(bed.hypnogram, 900, 120)}</div>
      <div class="panel"><h3>SpO2 and heart rate</h3>${trends(bed.trends, 900, 120)}</div>
      <div class="panel"><h3>Alarms</h3><table class="alarms"><tbody>${alarmRows(sortedAlarms(bed), false)}</tbody></table></div>`
      : `<p>No bed ${esc(path.slice(5))}.</p>`;
  }
}

// ---- actions -----------------------------------------------------------------------------------

async function acknowledge(button) {
  button.disabled = true;
  button.textContent = "sent";
  const by = document.getElementById("operator").value.trim() || "web";
  localStorage.setItem("sleepstream-operator", by);
  const res = await fetch(`/api/beds/${encodeURIComponent(button.dataset.bed)}/ack`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ id: button.dataset.ack, by }),
  });
  if (!res.ok) { button.textContent = "failed"; button.disabled = false; }
}

document.addEventListener("click", (e) => {
  const ack = e.target.closest("button[data-ack]");
  if (ack) { e.stopPropagation(); acknowledge(ack); return; }
  const link = e.target.closest("a[href^='/']");
  const tileEl = e.target.closest(".tile[data-bed]");
  const to = link ? link.getAttribute("href") : (tileEl && location.pathname === "/" ? `/bed/${encodeURIComponent(tileEl.dataset.bed)}` : null);
  if (to) { e.preventDefault(); history.pushState(null, "", to); render(); }
});
window.addEventListener("popstate", render);

async function start() {
  const who = localStorage.getItem("sleepstream-operator");
  if (who) document.getElementById("operator").value = who;
  const res = await fetch("/api/snapshot");
  loadSnapshot(await res.json());
  render();
  connect();
  setInterval(schedule, 1000); // "last data … s ago"
}
start();
