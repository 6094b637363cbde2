// Numbers, durations, times, badges and app addresses as the page shows them.

import { el } from "./dom.js";

export function fmtBytes(n) {
  if (n === null || n === undefined) return "–";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

export function fmtDuration(s) {
  if (s === null || s === undefined) return "–";
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  const h = Math.floor(s / 3600);
  if (h < 48) return `${h} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

export function fmtPercent(p) {
  return p === null || p === undefined ? "–" : `${p.toFixed(1)} %`;
}

function fmtWhen(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso || "";
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return d.toLocaleDateString();
}

export function timeEl(iso) {
  const d = new Date(iso);
  return el("time", {
    textContent: fmtWhen(iso),
    title: Number.isNaN(d.getTime()) ? "" : d.toLocaleString(),
    attrs: { datetime: iso },
  });
}

export function badge(text, kind) {
  return el("span", { className: `badge ${kind || text || "none"}`, textContent: text });
}

export function checkBadge(status) {
  if (!status) return badge("not checked", "none");
  return badge(status === "passed" ? "checks passed" : status === "skipped" ? "not checked" : "checks failed", status);
}

/** Only addresses of apps on this machine are linked or framed. */
export function safeAppUrl(url) {
  try {
    const u = new URL(url);
    return u.protocol === "http:" && (u.hostname === "127.0.0.1" || u.hostname === "localhost") ? u.href : null;
  } catch {
    return null;
  }
}

/** `n` and its noun, pluralised: "1 app", "2 apps", "0 versions". */
export function plural(n, noun, nouns = `${noun}s`) {
  return `${n} ${n === 1 ? noun : nouns}`;
}
