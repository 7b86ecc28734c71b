// Draws the light curve of a stock page as SVG from the JSON in <script id="lc-data">:
// {points: [{time, band, flux, flux_err, zp, upper_limit, forced, ...}], models: [{band, time: [], flux: []}]}.
// Flux is drawn at zero point 25 (AB). No build step, no library.
(function () {
  "use strict";
  const svg = document.getElementById("lightcurve");
  const source = document.getElementById("lc-data");
  if (!svg || !source) return;
  const data = JSON.parse(source.textContent);
  const NS = "http://www.w3.org/2000/svg";
  const W = 860, H = 420, M = {left: 70, right: 110, top: 20, bottom: 45};
  const LIMIT_SIGMA = 5;
  const COLOURS = {g: "#2a9d3a", r: "#d62728", i: "#bcbd22", u: "#7b4ea3", z: "#8c564b", y: "#7f7f7f"};
  const colour = (band) => COLOURS[band.slice(-1)] || "#1f77b4";
  const scale = (p) => Math.pow(10, -0.4 * ((p.zp === null || p.zp === undefined ? 25 : p.zp) - 25));

  const points = data.points.map((p) => {
    const s = scale(p);
    if (p.upper_limit) return {...p, kind: "limit", y: LIMIT_SIGMA * p.flux_err * s, err: 0};
    const kind = p.forced ? "forced" : (p.flux <= 0 ? "negative" : "detection");
    return {...p, kind: kind, y: p.flux * s, err: (p.flux_err || 0) * s};
  }).filter((p) => Number.isFinite(p.y) && Number.isFinite(p.time));
  const models = (data.models || []).map((m) => ({...m, xy: m.time.map((t, i) => [t, m.flux[i]])
    .filter((q) => q[1] !== null && Number.isFinite(q[1]))}));

  function el(name, attributes, parent) {
    const node = document.createElementNS(NS, name);
    for (const key in attributes) node.setAttribute(key, attributes[key]);
    (parent || svg).appendChild(node);
    return node;
  }
  if (!points.length) {
    el("text", {x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty"}).textContent = "no datapoints you may see";
    return;
  }
  const xs = points.map((p) => p.time).concat(...models.map((m) => m.xy.map((q) => q[0])));
  const ys = points.flatMap((p) => [p.y - p.err, p.y + p.err]).concat(...models.map((m) => m.xy.map((q) => q[1])));
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)], [y0, y1] = [Math.min(0, ...ys), Math.max(...ys)];
  const padX = (x1 - x0) * 0.04 || 1, padY = (y1 - y0) * 0.06 || 1;
  x0 -= padX; x1 += padX; y0 -= padY; y1 += padY;
  const X = (t) => M.left + (t - x0) / (x1 - x0) * (W - M.left - M.right);
  const Y = (f) => H - M.bottom - (f - y0) / (y1 - y0) * (H - M.top - M.bottom);

  function ticks(lo, hi, n) {
    const step = Math.pow(10, Math.floor(Math.log10((hi - lo) / n)));
    const nice = [1, 2, 5, 10].map((k) => k * step).find((s) => (hi - lo) / s <= n) || step * 10;
    const out = [];
    for (let v = Math.ceil(lo / nice) * nice; v <= hi; v += nice) out.push(v);
    return out;
  }
  for (const t of ticks(x0, x1, 8)) {
    el("line", {x1: X(t), x2: X(t), y1: M.top, y2: H - M.bottom, class: "grid"});
    el("text", {x: X(t), y: H - M.bottom + 16, "text-anchor": "middle"}).textContent = t.toFixed(0);
  }
  for (const f of ticks(y0, y1, 6)) {
    el("line", {x1: M.left, x2: W - M.right, y1: Y(f), y2: Y(f), class: "grid"});
    el("text", {x: M.left - 6, y: Y(f) + 4, "text-anchor": "end"}).textContent = f.toPrecision(3);
  }
  el("line", {x1: M.left, x2: W - M.right, y1: Y(0), y2: Y(0), class: "axis zero"});
  el("line", {x1: M.left, x2: M.left, y1: M.top, y2: H - M.bottom, class: "axis"});
  el("text", {x: (W - M.right + M.left) / 2, y: H - 8, "text-anchor": "middle"}).textContent = "MJD";
  el("text", {x: 16, y: H / 2, transform: `rotate(-90 16 ${H / 2})`, "text-anchor": "middle"}).textContent =
    "flux (zp 25 AB)";

  for (const m of models) {
    el("polyline", {points: m.xy.map((q) => `${X(q[0])},${Y(q[1])}`).join(" "), class: "model",
                    stroke: colour(m.band), "data-band": m.band});
  }
  for (const p of points) {
    const c = colour(p.band), x = X(p.time), y = Y(p.y);
    const g = el("g", {class: "point " + p.kind, "data-band": p.band, "data-id": String(p.id)});
    el("title", {}, g).textContent = `${p.band} MJD ${p.time.toFixed(4)} flux ${p.y.toPrecision(4)}` +
      (p.kind === "negative" ? " (negative subtraction)" : p.kind === "limit" ? " (5σ upper limit)" : "");
    if (p.err > 0) el("line", {x1: x, x2: x, y1: Y(p.y - p.err), y2: Y(p.y + p.err), stroke: c, class: "errorbar"}, g);
    if (p.kind === "limit") {
      el("path", {d: `M${x - 5},${y - 4} L${x + 5},${y - 4} L${x},${y + 5} Z`, stroke: c, class: "limit"}, g);
    } else if (p.kind === "negative") {
      el("path", {d: `M${x - 4},${y - 4} L${x + 4},${y + 4} M${x - 4},${y + 4} L${x + 4},${y - 4}`, stroke: c,
                  class: "negative"}, g);
    } else if (p.kind === "forced") {
      el("path", {d: `M${x},${y - 5} L${x + 5},${y} L${x},${y + 5} L${x - 5},${y} Z`, fill: c, stroke: c,
                  class: "forced"}, g);
    } else {
      el("circle", {cx: x, cy: y, r: 3.5, fill: c}, g);
    }
  }
  const bands = [...new Set(points.map((p) => p.band).concat(models.map((m) => m.band)))].sort();
  bands.forEach((band, i) => {
    const y = M.top + 14 + 18 * i;
    el("circle", {cx: W - M.right + 18, cy: y - 4, r: 4, fill: colour(band), class: "legend"});
    el("text", {x: W - M.right + 28, y: y}).textContent = band;
  });
  svg.setAttribute("data-rendered", String(points.length));
})();
