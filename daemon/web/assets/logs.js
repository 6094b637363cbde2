// Log frames on the page: the app's output through the terminal renderer,
// appforge's own lines marked apart, the oldest lines dropped past a limit.

import { el } from "./dom.js";

const LOG_LIMIT = 200_000;

/** The text and source of a log frame: plain text, or `{text, source}`
 * once log lines say who wrote them (the app, or appforge itself). */
function logEntry(value) {
  if (typeof value === "string") return { text: value, source: null };
  if (value && typeof value === "object") {
    const text = value.text ?? value.line ?? value.data ?? "";
    const source = String(value.source ?? "").toLowerCase() || null;
    return { text: typeof text === "string" ? text : String(text), source };
  }
  return { text: "", source: null };
}

/** Appends a log frame to `view`: the app's output through the terminal
 * renderer, appforge's own lines marked apart; the oldest lines go past
 * LOG_LIMIT characters. */
export function appendLog(view, term, value) {
  const { text, source } = logEntry(value);
  if (!text) return;
  const nodes = term.render(text, source !== "appforge");
  if (source === "appforge") view.append(el("span", { className: "log-appforge" }, ...nodes));
  else view.append(...nodes);
  let size = (view.dataset.size ? Number(view.dataset.size) : 0) + text.length;
  if (size > LOG_LIMIT) {
    while (view.firstChild && size > LOG_LIMIT / 2) {
      size -= (view.firstChild.textContent || "").length;
      view.firstChild.remove();
    }
  }
  view.dataset.size = String(size);
}

/** The log entries of a Log or LogLines progress frame: `Log` is the app's
 * text (older daemons); each of `LogLines` says who wrote it, and a line
 * cut in pieces ends only with its last piece. */
export function logEntries(p) {
  if (p.Log !== undefined) return [p.Log];
  if (p.LogLine !== undefined) return [p.LogLine];
  let open = false;
  return (p.LogLines || []).map((line) => {
    const tag = !open && line.source === "appforge" ? "[appforge] " : "";
    open = !line.ends;
    return { text: tag + line.text + (line.ends ? "\n" : ""), source: line.source };
  });
}
