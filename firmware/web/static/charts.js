// The pages' two drawings, as SVG built by hand: a harmonics bar chart and a phasor diagram.
"use strict";
const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  function el(name, attrs, text) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // Bars of percent of the fundamental for orders 2..N (order 1 is 100 % by definition and would flatten the rest).
  function harmonics(svg, data) {
    const W = 900, H = 320, L = 48, B = 28, T = 12;
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.replaceChildren();
    const pct = (data.percent_of_fundamental || []).slice(2);
    const top = Math.max(1, ...pct.map(v => v || 0));
    const scale = top <= 1 ? 1 : top <= 2 ? 2 : top <= 5 ? 5 : top <= 10 ? 10 : Math.ceil(top / 10) * 10;
    const bw = (W - L - 8) / Math.max(pct.length, 1);
    for (let i = 0; i <= 4; i++) {
      const y = H - B - (H - B - T) * i / 4;
      svg.append(el("line", {x1: L, x2: W, y1: y, y2: y, stroke: "#d6dbe0"}));
      svg.append(el("text", {x: L - 6, y: y + 4, "text-anchor": "end"}, (scale * i / 4).toFixed(scale < 4 ? 2 : 1)));
    }
    svg.append(el("text", {x: 4, y: T + 2}, "%"));
    pct.forEach((v, i) => {
      const order = i + 2, h = (H - B - T) * Math.min(v || 0, scale) / scale, x = L + i * bw;
      const bar = el("rect", {x: x + 1, y: H - B - h, width: Math.max(bw - 2, 1), height: h,
                              fill: order % 2 ? "#0b5cad" : "#7fa7d1", "data-order": order});
      bar.append(el("title", {}, `order ${order}: ${v === null ? "n/a" : v.toFixed(3) + " %"}`));
      svg.append(bar);
      if (order % 5 === 0 || order === 2) svg.append(el("text", {x: x + bw / 2, y: H - 10, "text-anchor": "middle"}, order));
    });
  }

  // Phasors: V A-N on +x, counter-clockwise positive; voltages and currents each scaled to their own largest.
  // Each is named at its tip, the name kept inside the drawing whatever the angle.
  function phasors(svg, data, name = ch => ch) {
    const S = 360, C = S / 2, R = C - 60;
    svg.setAttribute("viewBox", `0 0 ${S} ${S}`);
    svg.replaceChildren();
    svg.append(el("circle", {cx: C, cy: C, r: R, fill: "none", stroke: "#d6dbe0"}));
    svg.append(el("line", {x1: C - R, x2: C + R, y1: C, y2: C, stroke: "#eef0f2"}));
    svg.append(el("line", {x1: C, x2: C, y1: C - R, y2: C + R, stroke: "#eef0f2"}));
    const colour = {a: "#c0392b", b: "#2c3e50", c: "#2471a3"};
    const largest = unit => Math.max(1e-9, ...data.phasors.filter(p => p.unit === unit).map(p => p.magnitude || 0));
    const vmax = largest("V"), imax = largest("A");
    for (const p of data.phasors) {
      if (p.magnitude === null || p.angle_deg === null) continue;
      const isV = p.unit === "V", len = R * (isV ? 1 : 0.7) * p.magnitude / (isV ? vmax : imax);
      const a = p.angle_deg * Math.PI / 180, x = C + len * Math.cos(a), y = C - len * Math.sin(a);
      const phase = p.channel.slice(-1) === "n" ? p.channel[2] : p.channel.slice(-1);
      const line = el("line", {x1: C, y1: C, x2: x, y2: y, stroke: colour[phase] || "#000",
                               "stroke-width": isV ? 3 : 2, "stroke-dasharray": isV ? "" : "5 3",
                               "data-channel": p.channel});
      line.append(el("title", {}, `${name(p.channel)}: ${p.magnitude.toFixed(3)} ${p.unit} ∠ ${p.angle_deg.toFixed(2)}°`));
      svg.append(line);
      // anchored on the side facing away from the centre, so the text grows outwards but stays in the box
      const cos = Math.cos(a), anchor = cos > 0.3 ? "start" : cos < -0.3 ? "end" : "middle";
      svg.append(el("text", {x: C + (len + 6) * cos, y: C - (len + 6) * Math.sin(a) + 4 - (Math.sin(a) > 0.3 ? 4 : 0)
                               + (Math.sin(a) < -0.3 ? 8 : 0), "text-anchor": anchor, "data-label": p.channel}, name(p.channel)));
    }
  }
  return {harmonics, phasors, el};
})();
