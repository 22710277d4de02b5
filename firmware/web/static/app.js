// The meter's pages: one small hand-written script over the JSON API (docs/web-api.md). No framework, nothing
// loaded from elsewhere. Views are chosen by the address's #fragment; the live view follows /api/stream.
"use strict";
const state = {csrf: "", user: "", privileges: [], points: {}, timer: 0, stream: null};
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

const DIGITS = {V: 2, A: 3, W: 1, var: 1, VA: 1, Hz: 3, "": 3, "%": 2, deg: 2, Wh: 1, varh: 1, VAh: 1, Ah: 2};
function fmt(name, value) {
  if (value === null || value === undefined) return "—";
  const unit = (state.points[name] || {}).unit || "";
  if (name.endsWith("_time") && value > 1e9) return new Date(value * 1000).toLocaleString();
  const d = DIGITS[unit] !== undefined ? DIGITS[unit] : 3;
  return value.toFixed(d);
}
const unitOf = name => (state.points[name] || {}).unit || "";
const when = ts => ts ? new Date(ts * 1000).toLocaleString() : "—";

function valueTable(names, values, count) {
  return h("table", {"data-count": count}, h("tbody", {}, names.map(n => h("tr", {},
    h("th", {title: (state.points[n] || {}).description || ""}, n),
    h("td", {class: "num", "data-point": n, "data-raw": values[n] === null ? "" : values[n]}, fmt(n, values[n])),
    h("td", {class: "muted"}, unitOf(n))))));
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
  $("#who").textContent = `${who.user} (${who.privileges.join(", ")})`;
  $("#login").hidden = true; $("#nav").hidden = false; $("#logout").hidden = false; $("#view").hidden = false;
  fill($("#checklist"), (who.checklist || []).map(item => h("p", {class: "error"}, `Security: ${item}`)));
  if (!Object.keys(state.points).length) {
    const table = await api("GET", "/api/points");
    for (const p of table.points) state.points[p.name] = p;
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

const GROUPS = [
  ["Voltage", /^v_(an|bn|cn|ln_avg|ab|bc|ca|ll_avg)$/], ["Current", /^i_(a|b|c|n|avg|res)$/],
  ["Power", /^(p|q|s)_(a|b|c|total)$|^s_vect_total$/], ["Power factor", /^d?pf_(a|b|c|total)$/],
  ["Frequency", /^frequency/], ["Quality", /^(thd|tdd|k_factor|crest_factor)_|unbalance|_seq_/],
  ["Status", /locked|test_mode|time_synced|active|fault|status_word|dst/],
];

const ENERGY_GROUPS = [
  ["Test mode", /^test_/], ["Billing snapshots", /_bpr$|_frozen$|_season$|_prev_(hour|day)$|_incremental|_conditional/],
  ["Demand", /demand/], ["Active energy", /^wh_|^energy_fill/], ["Reactive energy", /^varh_/],
  ["Apparent energy", /^vah_/], ["Other energy", /^(qh|ah|v2h|i2h)_/],
];

// Matched in ENERGY_GROUPS' order (the narrower patterns first), shown in this one.
const ENERGY_ORDER = ["Active energy", "Reactive energy", "Apparent energy", "Other energy", "Demand",
                      "Billing snapshots", "Test mode", "Other"];

function grouped(names, groups = GROUPS) {
  const left = new Set(names), out = [];
  for (const [title, re] of groups) {
    const mine = names.filter(n => left.has(n) && re.test(n));
    mine.forEach(n => left.delete(n));
    if (mine.length) out.push([title, mine]);
  }
  if (left.size) out.push(["Other", [...left]]);
  return out;
}

function renderLive(view, data) {
  const names = Object.keys(data.values);
  fill(view, h("h1", {}, "Live readings"),
    h("p", {class: "muted", id: "live-meta"}, ""),
    h("div", {class: "grid"}, grouped(names).map(([title, mine]) =>
      h("div", {class: "card"}, h("h2", {}, title), valueTable(mine, data.values, data.count)))));
}

function updateLive(data) {
  for (const cell of document.querySelectorAll("#view td[data-point]")) {
    const v = data.values[cell.dataset.point];
    cell.textContent = fmt(cell.dataset.point, v);
    cell.dataset.raw = v === null || v === undefined ? "" : v;
  }
  for (const t of document.querySelectorAll("#view table[data-count]")) t.dataset.count = data.count;
  const meta = $("#live-meta");
  if (meta) { meta.dataset.count = data.count; meta.textContent = `published ${when(data.updated)} · update ${data.count}`; }
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
    h("div", {class: "grid"}, grouped(Object.keys(data.values), ENERGY_GROUPS).sort((x, y) => ENERGY_ORDER.indexOf(x[0]) - ENERGY_ORDER.indexOf(y[0])).map(([title, mine]) =>
      h("div", {class: "card"}, h("h2", {}, title), valueTable(mine, data.values, data.count)))),
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
    for (const cell of view.querySelectorAll("td[data-point]")) cell.textContent = fmt(cell.dataset.point, d.values[cell.dataset.point]);
  }, 5000);
}

async function viewHarmonics(view) {
  const first = await api("GET", "/api/harmonics");
  const channels = state.points ? Object.keys(state.points).filter(n => n.startsWith("harmonics_")).map(n => n.slice(10)) : [first.channel];
  const select = h("select", {id: "harmonics-channel"}, channels.map(c => h("option", {value: c}, c)));
  const svg = Charts.el("svg", {id: "harmonics-chart", role: "img", "aria-label": "harmonics bar chart"});
  const info = h("p", {class: "muted", id: "harmonics-info"});
  fill(view, h("h1", {}, "Harmonics"), h("label", {}, "Channel ", select), info, svg);
  const draw = d => { Charts.harmonics(svg, d); info.textContent = `fundamental ${fmt("v", d.fundamental)} ${d.unit}, THD ${d.thd === null ? "—" : d.thd.toFixed(3)} % · ${when(d.updated)}`; };
  const load = async () => draw(await api("GET", `/api/harmonics?channel=${encodeURIComponent(select.value)}`));
  select.addEventListener("change", load);
  draw(first);
  state.timer = setInterval(load, 2000);
}

async function viewPhasors(view) {
  const svg = Charts.el("svg", {id: "phasor-diagram", role: "img", "aria-label": "phasor diagram", width: 360, height: 360});
  const table = h("table", {id: "phasor-table"});
  fill(view, h("h1", {}, "Phasors"), h("p", {class: "muted"}, "Fundamental; V A-N at 0°, counter-clockwise positive."),
    h("div", {class: "grid"}, h("div", {class: "card"}, svg), h("div", {class: "card"}, table)));
  const load = async () => {
    const d = await api("GET", "/api/phasors");
    Charts.phasors(svg, d);
    fill(table, h("tr", {}, h("th", {}, "channel"), h("th", {}, "magnitude"), h("th", {}, "angle °")),
      d.phasors.map(p => h("tr", {}, h("td", {}, p.channel), h("td", {class: "num"}, p.magnitude === null ? "—" : `${p.magnitude.toFixed(3)} ${p.unit}`),
        h("td", {class: "num"}, p.angle_deg === null ? "—" : p.angle_deg.toFixed(2)))));
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
      h("p", {id: "meter-state"}, `Meter ${m.state || "?"} · firmware ${m.version || "?"} · configuration v${m.config_version ?? "?"} · up ${Math.round(m.uptime_s || 0)} s`),
      m.error ? h("p", {class: "error"}, m.error) : null,
      h("h2", {}, "Services"),
      h("table", {id: "services-table"}, h("tr", {}, ["service", "state", "pid", "restarts", "listens", "last exit", ""].map(t => h("th", {}, t))),
        Object.entries(d.services).map(([name, s]) => h("tr", {"data-service": name}, h("td", {}, name), h("td", {}, s.state), h("td", {}, s.pid ?? "—"),
          h("td", {class: "num"}, s.restarts), h("td", {}, (s.endpoints || []).join(", ")), h("td", {}, s.last_exit || ""),
          h("td", {}, h("button", {type: "button", class: "plain", onclick: async () => {
            if (confirm(`Restart ${name}?`)) { await api("POST", `/api/services/${name}/restart`).catch(err => alert(err.message)); }
          }}, "restart"))))),
      h("h2", {}, "Samples"),
      h("p", {}, `lost frames in the last minute: ${m.lost_frames_per_min ?? "—"} · metrology overruns: ${m.overruns_per_min ?? "—"} · last gap: ${gap}`),
      h("p", {class: "muted"}, `metrology: ${Object.entries(d.metrology || {}).map(([k, v]) => `${k} ${typeof v === "number" ? +v.toFixed(3) : v}`).join(" · ")}`),
      h("h2", {}, "Energy paths (samples vs the ADE9000's accumulators)"),
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
    h("p", {class: "muted"}, `Configuration version ${cfg.version}, last changed by ${cfg.changed_by} ${cfg.changed_at}; the running meter started with version ${cfg.running_version}.`),
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
  const status = h("pre", {id: "upgrade-status", class: "muted"});
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
  try { status.textContent = JSON.stringify(await api("GET", "/api/upgrade"), null, 1); }
  catch (err) { status.textContent = err.message; }
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
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.getAttribute("href") === `#/${name}`);
  fill(view, h("p", {class: "muted"}, "loading…"));
  try { await (VIEWS[name] || viewLive)(view); }
  catch (err) { if (err.status !== 401) fill(view, h("p", {class: "error"}, err.message)); }
}

window.addEventListener("hashchange", route);
api("GET", "/api/session").then(loggedIn).catch(() => showLogin(""));
