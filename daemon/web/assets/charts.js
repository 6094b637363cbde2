// Small line charts of usage samples, as inline SVG: a value axis from 0
// to a round top, and a time axis over the last hour with clock times.

import { el, svg } from "./dom.js";

const W = 320;
const H = 132;
/** Room for the value labels on the left and the times below. */
const LEFT = 52;
const RIGHT = 8;
const TOP = 8;
const BOTTOM = 20;
const HOUR_S = 3600;
/** A time label every quarter of an hour. */
const TICK_S = 900;

/** The smallest "round" number (1, 2 or 5 times a power of ten) at or above `v`. */
function roundUp(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function clock(t) {
  return new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

/** A line chart of one field of the samples, as inline SVG. */
export function chart(samples, key, label, fmt, kind) {
  const points = (samples || []).filter((s) => typeof s[key] === "number");
  const latest = points.length ? points[points.length - 1][key] : null;
  const peak = points.reduce((m, s) => Math.max(m, s[key]), 0);
  const summary = points.length
    ? `${label} over the last hour: latest ${fmt(latest)}, peak ${fmt(peak)}, ${points.length} sample${points.length === 1 ? "" : "s"}.`
    : `${label}: no samples yet.`;
  const root = svg("svg", {
    viewBox: `0 0 ${W} ${H}`,
    class: `chart ${kind}`,
    role: "img",
    "aria-label": summary,
  });
  root.append(svg("title", {}, summary));
  const now = Date.now() / 1000;
  const t1 = Math.max(now, points.length ? points[points.length - 1].at_unix_s : now);
  const t0 = t1 - HOUR_S;
  // CPU in percent, at least 5 % high; memory rounded in MiB, at least 1.
  const unit = kind === "cpu" ? 1 : 1024 * 1024;
  const top = roundUp((Math.max(peak, kind === "cpu" ? 5 : unit) * 1.1) / unit) * unit;
  const x = (t) => LEFT + ((t - t0) / (t1 - t0)) * (W - LEFT - RIGHT);
  const y = (v) => H - BOTTOM - (v / top) * (H - TOP - BOTTOM);
  // Value axis: 0, half and the top, with grid lines.
  for (const v of [0, top / 2, top]) {
    root.append(svg("line", { x1: LEFT, y1: y(v), x2: W - RIGHT, y2: y(v), class: v === 0 ? "axis" : "grid" }));
    root.append(svg("text", { x: LEFT - 4, y: y(v) + 3, class: "tick", "text-anchor": "end" }, fmt(v)));
  }
  // Time axis: a clock time every quarter of an hour.
  root.append(svg("line", { x1: LEFT, y1: TOP, x2: LEFT, y2: H - BOTTOM, class: "axis" }));
  for (let t = Math.ceil(t0 / TICK_S) * TICK_S; t <= t1; t += TICK_S) {
    root.append(svg("line", { x1: x(t), y1: H - BOTTOM, x2: x(t), y2: H - BOTTOM + 3, class: "axis" }));
    root.append(svg("text", { x: x(t), y: H - 5, class: "tick", "text-anchor": "middle" }, clock(t)));
  }
  const shown = points.filter((s) => s.at_unix_s >= t0);
  if (shown.length) {
    const coords = shown.map((s) => `${x(s.at_unix_s).toFixed(1)},${y(s[key]).toFixed(1)}`);
    if (shown.length > 1) {
      const base = (H - BOTTOM).toFixed(1);
      root.append(
        svg("polygon", {
          points: `${x(shown[0].at_unix_s).toFixed(1)},${base} ${coords.join(" ")} ${x(shown[shown.length - 1].at_unix_s).toFixed(1)},${base}`,
          class: "area",
        }),
      );
      root.append(svg("polyline", { points: coords.join(" "), class: "line" }));
    }
    const last = shown[shown.length - 1];
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
