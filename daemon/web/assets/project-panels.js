// The project page's panels: switching tabs, the live log and the preview,
// both stopped when their panel is left.

import { $, el, show } from "./dom.js";
import { call, isAbort } from "./api.js";
import { safeAppUrl } from "./format.js";
import { appendLog, logEntries } from "./logs.js";
import { currentApp, ref, state } from "./state.js";
import { terminal } from "./terminal.js";

// Logs ----------------------------------------------------------------------

export function startLogs() {
  stopLogs();
  const controller = new AbortController();
  state.logs = controller;
  const view = $("logs-view");
  view.textContent = "";
  view.dataset.size = "0";
  const term = terminal();
  $("logs-state").textContent = "Following the log live…";
  call(
    { Logs: { project: ref(), lines: 200, follow: true } },
    {
      signal: controller.signal,
      onProgress: (p) => {
        const entries = logEntries(p);
        if (entries.length === 0) return;
        const atEnd = view.scrollTop + view.clientHeight >= view.scrollHeight - 8;
        for (const entry of entries) appendLog(view, term, entry);
        if (atEnd) view.scrollTop = view.scrollHeight;
      },
    },
  ).then(
    () => {
      if (state.logs === controller) {
        state.logs = null;
        $("logs-state").textContent = "The log has ended.";
      }
    },
    (err) => {
      if (isAbort(err)) return;
      if (state.logs === controller) state.logs = null;
      $("logs-state").textContent = `Cannot follow the log: ${err.message}`;
    },
  );
}

export function stopLogs() {
  if (state.logs) {
    state.logs.abort();
    state.logs = null;
    $("logs-state").textContent = "Not following.";
  }
}

// Preview -------------------------------------------------------------------

export function loadPreview() {
  const app = currentApp();
  const url = app && app.status === "running" && app.url ? safeAppUrl(app.url) : null;
  const frame = $("preview");
  if (!url) {
    resetPreview();
    $("preview-note").textContent = "Run the app to preview it here.";
    return;
  }
  $("preview-note").replaceChildren(
    "The app at ",
    el("a", { href: url, target: "_blank", rel: "noopener noreferrer", textContent: url }),
    " (opens in a new tab).",
  );
  if (frame.getAttribute("src") !== url) frame.src = url;
  show(frame, true);
}

/** A fresh frame, so a hidden preview does not keep the app's page loaded. */
export function resetPreview() {
  const frame = $("preview");
  if (!frame.getAttribute("src")) return;
  const fresh = frame.cloneNode(false);
  fresh.removeAttribute("src");
  fresh.hidden = true;
  frame.replaceWith(fresh);
}

// Tabs ----------------------------------------------------------------------

export const TABS = ["files", "change", "history", "logs", "preview", "settings"];

/** Shows the panel `name` alone; the log follow and the preview stop when
 * their panel is left. */
export function showTab(name) {
  const leaving = state.tab;
  state.tab = name;
  for (const t of TABS) {
    const tab = $(`tab-${t}`);
    tab.setAttribute("aria-selected", String(t === name));
    tab.tabIndex = t === name ? 0 : -1;
    show($(`panel-${t}`), t === name);
  }
  if (leaving === "logs" && name !== "logs") stopLogs();
  if (leaving === "preview" && name !== "preview") resetPreview();
}
