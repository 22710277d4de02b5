// The meter's pages: one small hand-written script over the JSON API (docs/web-api.md). No framework, nothing
// loaded from elsewhere. Views are chosen by the address's #fragment; the live view follows /api/stream.
"use strict";
const state = {csrf: "", user: "", privileges: [], points: {}, areas: [], clock: null, timer: 0, stream: null};
const $ = sel => document.querySelector(sel);

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  return node;
}

// Replace a node's children; arrays are flattened and null/undefined/false left out.
function fill(node, ...children) {
  node.replaceChildren(...children.flat(Infinity).filter(c => c !== null && c !== undefined && c !== false));
  return node;
}

class ApiError extends Error { constructor(status, message) { super(message); this.status = status; } }

async function api(method, path, body, raw) {
  const opts = {method, headers: {}, credentials: "same-origin", cache: "no-store"};
  if (method !== "GET") opts.headers["X-CSRF-Token"] = state.csrf;
  if (raw !== undefined) { opts.headers["Content-Type"] = "application/octet-stream"; opts.body = raw; }
  else if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
  const r = await fetch(path, opts);
  const data = await r.json().catch(() => ({error: `${r.status} ${r.statusText}`}));
  if (r.status === 401 && path !== "/api/session") { showLogin(data.error); }
  if (!r.ok) throw new ApiError(r.status, data.error || `${r.status}`);
  return data;
}

// ------------------------------------------------------------------ formatting
// Every value reads as the catalogue (GET /api/points) says: its label, its unit auto-scaled (W, kW, MW),
// a flag as no/yes, a count or a code as a whole number, a time as the meter's local time, NaN as "not available".

const NOT_AVAILABLE = "not available";
const SCALED = new Set(["V", "A", "W", "var", "VA", "Wh", "varh", "VAh", "Qh", "Ah", "V2h", "A2h"]);
const PREFIXES = [[1e9, "G"], [1e6, "M"], [1e3, "k"]];
// Decimals after scaling, by unit; others 3.
const DECIMALS = {V: 2, Hz: 3, "%": 2, deg: 1, s: 1};
const UNIT_SHOWN = {deg: "°"};

function scaled(value, unit) {
  let shown = value, prefix = "";
  if (SCALED.has(unit)) {
    for (const [factor, p] of PREFIXES) if (Math.abs(value) >= factor) { shown = value / factor; prefix = p; break; }
  }
  const d = DECIMALS[unit] !== undefined ? DECIMALS[unit] : 3;
  return [shown.toFixed(d), prefix + (UNIT_SHOWN[unit] || unit)];
}

// [text, unit] of one value of a point
function shown(name, value) {
  const p = state.points[name] || {};
  const unit = p.unit || "";
  if (value === null || value === undefined || Number.isNaN(value)) return [NOT_AVAILABLE, ""];
  switch (p.type) {
    case "flag": return [value ? "yes" : "no", ""];
    case "count": case "code": return [String(Math.round(value)), ""];
    case "time": return [value > 0 ? when(value) : "—", ""];
    default: return scaled(value, unit);
  }
}
const fmt = (name, value) => shown(name, value)[0];
const labelOf = name => (state.points[name] || {}).label || name;

// The meter's local time: [revenue.time]'s offset and DST periods, whatever this computer's zone is.
function localOffsetMin(ts) {
  const c = state.clock || {offset_min: 0, dst_offset_min: 0, dst: []};
  return c.offset_min + (c.dst.some(([from, to]) => ts >= from && ts < to) ? c.dst_offset_min : 0);
}
function zoneName(ts) {
  const m = localOffsetMin(ts), a = Math.abs(m);
  return `UTC${m < 0 ? "−" : "+"}${String(Math.floor(a / 60)).padStart(2, "0")}:${String(a % 60).padStart(2, "0")}`;
}
function when(ts) {
  if (!ts) return "—";
  const d = new Date((ts + localOffsetMin(ts) * 60) * 1000);
  return d.toISOString().slice(0, 19).replace("T", " ");
}

function valueRow(n, values) {
  const [text, unit] = shown(n, values[n]);
  return h("tr", {}, h("th", {title: `${(state.points[n] || {}).description || ""} (${n})`}, labelOf(n)),
    h("td", {class: text === NOT_AVAILABLE ? "num na" : "num", "data-point": n,
             "data-raw": values[n] === null || values[n] === undefined ? "" : values[n]}, text),
    h("td", {class: "unit muted"}, unit));
}

function valueTable(names, values, count) {
  return h("table", {"data-count": count, class: "values"}, h("tbody", {}, names.map(n => valueRow(n, values))));
}

function updateCells(root, values) {
  for (const cell of root.querySelectorAll("td[data-point]")) {
    const v = values[cell.dataset.point];
    const [text, unit] = shown(cell.dataset.point, v);
    cell.textContent = text;
    cell.classList.toggle("na", text === NOT_AVAILABLE);
    cell.dataset.raw = v === null || v === undefined ? "" : v;
    if (cell.nextElementSibling) cell.nextElementSibling.textContent = unit;
  }
}

// The points of a page in the catalogue's areas, in the catalogue's order: main areas as open cards, the rest
// folded below them.
function areaSections(names, values, count) {
  const byArea = new Map();
  for (const n of names) {
    const area = (state.points[n] || {}).area || "";
    if (!byArea.has(area)) byArea.set(area, []);
    byArea.get(area).push(n);
  }
  const main = [], folded = [];
  for (const a of state.areas) {
    const mine = byArea.get(a.name);
    if (!mine) continue;
    if (a.main) main.push(h("div", {class: "card", "data-area": a.name}, h("h2", {}, a.title), valueTable(mine, values, count)));
    else {
      // a long area in up to three side-by-side tables (one below the other on a phone)
      const per = Math.ceil(mine.length / Math.min(3, Math.ceil(mine.length / 6)));
      const parts = [];
      for (let i = 0; i < mine.length; i += per) parts.push(valueTable(mine.slice(i, i + per), values, count));
      folded.push(h("details", {class: "area", "data-area": a.name},
        h("summary", {}, a.title, h("span", {class: "muted"}, ` · ${mine.length}`)), h("div", {class: "parts"}, parts)));
    }
  }
  return [h("div", {class: "cards"}, main), folded];
}

// ------------------------------------------------------------------ session

function showLogin(message) {
  stopView();
  state.csrf = "";
  $("#nav").hidden = true; $("#logout").hidden = true; $("#view").hidden = true; $("#who").textContent = "";
  fill($("#checklist"));
  $("#login").hidden = false;
  $("#login-error").textContent = message && !/^not logged in/.test(message) ? message : "";
}

async function loggedIn(who) {
  Object.assign(state, {csrf: who.csrf, user: who.user, privileges: who.privileges});
  $("#meter-name").textContent = who.meter || "Meter";
  document.title = who.meter || "Meter";
  $("#who").textContent = who.user;
  $("#who").title = `privileges: ${who.privileges.join(", ")}`;
  $("#login").hidden = true; $("#nav").hidden = false; $("#logout").hidden = false; $("#view").hidden = false;
  fill($("#checklist"), (who.checklist || []).map(item => h("p", {class: "error"}, `Security: ${item}`)));
  if (!Object.keys(state.points).length) {
    const table = await api("GET", "/api/points");
    for (const p of table.points) state.points[p.name] = p;
    state.areas = table.areas;
    state.clock = table.clock;
  }
  route();
}

$("#login-form").addEventListener("submit", async e => {
  e.preventDefault();
  $("#login-error").textContent = "";
  try {
    await loggedIn(await api("POST", "/api/session", {user: $("#login-user").value, password: $("#login-password").value}));
    $("#login-password").value = "";
  } catch (err) { $("#login-error").textContent = err.message; }
});
$("#logout").addEventListener("click", async () => {
  try { await api("DELETE", "/api/session"); } finally { showLogin(""); }
});

// ------------------------------------------------------------------ views

function renderLive(view, data) {
  fill(view, h("h1", {}, "Live readings"),
    h("p", {class: "muted", id: "live-meta"}, ""),
    areaSections(Object.keys(data.values), data.values, data.count));
}

function updateLive(data) {
  updateCells($("#view"), data.values);
  for (const t of document.querySelectorAll("#view table[data-count]")) t.dataset.count = data.count;
  const meta = $("#live-meta");
  if (meta) {
    meta.dataset.count = data.count;
    meta.textContent = `published ${when(data.updated)} (meter time, ${zoneName(data.updated)}) · update ${data.count}`;
  }
}

async function viewLive(view) {
  renderLive(view, await api("GET", "/api/readings"));
  const es = new EventSource("/api/stream");
  state.stream = es;
  es.addEventListener("readings", e => updateLive(JSON.parse(e.data)));
  es.addEventListener("end", () => {
    es.close();
    const meta = $("#live-meta");
    if (meta) meta.append(" · live updates paused (no activity for the session timeout) ",
                          h("button", {type: "button", class: "plain", onclick: route}, "Resume"));
  });
}

async function viewEnergy(view) {
  const [data, resets] = await Promise.all([api("GET", "/api/energy"), api("GET", "/api/resets")]);
  const msg = h("p", {id: "reset-message"});
  fill(view, h("h1", {}, "Energy and demand"), h("p", {class: "muted"}, `published ${when(data.updated)}`),
    areaSections(Object.keys(data.values), data.values, data.count),
    h("h2", {}, "Resets"), msg,
    resets.resets.map(r => h("p", {}, h("button", {type: "button", class: "plain", "data-reset": r.name, onclick: async () => {
      if (!confirm(`${r.description}?`)) return;
      // a command that sets something is given this computer's clock (time_set: the meter's time from the PC's)
      const query = r.takes ? `?value=${Date.now() / 1000}` : "";
      try { await api("POST", `/api/resets/${r.name}${query}`); msg.className = "ok"; msg.textContent = `${r.name}: done`; }
      catch (err) { msg.className = "error"; msg.textContent = err.message; }
    }}, r.name.replace(/_/g, " ")), " ", h("span", {class: "muted"}, `${r.description} (privilege ${r.privilege}${r.revenue ? ", revenue lock" : ""})`))));
  state.timer = setInterval(async () => {
    const d = await api("GET", "/api/energy");
    updateCells(view, d.values);
  }, 5000);
}

async function viewHarmonics(view) {
  const first = await api("GET", "/api/harmonics");
  const channels = state.points ? Object.keys(state.points).filter(n => n.startsWith("harmonics_")).map(n => n.slice(10)) : [first.channel];
  const select = h("select", {id: "harmonics-channel"}, channels.map(c => h("option", {value: c}, labelOf(c))));
  const svg = Charts.el("svg", {id: "harmonics-chart", role: "img", "aria-label": "harmonics bar chart"});
  const info = h("p", {class: "muted", id: "harmonics-info"});
  fill(view, h("h1", {}, "Harmonics"), h("label", {}, "Channel ", select), info, svg);
  const draw = d => { Charts.harmonics(svg, d); info.textContent = `fundamental ${d.fundamental === null ? NOT_AVAILABLE : scaled(d.fundamental, d.unit).join(" ")}, THD ${d.thd === null ? NOT_AVAILABLE : d.thd.toFixed(2) + " %"} · ${when(d.updated)}`; };
  const load = async () => draw(await api("GET", `/api/harmonics?channel=${encodeURIComponent(select.value)}`));
  select.addEventListener("change", load);
  draw(first);
  state.timer = setInterval(load, 2000);
}

async function viewPhasors(view) {
  const svg = Charts.el("svg", {id: "phasor-diagram", role: "img", "aria-label": "phasor diagram"});
  const table = h("table", {id: "phasor-table"});
  fill(view, h("h1", {}, "Phasors"), h("p", {class: "muted"}, "Fundamental; V A-N at 0°, counter-clockwise positive."),
    h("div", {class: "grid"}, h("div", {class: "card"}, svg), h("div", {class: "card"}, table)));
  const load = async () => {
    const d = await api("GET", "/api/phasors");
    Charts.phasors(svg, d, ch => labelOf(ch).replace(/^Voltage /, "V ").replace(/^Current /, "I "));
    fill(table, h("thead", {}, h("tr", {}, h("th", {}, "phasor"), h("th", {}, "magnitude"), h("th", {}, "angle"))),
      h("tbody", {}, d.phasors.map(p => h("tr", {"data-channel": p.channel}, h("td", {}, labelOf(p.channel)),
        h("td", {class: "num"}, p.magnitude === null ? NOT_AVAILABLE : scaled(p.magnitude, p.unit).join(" ")),
        h("td", {class: "num"}, p.angle_deg === null ? NOT_AVAILABLE : `${p.angle_deg.toFixed(1)}°`)))));
  };
  await load();
  state.timer = setInterval(load, 1000);
}

async function viewEvents(view) {
  const prio = h("input", {type: "number", min: 0, max: 255, value: 0, id: "events-priority"});
  const body = h("tbody");
  const unread = h("span", {id: "events-unread"});
  const load = async () => {
    const d = await api("GET", `/api/events?limit=200&min_priority=${prio.value || 0}`);
    unread.textContent = `${d.unread} unread`;
    unread.className = d.unread ? "warn" : "muted";
    fill(body, ...d.events.map(e => h("tr", {}, h("td", {}, when(e.ts)), h("td", {class: `num band-${e.band}`}, e.priority),
      h("td", {}, e.source), h("td", {}, e.cause), h("td", {}, e.effect), h("td", {}, e.user))));
    if (!d.events.length) body.append(h("tr", {}, h("td", {colspan: 6, class: "muted"}, "no events")));
  };
  prio.addEventListener("change", load);
  const markRead = h("button", {type: "button", class: "plain", id: "events-mark-read", onclick: async () => {
    await api("POST", "/api/events/read"); await load(); }}, "Mark all read");
  fill(view, h("h1", {}, "Event log"), h("p", {}, unread, " ", markRead), h("label", {}, "Lowest priority ", prio),
    h("table", {id: "events-table"}, h("thead", {}, h("tr", {}, ["time", "priority", "source", "cause", "effect", "user"].map(t => h("th", {}, t)))), body));
  await load();
}

async function viewDiagnostics(view) {
  const load = async () => {
    const d = await api("GET", "/api/diagnostics");
    const m = d.meter || {};
    const gap = m.last_gap ? `${when(m.last_gap.unix_s)}, ${m.last_gap.frames} frames` : "none";
    const ep = d.energy_paths.values || {};
    fill(view, h("h1", {}, "Diagnostics"),
      h("p", {id: "meter-state"}, `Meter ${m.state || "?"} · firmware ${m.version || "?"} · configuration version ${m.config_version ?? "?"}` +
        (m.config_started_version !== undefined && m.config_started_version !== m.config_version ? ` (the services started with version ${m.config_started_version})` : "") +
        ` · up ${Math.round(m.uptime_s || 0)} s`),
      m.error ? h("p", {class: "error"}, m.error) : null,
      h("h2", {}, "Services"),
      h("table", {id: "services-table"}, h("thead", {}, h("tr", {}, ["service", "state", "pid", "restarts", "listens", "last exit", ""].map(t => h("th", {}, t)))),
        h("tbody", {}, Object.entries(d.services).map(([name, s]) => h("tr", {"data-service": name}, h("td", {}, name), h("td", {}, s.state), h("td", {}, s.pid ?? "—"),
          h("td", {class: "num"}, s.restarts), h("td", {}, (s.endpoints || []).join(", ")), h("td", {}, s.last_exit || ""),
          h("td", {}, h("button", {type: "button", class: "plain", onclick: async () => {
            if (confirm(`Restart ${name}?`)) { await api("POST", `/api/services/${name}/restart`).catch(err => alert(err.message)); }
          }}, "restart")))))),
      h("h2", {}, "Samples"),
      h("p", {}, `lost frames in the last minute: ${m.lost_frames_per_min ?? "—"} · metrology overruns: ${m.overruns_per_min ?? "—"} · last gap: ${gap}`),
      h("p", {class: "muted"}, `metrology: ${Object.entries(d.metrology || {}).map(([k, v]) => `${k} ${typeof v === "number" ? +v.toFixed(3) : v}`).join(" · ")}`),
      h("h2", {}, (state.areas.find(a => a.name === "energy_paths") || {}).title || "Energy paths"),
      valueTable(Object.keys(ep), ep, d.energy_paths.count),
      h("h2", {}, "Web"), h("p", {class: "muted"}, Object.entries(d.web).map(([k, v]) => `${k} ${v}`).join(" · ")));
  };
  await load();
  state.timer = setInterval(load, 5000);
}

function optionInput(section, o) {
  const id = `${section}.${o.name}`;
  const value = o.value;
  if (o.type === "boolean") return h("input", {type: "checkbox", "data-option": id, checked: !!value});
  if (o.type === "enum") return h("select", {"data-option": id}, o.choices.map(c => h("option", {value: c, selected: c === value}, c)));
  if (o.type === "integer" || o.type === "number" || o.type === "duration")
    return h("input", {type: "text", inputmode: "decimal", "data-option": id, "data-kind": o.type, value: value});
  if (o.type === "list" || o.type === "table" || o.type === "value")
    return h("textarea", {"data-option": id, "data-kind": "json", rows: 2, cols: 30}, JSON.stringify(value));
  return h("input", {type: "text", "data-option": id, value: value});
}

// Who may change an option (its rule in the schema); a path on the meter is not changed from a browser.
function who(o) {
  return `Needs ${o.privilege}` + (o.revenue_locked ? "; refused while revenue-locked" : "") +
    (o.web_writable ? "" : "; changed only on the meter itself (meter config set)") + ".";
}

function settable(input, o) {
  if (!o.web_writable) input.disabled = true;
  return input;
}

function readInput(input) {
  if (input.type === "checkbox") return input.checked;
  if (input.dataset.kind === "json") return JSON.parse(input.value);
  if (input.dataset.kind === "integer" || input.dataset.kind === "number" || input.dataset.kind === "duration") {
    const n = Number(input.value.trim());
    return input.value.trim() !== "" && Number.isFinite(n) ? n : input.value;   // text durations ("15 min") stay text
  }
  return input.value;
}

async function viewSetup(view) {
  const cfg = await api("GET", "/api/config");
  const msg = h("p", {id: "setup-message", role: "status"});
  const byId = {};
  for (const sec of cfg.sections) for (const o of sec.options) byId[`${sec.name}.${o.name}`] = o;
  const sections = cfg.sections.map(sec => {
    const save = h("button", {type: "button", "data-save": sec.name}, `Save [${sec.name}]`);
    const box = h("details", {"data-section": sec.name}, h("summary", {}, `[${sec.name}]`, sec.sealed ? " (sealed)" : ""),
      h("p", {class: "muted"}, sec.doc), sec.options.map(o => h("div", {class: "opt"},
        h("label", {}, o.name, o.unit ? h("span", {class: "muted"}, ` (${o.unit})`) : null), settable(optionInput(sec.name, o), o),
        h("span", {class: "doc"}, `${o.doc} Allowed: ${o.allowed}. Default: ${JSON.stringify(o.default)}. ${who(o)}`))), save);
    save.addEventListener("click", async () => {
      save.after(msg);          // the answer appears beside the button that asked
      const changes = {};
      try {
        for (const input of box.querySelectorAll("[data-option]")) {
          const v = readInput(input);
          if (JSON.stringify(v) !== JSON.stringify(byId[input.dataset.option].value)) changes[input.dataset.option] = v;
        }
      } catch (err) { msg.className = "error"; msg.textContent = `not valid JSON: ${err.message}`; return; }
      if (!Object.keys(changes).length) { msg.className = "muted"; msg.textContent = "nothing changed"; return; }
      try {
        const r = await api("POST", "/api/config", {changes});
        msg.className = "ok";
        msg.textContent = `saved as version ${r.version}: ` + r.changes.map(c => `${c.option}: ${JSON.stringify(c.old)} → ${JSON.stringify(c.new)}`).join("; ") + `\n${r.note}`;
        for (const c of r.changes) { const o = byId[c.option]; if (o) o.value = c.new; }
      } catch (err) { msg.className = "error"; msg.textContent = err.message; }
    });
    return box;
  });
  fill(view, h("h1", {}, "Setup"),
    h("p", {class: "muted"}, `Configuration version ${cfg.version}, last changed by ${cfg.changed_by}${cfg.changed_at ? " " + cfg.changed_at : ""}; the running meter started with version ${cfg.running_version}.`),
    msg, sections, await certificatePanel());
}

async function certificatePanel() {
  const c = await api("GET", "/api/certificate");
  const msg = h("p", {id: "cert-message"});
  const cert = h("textarea", {rows: 4, cols: 64, placeholder: "-----BEGIN CERTIFICATE-----", id: "cert-pem"});
  const key = h("textarea", {rows: 4, cols: 64, placeholder: "-----BEGIN PRIVATE KEY-----", id: "cert-key"});
  const act = (label, method, path, body) => h("button", {type: "button", class: "plain", onclick: async () => {
    try { const r = await api(method, path, body && body()); msg.className = "ok"; msg.textContent = `${r.note} (${r.certificate.subject}, sha256 ${r.certificate.sha256})`; }
    catch (err) { msg.className = "error"; msg.textContent = err.message; }
  }}, label);
  const i = c.certificate;
  return h("details", {"data-section": "certificate"}, h("summary", {}, "HTTPS certificate"),
    h("p", {}, `In use: ${c.active} — ${i.subject}, issued by ${i.issuer}, valid ${i.not_before} to ${i.not_after}`),
    h("p", {class: "muted"}, `SHA-256 ${i.sha256}; names ${i.names.join(", ")}`), msg,
    h("p", {}, act("Regenerate self-signed", "POST", "/api/certificate/regenerate"), " ",
      act("Delete uploaded", "DELETE", "/api/certificate")),
    h("label", {}, "Certificate (PEM)", h("br"), cert), h("label", {}, "Key (PEM, unencrypted)", h("br"), key),
    act("Upload certificate", "POST", "/api/certificate", () => ({certificate: cert.value, key: key.value})));
}

async function viewUpgrade(view) {
  const file = h("input", {type: "file", id: "upgrade-file", accept: ".img"});
  const result = h("p", {id: "upgrade-result", role: "status"});
  const status = h("dl", {id: "upgrade-status", class: "fields"});
  const submit = h("button", {type: "button", id: "upgrade-submit"}, "Upload and install");
  submit.addEventListener("click", async () => {
    const f = file.files[0];
    if (!f) { result.className = "error"; result.textContent = "choose a firmware image (.img) first"; return; }
    submit.disabled = true; result.className = "muted"; result.textContent = `uploading ${f.name} (${(f.size / 1048576).toFixed(1)} MiB)…`;
    try {
      const r = await api("POST", "/api/upgrade", undefined, f);
      result.className = "ok"; result.textContent = `accepted: version ${r.version} into slot ${r.slot} (attempt ${r.attempt}); the meter restarts into it when installed`;
      follow(r.attempt, result);
    } catch (err) { result.className = "error"; result.textContent = err.message; }
    finally { submit.disabled = false; }
  });
  fill(view, h("h1", {}, "Firmware upgrade"),
    h("p", {class: "muted"}, "Only images signed by the manufacturer's key, newer than the installed version and built for this board are installed; never while the meter is revenue-locked."),
    file, " ", submit, result, h("h2", {}, "Status"), status);
  try { fields(status, await api("GET", "/api/upgrade")); }
  catch (err) { fill(status, h("dt", {}, "status"), h("dd", {class: "error"}, err.message)); }
}

// An answer's fields as a definition list: names as words, nested records as "name: value" lines, times local.
function fields(dl, data) {
  const text = (k, v) => v === null || v === undefined || v === "" ? "—"
    : typeof v === "boolean" ? (v ? "yes" : "no")
    : typeof v === "number" && /(^|_)(time|ts|at|since)$/.test(k) && v > 1e9 ? `${when(v)} (${zoneName(v)})`
    : Array.isArray(v) ? (v.length ? v.map(x => text(k, x)).join(", ") : "none")
    : typeof v === "object" ? Object.entries(v).map(([kk, vv]) => `${kk.replace(/_/g, " ")}: ${text(kk, vv)}`).join(" · ")
    : String(v);
  fill(dl, Object.entries(data).map(([k, v]) => [h("dt", {}, k.replace(/_/g, " ")), h("dd", {"data-field": k}, text(k, v))]));
  return dl;
}

function follow(attempt, result) {
  state.timer = setInterval(async () => {
    try {
      const p = await api("GET", `/api/upgrade/${attempt}`);
      result.textContent = `attempt ${attempt}: ${p.state}`;
      if (!["installing", "on probation", "unknown"].includes(p.state)) clearInterval(state.timer);
    } catch (err) { result.textContent = `attempt ${attempt}: ${err.message}`; }
  }, 2000);
}

const VIEWS = {live: viewLive, energy: viewEnergy, harmonics: viewHarmonics, phasors: viewPhasors, events: viewEvents,
               diagnostics: viewDiagnostics, setup: viewSetup, upgrade: viewUpgrade, waveforms: PQ.viewWaveforms,
               iti: PQ.viewIti, trends: PQ.viewTrends, report: PQ.viewReport, alarms: IO.viewAlarms};

function stopView() {
  clearInterval(state.timer);
  if (state.stream) { state.stream.close(); state.stream = null; }
}

async function route() {
  if (!state.csrf) return;
  stopView();
  const name = (location.hash.match(/^#\/(\w+)/) || [])[1] || "live";
  const view = $("#view");
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.getAttribute("href") === `#/${name}`);
    if (a.classList.contains("active")) a.scrollIntoView({block: "nearest", inline: "nearest"});   // a phone's short nav
  }
  fill(view, h("p", {class: "muted"}, "loading…"));
  try { await (VIEWS[name] || viewLive)(view); }
  catch (err) { if (err.status !== 401) fill(view, h("p", {class: "error"}, err.message)); }
}

window.addEventListener("hashchange", route);
api("GET", "/api/session").then(loggedIn).catch(() => showLogin(""));
