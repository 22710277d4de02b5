// Power-quality views over the JSON API: waveform captures (canvas), the ITI (CBEMA) curve with the recorder's
// events (SVG), trends of the aggregates (SVG lines) and the EN 50160 / IEEE 519 week reports. Uses h, fill, api,
// when from app.js and Charts.el from charts.js.
"use strict";
const PQ = (() => {
  const COLOUR = {A: "#c0392b", B: "#2c3e50", C: "#2471a3", N: "#7d8a96"};
  const el = (...a) => Charts.el(...a);

  // ------------------------------------------------------------------ waveforms

  function drawWave(canvas, wave, shown, t0, t1) {
    const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height, L = 56, R = 56, T = 10, B = 24;
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
    const times = wave.times_s, chans = wave.channels.filter(c => shown.has(c.name));
    const i0 = Math.max(0, times.findIndex(t => t >= t0)), i1 = Math.max(i0 + 1, times.findLastIndex(t => t <= t1) + 1);
    // voltages on the left scale, currents on the right, each to its largest value in view
    const peak = unit => Math.max(1e-9, ...chans.filter(c => c.unit === unit)
      .map(c => Math.max(...c.values.slice(i0, i1).map(v => Math.abs(v || 0)))));
    const scale = {V: peak("V"), A: peak("A")};
    const x = t => L + (W - L - R) * (t - t0) / (t1 - t0), mid = T + (H - T - B) / 2, half = (H - T - B) / 2;
    ctx.strokeStyle = "#d6dbe0"; ctx.lineWidth = 1; ctx.font = "11px system-ui, sans-serif"; ctx.fillStyle = "#1b1f23";
    for (let k = -2; k <= 2; k++) {
      const y = mid - half * k / 2;
      ctx.beginPath(); ctx.moveTo(L, y); ctx.lineTo(W - R, y); ctx.stroke();
      ctx.textAlign = "right"; ctx.fillText((scale.V * k / 2).toFixed(0) + " V", L - 4, y + 4);
      ctx.textAlign = "left"; ctx.fillText((scale.A * k / 2).toPrecision(3) + " A", W - R + 4, y + 4);
    }
    ctx.textAlign = "center";
    const zero = wave.trigger_s === null ? times[0] : wave.trigger_s;     // times are shown from the trigger
    for (let k = 0; k <= 10; k++) {
      const t = t0 + (t1 - t0) * k / 10;
      ctx.fillText(`${((t - zero) * 1000).toFixed(1)} ms`, x(t), H - 6);
    }
    if (wave.trigger_s !== null && wave.trigger_s >= t0 && wave.trigger_s <= t1) {
      ctx.strokeStyle = "#b3261e"; ctx.setLineDash([4, 3]);
      ctx.beginPath(); ctx.moveTo(x(wave.trigger_s), T); ctx.lineTo(x(wave.trigger_s), H - B); ctx.stroke();
      ctx.setLineDash([]);
    }
    for (const c of chans) {
      ctx.strokeStyle = COLOUR[c.phase] || COLOUR[c.name.slice(-1)] || "#000";
      ctx.lineWidth = c.unit === "V" ? 1.6 : 1;
      ctx.setLineDash(c.unit === "V" ? [] : [5, 3]);
      ctx.beginPath();
      let pen = false;           // samples the meter lost (null) leave a break in the trace, not a line at zero
      for (let i = i0; i < i1; i++) {
        if (c.values[i] === null) { pen = false; continue; }
        const y = mid - half * c.values[i] / scale[c.unit === "V" ? "V" : "A"];
        if (pen) ctx.lineTo(x(times[i]), y); else ctx.moveTo(x(times[i]), y);
        pen = true;
      }
      ctx.stroke();
    }
    ctx.setLineDash([]);
    canvas.dataset.drawn = String(chans.length);
    canvas.dataset.span = String(t1 - t0);
    return {x, L, R};
  }

  async function openCapture(box, name) {
    const wave = await api("GET", `/api/captures/${encodeURIComponent(name)}`);
    const times = wave.times_s, first = times[0], last = times[times.length - 1];
    let t0 = first, t1 = last, dragFrom = null;
    const shown = new Set(wave.channels.map(c => c.name));
    const canvas = h("canvas", {id: "wave", width: 1060, height: 420});
    const redraw = () => { geo = drawWave(canvas, wave, shown, t0, t1); };
    const zoom = f => { const m = (t0 + t1) / 2, s = Math.min((t1 - t0) * f, last - first) / 2;
      t0 = Math.max(first, m - s); t1 = Math.min(last, m + s); redraw(); };
    const toTime = ev => t0 + (t1 - t0) * (ev.offsetX * canvas.width / canvas.clientWidth - geo.L) /
      (canvas.width - geo.L - geo.R);
    let geo = null;
    canvas.addEventListener("mousedown", ev => { dragFrom = toTime(ev); });
    canvas.addEventListener("mouseup", ev => {
      const to = toTime(ev);
      if (dragFrom !== null && Math.abs(to - dragFrom) > (t1 - t0) / 200) {
        t0 = Math.max(first, Math.min(dragFrom, to)); t1 = Math.min(last, Math.max(dragFrom, to)); redraw();
      }
      dragFrom = null;
    });
    const boxes = wave.channels.map(c => h("label", {class: "inline"}, h("input", {type: "checkbox", checked: true,
      "data-channel": c.name, onchange: ev => { ev.target.checked ? shown.add(c.name) : shown.delete(c.name); redraw(); }}),
      ` ${c.name} (${c.unit})`));
    const file = part => h("a", {href: `/api/captures/${encodeURIComponent(name)}/${part}`, download: `${name}.${part}`},
      `${name}.${part}`);
    fill(box, h("h2", {}, name),
      h("p", {class: "muted"}, `${wave.sample_rate_hz} samples/s${wave.decimation > 1 ? ` (every ${wave.decimation}th)` : ""}, `,
        `trigger ${wave.trigger || "—"} · COMTRADE: `, file("cfg"), " ", file("dat")),
      h("div", {}, boxes),
      h("div", {class: "buttons"}, h("button", {type: "button", id: "zoom-in", class: "plain", onclick: () => zoom(0.5)}, "Zoom in"),
        h("button", {type: "button", id: "zoom-out", class: "plain", onclick: () => zoom(2)}, "Zoom out"),
        h("button", {type: "button", id: "zoom-reset", class: "plain", onclick: () => { t0 = first; t1 = last; redraw(); }}, "Whole capture"),
        h("span", {class: "muted"}, " or drag across the plot")),
      canvas);
    redraw();
  }

  async function viewWaveforms(view) {
    const d = await api("GET", "/api/captures");
    const box = h("div", {id: "capture"});
    const rows = d.captures.slice().reverse().map(c => h("tr", {}, h("td", {}, c.name), h("td", {}, c.kind),
      h("td", {}, h("button", {type: "button", class: "plain", "data-capture": c.name,
        onclick: () => openCapture(box, c.name).catch(err => fill(box, h("p", {class: "error"}, err.message)))}, "Show"))));
    fill(view, h("h1", {}, "Waveform captures"),
      d.captures.length ? h("table", {id: "captures"}, h("tr", {}, h("th", {}, "capture (UTC)"), h("th", {}, "trigger"), h("th", {})), rows)
        : h("p", {class: "muted"}, "no captures kept"), box);
  }

  // ------------------------------------------------------------------ ITI curve

  const T_MIN = 1e-4, T_MAX = 100, P_MAX = 300;

  function viewItiDraw(svg, d) {
    const W = 900, H = 420, L = 52, B = 36, T = 10, R = 12;
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.replaceChildren();
    const x = t => L + (W - L - R) * (Math.log10(Math.min(Math.max(t, T_MIN), T_MAX)) - Math.log10(T_MIN)) / (Math.log10(T_MAX) - Math.log10(T_MIN));
    const y = p => H - B - (H - B - T) * Math.min(p, P_MAX) / P_MAX;
    for (let e = -4; e <= 2; e++) {
      svg.append(el("line", {x1: x(10 ** e), x2: x(10 ** e), y1: T, y2: H - B, stroke: "#eef0f2"}));
      svg.append(el("text", {x: x(10 ** e), y: H - B + 14, "text-anchor": e === 2 ? "end" : "middle"}, e < 0 ? `${10 ** e * 1000} ms` : `${10 ** e} s`));
    }
    for (let p = 0; p <= P_MAX; p += 50) {
      svg.append(el("line", {x1: L, x2: W - R, y1: y(p), y2: y(p), stroke: "#eef0f2"}));
      svg.append(el("text", {x: L - 6, y: y(p) + 4, "text-anchor": "end"}, `${p} %`));
    }
    svg.append(el("text", {x: W / 2, y: H - 4, "text-anchor": "middle"}, "duration"));
    // each boundary: (longest duration, tolerated %) steps; null is "any longer"
    const steps = (table, start) => {
      let from = T_MIN, pts = [];
      for (const [longest, pct] of table) {
        const to = longest === null ? T_MAX : longest;
        pts.push(`${x(from)},${y(pct)}`, `${x(to)},${y(pct)}`);
        from = to;
      }
      return (start ? `M${x(T_MIN)},${y(start)} L` : "M") + pts.join(" L");
    };
    svg.append(el("path", {class: "iti-limit", d: steps(d.itic.upper, 500), fill: "none", stroke: "#b3261e", "stroke-width": 2}));
    svg.append(el("path", {class: "iti-limit", d: steps(d.itic.lower), fill: "none", stroke: "#0b5cad", "stroke-width": 2}));
    for (const ev of d.events) {
      const pct = (ev.detail || {}).extreme_pct;
      if (!d.itic.kinds.includes(ev.kind) || pct === undefined || pct === null || !ev.duration_s) continue;
      const dot = el("circle", {cx: x(ev.duration_s), cy: y(pct), r: 5, class: "iti-event", "data-kind": ev.kind,
        fill: ev.detail.itic === "no_interruption" ? "#1e7b34" : "#b3261e", "fill-opacity": 0.75});
      dot.append(el("title", {}, `${ev.kind} ${pct.toFixed(1)} % for ${ev.duration_s.toFixed(3)} s, ${when(ev.ts)}`));
      svg.append(dot);
    }
  }

  // an event's statistics (metrology/evstats.py) in one cell; null (no value during it) as "—"
  function during(st) {
    if (!st || !st.v) return "";
    const n = (x, d) => (x === null || x === undefined ? "—" : x.toFixed(d));
    const lo = a => Math.min(...a.filter(x => x !== null)), hi = a => Math.max(...a.filter(x => x !== null));
    const span = (a, b, d) => `${n(isFinite(a) ? a : null, d)}-${n(isFinite(b) ? b : null, d)}`;
    return `${span(lo(st.v.min), hi(st.v.max), 1)} V, ${n(isFinite(hi(st.i.max)) ? hi(st.i.max) : null, 2)} A, ` +
      `${n(isFinite(hi(st.thd_v.max)) ? hi(st.thd_v.max) : null, 1)} %, PF ${n(st.pf.avg, 3)}, ` +
      `${span(st.f.min, st.f.max, 3)} Hz`;
  }

  async function viewIti(view) {
    const d = await api("GET", "/api/pq/events?limit=10000");
    const svg = el("svg", {id: "iti", role: "img", "aria-label": "ITI curve with the PQ events"});
    // each kind counted as itself: only dips, swells and interruptions lie on the curve
    const c = d.counts, plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;
    fill(view, h("h1", {}, "ITI (CBEMA) curve"),
      h("p", {class: "muted", id: "iti-summary"}, `${plural(c.sag, "dip", "dips")}, ${plural(c.swell, "swell", "swells")}, `,
        `${plural(c.interruption, "interruption", "interruptions")} on the curve (residual or highest voltage, % of Udin, `,
        "against duration); above the red line: prohibited region, below the blue: no-damage region. ",
        `Listed below too: ${plural(c.rvc, "rapid voltage change", "rapid voltage changes")}, `,
        `${plural(c.transient, "transient", "transients")}.`), svg,
      h("table", {id: "pq-events"}, h("tr", {}, ["time", "kind", "duration s", "% of Udin", "ITIC", "during: V min-max, I max, THD max, PF avg, f min-max"].map(t => h("th", {}, t))),
        d.events.slice(-200).reverse().map(e => h("tr", {}, h("td", {}, when(e.ts)), h("td", {}, e.kind),
          h("td", {class: "num"}, (e.duration_s || 0).toFixed(3)),
          h("td", {class: "num"}, (e.detail || {}).extreme_pct === undefined ? "—" : e.detail.extreme_pct.toFixed(2)),
          h("td", {}, (e.detail || {}).itic || ""), h("td", {class: "num"}, during((e.detail || {}).stats)))),
        d.events.length ? null : h("tr", {}, h("td", {colspan: 6, class: "muted"}, "no PQ events recorded"))));
    viewItiDraw(svg, d);
  }

  // ------------------------------------------------------------------ trends

  const QUANTITIES = {v_ln: "V L-N (V)", v_ll: "V L-L (V)", i: "current (A)", freq: "frequency (Hz)", thd: "THD (%)",
                      v_unbal: "voltage unbalance (%)", pst: "flicker Pst", p: "active power (W)"};
  const SPANS = {"1 hour": 3600, "1 day": 86400, "1 week": 604800, "5 weeks": 3024000};

  function drawTrend(svg, records, name) {
    const W = 900, H = 340, L = 60, B = 28, T = 10, R = 12;
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.replaceChildren();
    // a value per record: a scalar, or one line per element (phases a, b, c); harmonic-shaped arrays: the first row
    const series = [];
    for (const r of records) {
      let v = r.values[name];
      if (Array.isArray(v) && Array.isArray(v[0])) v = v.map(row => row[0]);
      (Array.isArray(v) ? v : [v]).slice(0, 3).forEach((x, k) => { (series[k] = series[k] || []).push([r.ts, x]); });
    }
    const all = series.flat().filter(p => p[1] !== null && p[1] !== undefined);
    if (!all.length) { svg.append(el("text", {x: W / 2, y: H / 2, "text-anchor": "middle"}, "no records in this range")); return; }
    const t0 = Math.min(...all.map(p => p[0])), t1 = Math.max(t0 + 1, ...all.map(p => p[0]));
    let lo = Math.min(...all.map(p => p[1])), hi = Math.max(...all.map(p => p[1]));
    // a steady value is drawn mid-plot with a range of 0.2 % around it, not stretched from digit noise
    const pad = Math.max((hi - lo) * 0.05, (Math.abs(hi) + Math.abs(lo)) * 5e-4, 1e-6);
    if (hi - lo < 20 * pad) { const m = (hi + lo) / 2; lo = m - 10 * pad; hi = m + 10 * pad; } else { lo -= pad; hi += pad; }
    const x = t => L + (W - L - R) * (t - t0) / (t1 - t0), y = v => H - B - (H - B - T) * (v - lo) / (hi - lo);
    for (let k = 0; k <= 4; k++) {
      const v = lo + (hi - lo) * k / 4;
      svg.append(el("line", {x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#eef0f2"}));
      svg.append(el("text", {x: L - 6, y: y(v) + 4, "text-anchor": "end"}, v.toPrecision(5)));
    }
    for (let k = 0; k <= 4; k++) {
      const t = t0 + (t1 - t0) * k / 4;
      const at = new Date(t * 1000), label = t1 - t0 < 86400 ? at.toLocaleTimeString() : at.toLocaleString();
      svg.append(el("text", {x: x(t), y: H - 8, "text-anchor": ["start", "middle", "middle", "middle", "end"][k]}, label));
    }
    series.forEach((pts, k) => {
      const ok = pts.filter(p => p[1] !== null && p[1] !== undefined);
      if (ok.length) svg.append(el("polyline", {points: ok.map(p => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" "),
        fill: "none", stroke: Object.values(COLOUR)[k], "stroke-width": 1.5, "data-element": "abc"[k]}));
    });
  }

  async function viewTrends(view) {
    const kind = h("select", {id: "trend-kind"}, ["3s", "10min", "2h"].map(k => h("option", {value: k}, k)));
    const what = h("select", {id: "trend-quantity"}, Object.entries(QUANTITIES).map(([k, t]) => h("option", {value: k}, t)));
    const span = h("select", {id: "trend-span"}, Object.entries(SPANS).map(([t, s]) => h("option", {value: s}, t)));
    const svg = el("svg", {id: "trend", role: "img", "aria-label": "trend of aggregated values"});
    const info = h("p", {class: "muted", id: "trend-info"});
    let asked = 0;
    const load = async () => {
      const since = Date.now() / 1000 - Number(span.value), mine = ++asked;
      const d = await api("GET", `/api/aggregates?kind=${kind.value}&names=${what.value}&since=${since.toFixed(0)}&limit=10000`);
      if (mine !== asked) return;          // a newer choice was made while this one was on its way
      info.textContent = `${d.records.length} ${kind.value} records (phases a, b, c in red, dark, blue)`;
      drawTrend(svg, d.records, what.value);
    };
    for (const s of [kind, what, span]) s.addEventListener("change", load);
    // trending and forecasting (GET /api/pq/trend): the targets and intervals come with every answer
    const target = h("select", {id: "forecast-target"}), period = h("select", {id: "forecast-interval"});
    const box = h("div", {id: "forecast-box"});
    const num = v => v === null || v === undefined ? "—" : Number(v).toPrecision(6);
    const loadForecast = async () => {
      const d = await api("GET", `/api/pq/trend?target=${target.value || "p_total"}&interval=${period.value || "daily"}`);
      if (!target.options.length) {
        d.targets.forEach(t => target.append(h("option", {value: t}, t)));
        d.interval_names.forEach(t => period.append(h("option", {value: t}, t)));
        target.value = d.target; period.value = d.interval;
      }
      const f = d.forecast;
      fill(box, h("p", {class: "muted", id: "forecast-summary"}, f.next === null
          ? `${d.target}: no forecast yet (it needs two complete ${d.interval} intervals with values)`
          : `${d.target} forecast: ${num(f.present)} ${d.unit} this interval, ${num(f.next)} ${d.unit} the next`),
        h("table", {id: "forecast"}, h("thead", {}, h("tr", {}, ["from (UTC)", `mean ${d.unit}`, "min", "max", "10-min values"].map(t => h("th", {}, t)))),
          h("tbody", {}, d.intervals.map(i => h("tr", {}, h("td", {}, new Date(i.start * 1000).toISOString().slice(0, 16)),
            h("td", {class: "num"}, num(i.mean)), h("td", {class: "num"}, num(i.min)), h("td", {class: "num"}, num(i.max)),
            h("td", {class: "num"}, i.count))))));
    };
    for (const s of [target, period]) s.addEventListener("change", loadForecast);
    fill(view, h("h1", {}, "Trends"), h("div", {class: "buttons"}, h("label", {class: "inline"}, "Interval ", kind),
      h("label", {class: "inline"}, " Value ", what), h("label", {class: "inline"}, " Last ", span)), info, svg,
      h("h2", {}, "Trending and forecasting"), h("div", {class: "buttons"}, h("label", {class: "inline"}, "Target ", target),
        h("label", {class: "inline"}, " Interval ", period)), box);
    await Promise.all([load(), loadForecast()]);
    state.timer = setInterval(load, 15000);
  }

  // ------------------------------------------------------------------ reports

  const pct = v => v === null || v === undefined ? "—" : Number(v).toFixed(2);
  const verdict = c => h("td", {class: c === true ? "ok" : c === false ? "error" : "muted"}, c === true ? "pass" : c === false ? "fail" : "no data");

  function en50160Table(r) {
    return h("table", {id: "en50160"},
      h("thead", {}, h("tr", {}, ["parameter", "limit", "required %", "measured % (worst)", "per phase %", "values", "verdict"].map(t => h("th", {}, t)))),
      h("tbody", {}, r.parameters.map(p => h("tr", {}, h("td", {}, p.parameter), h("td", {}, p.limit),
        h("td", {class: "num"}, pct(p.required_pct)), h("td", {class: "num"}, pct(p.measured_pct)),
        h("td", {class: "num"}, (p.per_phase || []).map(pct).join(" / ")), h("td", {class: "num"}, p.values), verdict(p.compliant)))));
  }

  // EN 50160:2010 Tables 5 and 6: dips and swells by voltage and duration; interruptions short and long
  function en50160Events(ev) {
    if (!ev) return h("p", {class: "muted"}, "no event counts in this report");
    const table = (id, title, t) => h("table", {id},
      h("thead", {}, h("tr", {}, [title, ...t.columns].map(c => h("th", {}, c)))),
      h("tbody", {}, t.rows.map((row, i) => h("tr", {}, h("td", {}, row), ...t.counts[i].map(n => h("td", {class: "num"}, n))))));
    const i = ev.interruptions;
    return h("div", {},
      h("h3", {}, `Dips: ${ev.dips.total}`), table("en50160-dips", "residual u %", ev.dips),
      h("h3", {}, `Swells: ${ev.swells.total}`), table("en50160-swells", "maximum u %", ev.swells),
      h("p", {id: "en50160-interruptions"}, `Interruptions: ${i.short} short (up to ${i.short_up_to_s / 60} min), ${i.long} long`,
        i.longest_s === null ? "" : `; the longest ${i.longest_s.toFixed(1)} s`));
  }

  function ieee519Table(r) {
    return h("table", {id: "ieee519"},
      h("thead", {}, h("tr", {}, ["quantity", "limit %", "95th pct 10 min", "99th pct 3 s worst day", "verdict"].map(t => h("th", {}, t)))),
      h("tbody", {}, [...r.voltage, ...r.current].map(e => h("tr", {}, h("td", {}, e.quantity), h("td", {class: "num"}, pct(e.limit_pct)),
        h("td", {class: "num"}, pct(e.p95_10min)), h("td", {class: "num"}, pct(e.p99_3s_worst_day)), verdict(e.compliant)))));
  }

  // the values each row had, as the rows count them: 10-min records used (not the ones stored), and the frequency's
  function en50160Records(c) {
    const freq = c.frequency_values === "10s" ? c["10s_used"] : c.frequency_values === "3s" ? c["3s_used"] : c["10min_used"];
    return `${c["10min_used"]} of ${c["10min_expected"]} 10-min records used (${c.coverage_pct} %): ${c["10min"]} stored, ` +
      `${c["10min_flagged"]} flagged by a dip, swell or interruption and ${c["10min_gap"]} with lost samples left out; ` +
      `frequency on ${freq} ${c.frequency_values === "10s" ? "10-s" : c.frequency_values === "3s" ? "3-s" : "10-min"} values.`;
  }

  async function viewReport(view) {
    const week = h("select", {id: "report-week"}, h("option", {value: "present"}, "present week"), h("option", {value: "previous"}, "previous week"));
    const isc = h("input", {type: "number", id: "report-isc-il", min: 0.001, step: "any", placeholder: "e.g. 35"});
    const en = h("div", {id: "en50160-box"}), ieee = h("div", {id: "ieee519-box"});
    const span = d => `${new Date(d.start * 1000).toISOString().slice(0, 16)} to ${new Date(d.end * 1000).toISOString().slice(0, 16)} UTC`;
    const loadEn = async () => {
      const d = await api("GET", `/api/reports/en50160?week=${week.value}`), r = d.report;
      fill(en, h("h2", {}, `EN 50160, ${span(d)}: `, verdict(r.compliant).textContent),
        h("p", {class: "muted", id: "en50160-records"}, en50160Records(r.records)), en50160Table(r), en50160Events(r.events));
    };
    const loadIeee = async () => {
      if (!isc.value) { fill(ieee, h("p", {class: "muted"}, "IEEE 519 needs the short-circuit ratio ISC/IL at the point of common coupling.")); return; }
      try {
        const d = await api("GET", `/api/reports/ieee519?week=${week.value}&isc_il=${encodeURIComponent(isc.value)}`), r = d.report;
        fill(ieee, h("h2", {}, `IEEE 519, ${span(d)}: `, verdict(r.compliant).textContent),
          h("p", {class: "muted"}, `PCC ${r.pcc.bus_kv.toFixed(3)} kV, ISC/IL ${r.pcc.isc_il}, I_L ${r.pcc.il_a} A; `,
            `${r.records["10min_used"]} 10-min records`), ieee519Table(r));
      } catch (err) { fill(ieee, h("p", {class: "error"}, err.message)); }
    };
    const load = () => Promise.all([loadEn(), loadIeee()]);
    week.addEventListener("change", load);
    isc.addEventListener("change", loadIeee);
    fill(view, h("h1", {}, "Power-quality reports"), h("div", {class: "buttons"}, h("label", {class: "inline"}, "Week ", week),
      h("label", {class: "inline"}, " IEEE 519 ISC/IL ", isc)), en, ieee);
    await load();
  }

  return {viewWaveforms, viewIti, viewTrends, viewReport};
})();
