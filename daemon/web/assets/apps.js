// The running apps page: the caller's apps, as the page's event stream
// tells them (state changes show at once), and their usage in the last
// hour, read again once a minute while the page is open and visible (the
// daemon samples usage once a minute).

import { $, el, show } from "./dom.js";
import { call, codeIs, unpack } from "./api.js";
import { chart } from "./charts.js";
import { fail } from "./feedback.js";
import { badge, fmtBytes, fmtDuration, fmtPercent, plural, safeAppUrl } from "./format.js";
import { state } from "./state.js";

const USAGE_EVERY_MS = 60_000;

export function startAppsTimer() {
  stopAppsTimer();
  const tick = async () => {
    state.appsTimer = null;
    if (location.hash !== "#/apps") return;
    if (document.visibilityState === "visible") await refreshApps();
    if (location.hash === "#/apps" && !state.appsTimer) state.appsTimer = setTimeout(tick, USAGE_EVERY_MS);
  };
  tick();
}

export function stopAppsTimer() {
  if (state.appsTimer) clearTimeout(state.appsTimer);
  state.appsTimer = null;
}

/** The event stream's news: the table shows it at once, the usage follows. */
export function appsChanged() {
  if (location.hash !== "#/apps") return;
  renderApps(state.ps);
  refreshApps();
}

async function refreshApps() {
  if (state.appsLoading) return;
  state.appsLoading = true;
  try {
    const [psReply, usage] = await Promise.all([
      call("Ps"),
      call("Usage").then(
        (r) => ({ series: unpack(r, "Usage") }),
        (err) => ({ error: err }),
      ),
    ]);
    state.ps = unpack(psReply, "Processes");
    renderApps(state.ps);
    renderUsage(usage);
  } catch (err) {
    if (!codeIs(err, "unauthenticated")) fail(err);
  } finally {
    state.appsLoading = false;
  }
}

function renderApps(apps) {
  const rows = $("apps-rows");
  rows.replaceChildren();
  show($("apps-empty"), apps.length === 0);
  show($("apps-table"), apps.length > 0);
  $("apps-updated").replaceChildren(
    `${plural(apps.length, "app")} supervised · updated `,
    el("time", { textContent: new Date().toLocaleTimeString(), attrs: { datetime: new Date().toISOString() } }),
  );
  const cell = (label, ...children) => el("td", { attrs: { "data-label": label } }, ...children);
  for (const a of apps) {
    const url = a.url ? safeAppUrl(a.url) : null;
    const version = a.version ? `v${a.version}${a.newer_version ? ` (v${a.newer_version} newer)` : ""}` : "–";
    rows.append(
      el(
        "tr",
        { attrs: { "data-testid": "app-row", "data-project-id": a.project_id } },
        el("th", { scope: "row" }, el("a", { href: `#/projects/${a.project_id}`, textContent: a.name })),
        cell(
          "Status",
          badge(a.status, a.status),
          // A failed app's hint is the CLI's (`appforge fix`): its page has the Fix button.
          a.status === "failed"
            ? el("div", {}, el("a", { href: `#/projects/${a.project_id}`, textContent: "Fix it on its page" }))
            : a.hint
              ? el("div", { className: "hint", textContent: a.hint })
              : null,
          a.last_exit && a.status !== "running" ? el("div", { className: "muted", textContent: `last exit: ${a.last_exit}` }) : null,
          ...(a.missing_settings || []).map((name) =>
            el("div", { className: "missing-setting", textContent: `missing setting: ${name}`, attrs: { "data-testid": "app-missing-setting" } }),
          ),
        ),
        cell("Version", version),
        cell("Restarts", String(a.restarts)),
        cell("Uptime", fmtDuration(a.uptime_s)),
        cell("CPU", fmtPercent(a.cpu_percent)),
        cell("Memory", fmtBytes(a.rss_bytes)),
        cell("Address", url ? el("a", { href: url, target: "_blank", rel: "noopener noreferrer", textContent: new URL(url).host }) : "–"),
      ),
    );
  }
}

function renderUsage(usage) {
  const box = $("usage");
  if (usage.error) {
    $("usage-note").textContent = `Usage history is not available: ${usage.error.message}`;
    box.replaceChildren();
    return;
  }
  const series = usage.series || [];
  $("usage-note").textContent = series.length
    ? "CPU and memory of each app, one sample a minute and one of now."
    : "No usage yet: none of your apps runs.";
  box.replaceChildren(
    ...series.map((s) =>
      el(
        "figure",
        { className: "usagecard", attrs: { "data-testid": "usage-card", "data-project-id": s.project_id } },
        el("figcaption", {}, el("a", { href: `#/projects/${s.project_id}`, textContent: s.name })),
        el(
          "div",
          { className: "charts" },
          chart(s.samples, "cpu_percent", "CPU", fmtPercent, "cpu"),
          chart(s.samples, "rss_bytes", "Memory", fmtBytes, "mem"),
        ),
      ),
    ),
  );
}
