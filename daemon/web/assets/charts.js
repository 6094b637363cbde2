// Small line charts of usage samples, as inline SVG.

import { el, svg } from "./dom.js";

/** A small line chart of one field of the samples, as inline SVG. */
export function chart(samples, key, label, fmt, kind) {
  const W = 280;
  const H = 72;
  const PAD = 4;
  const points = (samples || []).filter((s) => typeof s[key] === "number");
  const latest = points.length ? points[points.length - 1][key] : null;
  const peak = points.reduce((m, s) => Math.max(m, s[key]), 0);
  const summary = points.length
    ? `${label} over the last hour: latest ${fmt(latest)}, peak ${fmt(peak)}, ${points.length} samples.`
    : `${label}: no samples yet.`;
  const root = svg("svg", {
    viewBox: `0 0 ${W} ${H}`,
    class: `chart ${kind}`,
    role: "img",
    "aria-label": summary,
    preserveAspectRatio: "none",
  });
  root.append(svg("title", {}, summary));
  root.append(svg("line", { x1: 0, y1: H - PAD, x2: W, y2: H - PAD, class: "axis" }));
  if (points.length) {
    const now = Date.now() / 1000;
    const t0 = Math.min(points[0].at_unix_s, now - 3600);
    const t1 = Math.max(points[points.length - 1].at_unix_s, t0 + 60);
    const top = kind === "cpu" ? Math.max(peak, 5) : Math.max(peak, 1) * 1.15;
    const x = (t) => PAD + ((t - t0) / (t1 - t0)) * (W - 2 * PAD);
    const y = (v) => H - PAD - (v / top) * (H - 2 * PAD);
    const coords = points.map((s) => `${x(s.at_unix_s).toFixed(1)},${y(s[key]).toFixed(1)}`);
    if (points.length > 1) {
      root.append(
        svg("polygon", {
          points: `${x(points[0].at_unix_s).toFixed(1)},${H - PAD} ${coords.join(" ")} ${x(points[points.length - 1].at_unix_s).toFixed(1)},${H - PAD}`,
          class: "area",
        }),
      );
      root.append(svg("polyline", { points: coords.join(" "), class: "line" }));
    }
    const last = points[points.length - 1];
    root.append(svg("circle", { cx: x(last.at_unix_s).toFixed(1), cy: y(last[key]).toFixed(1), r: 2.5, class: "dot" }));
  }
  return el(
    "div",
    { className: "chartbox" },
    el(
      "div",
      { className: "chartlabel" },
      el("span", { textContent: label }),
      el("span", { className: "muted", textContent: points.length ? `${fmt(latest)} (peak ${fmt(peak)})` : "–" }),
    ),
    root,
  );
}
