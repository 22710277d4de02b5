// Alarms and digital I/O: the io service's active and historic alarms with acknowledgement, the inputs' states
// and counts, the outputs' states with forcing (the security core decides who may: alarm_ack, output_force).
// Uses h, fill, api and when from app.js.
"use strict";
const IO = (() => {
  const yesNo = v => v ? "on" : "off";

  function alarmRows(rows, ack, body) {
    fill(body, rows.map(a => h("tr", {"data-alarm": a.name, class: `band-${a.band}`},
      h("td", {}, a.name), h("td", {class: "num"}, a.priority), h("td", {}, a.active ? "active" : "ended"),
      h("td", {}, when(a.since)), h("td", {class: "num"}, a.value === null ? "" : a.value),
      h("td", {}, a.acknowledged ? `by ${a.acknowledged_by || "-"}` :
        (ack ? h("button", {type: "button", class: "plain", "data-ack": a.id, onclick: () => ack([a.id])}, "Acknowledge")
             : "not acknowledged")))));
    if (!rows.length) body.append(h("tr", {}, h("td", {colspan: 6, class: "muted"}, "none")));
  }

  async function viewAlarms(view) {
    const active = h("tbody", {id: "alarms-active"}), historic = h("tbody", {id: "alarms-historic"});
    const inputs = h("tbody", {id: "io-inputs"}), outputs = h("tbody", {id: "io-outputs"});
    const msg = h("p", {id: "io-message"});
    const head = (...t) => h("thead", {}, h("tr", {}, t.map(x => h("th", {}, x))));
    const act = async (call) => {
      try { await call(); msg.className = "ok"; msg.textContent = "done"; }
      catch (err) { msg.className = "error"; msg.textContent = err.message; }
      await load();
    };
    const ack = ids => act(() => api("POST", "/api/alarms/ack", ids ? {ids} : {}));
    const force = (n, s) => act(() => api("POST", `/api/io/outputs/${n}`, {state: s}));
    const load = async () => {
      const [a, io] = await Promise.all([api("GET", "/api/alarms"), api("GET", "/api/io")]);
      alarmRows(a.active, ack, active);
      alarmRows(a.historic.slice(0, 50), null, historic);
      fill(inputs, io.inputs.map(i => h("tr", {"data-input": i.number}, h("td", {}, `DI${i.number}`),
        h("td", {}, yesNo(i.active)), h("td", {class: "num"}, i.count), h("td", {class: "num"}, i.activations),
        h("td", {class: "num"}, `${i.total} ${i.unit || ""}`), h("td", {}, i.mode))));
      fill(outputs, io.outputs.map(o => h("tr", {"data-output": o.number}, h("td", {}, `DO${o.number}`),
        h("td", {}, yesNo(o.level)), h("td", {}, o.source),
        h("td", {}, o.forced === null ? "no" : `forced ${yesNo(o.forced)}`), h("td", {class: "num"}, o.pulses),
        h("td", {}, ["on", "off", "release"].map(s => h("button", {type: "button", class: "plain",
          "data-force": s, onclick: () => force(o.number, s)}, s))))));
    };
    fill(view, h("h1", {}, "Alarms and I/O"), msg,
      h("h2", {}, "Active alarms ", h("button", {type: "button", class: "plain", id: "alarms-ack-all",
        onclick: () => ack(null)}, "Acknowledge all")),
      h("table", {}, head("alarm", "priority", "state", "since", "value", "acknowledged"), active),
      h("h2", {}, "Historic alarms"), h("table", {}, head("alarm", "priority", "state", "since", "value", "acknowledged"),
        historic),
      h("h2", {}, "Digital inputs"), h("table", {}, head("input", "state", "count", "activations", "total", "mode"),
        inputs),
      h("h2", {}, "Digital outputs"), h("table", {}, head("output", "level", "source", "forced", "pulses", "force"),
        outputs));
    await load();
    state.timer = setInterval(load, 5000);
  }

  return {viewAlarms};
})();
