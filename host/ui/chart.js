// A small line chart of samples the page kept from polling: lag and
// events/s of a plugin, or the log's append rate, over the last minutes.
// Each series is scaled to its own maximum, which the legend states.

import { h, fmtNum } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  el.append(...children);
  return el;
}

// samples: [{t, ...}] oldest first; series: [{key, label, cls}].
export function chart(samples, series, { width = 240, height = 48, windowMs = 5 * 60_000, label } = {}) {
  // The window shrinks to what the page has seen (at least a minute), so a
  // page opened a moment ago still draws a readable line.
  const now = Date.now();
  const seen = samples.length ? now - samples[0].t : 0;
  const span = Math.min(windowMs, Math.max(60_000, seen));
  const from = now - span;
  const shown = samples.filter((s) => s.t >= from);
  const plot = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    class: "chart",
    role: "img",
    "aria-label": label ?? series.map((s) => s.label).join(" and "),
    preserveAspectRatio: "none",
  });
  plot.append(svg("line", { x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5, class: "axis" }));
  const legend = [];
  for (const s of series) {
    const values = shown.map((p) => p[s.key] ?? 0);
    const max = Math.max(0, ...values);
    const last = values.length ? values[values.length - 1] : null;
    if (shown.length > 1) {
      const points = shown
        .map((p) => {
          const x = ((p.t - from) / span) * width;
          const y = height - 2 - (max > 0 ? ((p[s.key] ?? 0) / max) * (height - 4) : 0);
          return `${x.toFixed(1)},${y.toFixed(1)}`;
        })
        .join(" ");
      plot.append(svg("polyline", { points, class: `series ${s.cls}`, "vector-effect": "non-scaling-stroke" }));
    }
    legend.push(
      h(
        "span",
        { class: `legend ${s.cls}` },
        `${s.label} ${last === null ? "–" : fmtNum(last)}`,
        h("span", { class: "muted" }, ` (max ${fmtNum(max)})`),
      ),
    );
  }
  const minutes = Math.round(span / 60_000);
  return h(
    "figure",
    { class: "chart-box" },
    plot,
    h("figcaption", {}, ...legend, h("span", { class: "muted" }, `last ${minutes} min`)),
  );
}
