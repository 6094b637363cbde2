// Reading the shown project (its newest version or an older one) and the
// apps, and drawing its title, version and app bar.

import { $, el, show } from "./dom.js";
import { call, codeIs, unpack } from "./api.js";
import { setOff, showAlert, work } from "./feedback.js";
import { badge, checkBadge, plural, safeAppUrl } from "./format.js";
import { logEntries } from "./logs.js";
import { terminal } from "./terminal.js";
import { endEdit, renderFiles } from "./project-files.js";
import { loadHistory } from "./project-history.js";
import { loadPreview, showTab } from "./project-panels.js";
import { currentApp, ref, state } from "./state.js";

/** Reads the project (newest or `version`) and the apps, and draws them. */
export async function loadProject(version = null) {
  const [detailReply, psReply] = await Promise.all([
    call({ ShowProject: { project: ref(), version, file: null } }),
    call("Ps"),
  ]);
  const detail = unpack(detailReply, "Project");
  state.ps = unpack(psReply, "Processes");
  state.detail = detail;
  state.newest = detail.summary.version;
  endEdit();
  renderProjectHead();
  renderVersion();
  renderFiles();
  renderAppState();
}

function renderProjectHead() {
  const d = state.detail;
  document.title = `${d.summary.name} · appforge`;
  $("project-title").textContent = d.summary.name;
  $("project-prompt").textContent = d.prompt;
  $("project-badges").replaceChildren(badge(`v${d.summary.version}`, "version"), checkBadge(d.summary.check_status));
}

export function renderAppState() {
  const app = currentApp();
  const live = app && ["running", "starting", "backoff"].includes(app.status);
  const failed = Boolean(app) && app.status === "failed";
  const bits = [];
  if (app) {
    bits.push(badge(app.status, app.status));
    if (app.pid && live) bits.push(` pid ${app.pid}`);
    if (app.version) bits.push(` · runs v${app.version}`);
    if (app.newer_version) bits.push(` (v${app.newer_version} is newer: restart to run it)`);
    if (app.restarts) bits.push(` · ${plural(app.restarts, "restart")}`);
    if (app.last_exit && !live && !failed) bits.push(` · last exit: ${app.last_exit}`);
    for (const name of app.missing_settings || []) {
      bits.push(" · ", el("span", { className: "missing-setting", textContent: `missing setting: ${name}`, data: { testid: "app-missing-setting" } }));
    }
    // A failed app's hint is the CLI's (`appforge fix`): here the Fix button says it.
    if (app.hint && !failed) bits.push(el("span", { className: "hint", textContent: ` ${app.hint}` }));
  } else {
    bits.push(badge("not running", "stopped"));
  }
  $("app-state").replaceChildren(...bits);
  renderFailure(failed ? app : null);
  const url = live && app.url ? safeAppUrl(app.url) : null;
  const link = $("app-url");
  if (url) {
    link.href = url;
    link.textContent = url;
  } else {
    link.removeAttribute("href");
    link.textContent = "";
  }
  show(link, Boolean(url));
  setOff($("app-run"), live);
  setOff($("app-stop"), !live);
  setOff($("app-restart"), !app);
  if (state.tab === "preview") loadPreview();
}

/** Which failure the box shows, so that the log is read once per failure. */
let failureShown = null;

/** The failed app's box: how it ended, the end of its log (its traceback),
 * and the Fix button; hidden while the app has not failed. */
function renderFailure(app) {
  const box = $("app-failure");
  if (!app) {
    failureShown = null;
    show(box, false);
    return;
  }
  $("app-failure-why").textContent = app.last_exit ? `: ${app.last_exit}.` : ".";
  show(box, true);
  const key = `${app.project_id}/${app.restarts}/${app.last_exit || ""}`;
  if (failureShown === key) return;
  failureShown = key;
  // Not another failure's log meanwhile.
  $("app-failure-log").replaceChildren();
  show($("app-failure-log"), false);
  readFailureLog(app.project_id, key);
}

/** Lines of the log read for a failed app; the traceback is within them. */
const FAILURE_LINES = 60;

async function readFailureLog(projectId, key) {
  const view = $("app-failure-log");
  const entries = [];
  try {
    await call(
      { Logs: { project: String(projectId), lines: FAILURE_LINES, follow: false } },
      { onProgress: (p) => entries.push(...logEntries(p)) },
    );
  } catch {
    // The log is a help, not the failure: the box says how it ended.
    return;
  }
  if (failureShown !== key) return;
  const text = entries.map((e) => (typeof e === "string" ? e : e.text)).join("");
  // From its last traceback, when it has one: that is the error.
  const at = text.lastIndexOf("Traceback (most recent call last)");
  const shown = at >= 0 ? text.slice(at) : text.split("\n").slice(-15).join("\n");
  const term = terminal();
  view.replaceChildren(...term.render(shown.trimEnd()));
  show(view, shown.trim().length > 0);
  // The error itself is the traceback's last line.
  view.scrollTop = view.scrollHeight;
}

/** The event stream's news that projects changed (here or elsewhere, the
 * CLI included): a newer version is shown, unless the editor is open or
 * an older version is being read, which are told of it instead; a project
 * deleted elsewhere leaves the page. */
export async function projectChanged() {
  if ($("view-project").hidden || !state.detail) return;
  const id = state.projectId;
  let newest;
  try {
    newest = unpack(await call({ ShowProject: { project: ref(), version: null, file: null } }), "Project");
  } catch (err) {
    if (state.projectId === id && codeIs(err, "not-found")) {
      const name = state.detail.summary.name;
      state.projectId = null;
      location.hash = "#/";
      showAlert(`The project ${name} was deleted elsewhere.`);
    }
    return;
  }
  if (state.projectId !== id || newest.summary.version === state.newest) return;
  const reading = state.detail.version !== state.newest;
  const editing = !$("edit-form").hidden;
  if (reading || editing || state.busy > 0) {
    state.newest = newest.summary.version;
    renderVersion();
    if (editing) show($("edit-reload"), true);
    return;
  }
  await loadProject();
  if (state.tab === "history") await loadHistory();
}

/** Which version is shown; an older one links to the newest. */
function renderVersion() {
  const d = state.detail;
  const old = d.version !== state.newest;
  $("files-version").replaceChildren(
    old ? el("strong", { textContent: `Version ${d.version} (newest is ${state.newest}). ` }) : `Version ${d.version}. `,
    old ? el("button", { type: "button", className: "link", textContent: "Show the newest", onclick: () => showVersion(null) }) : "",
  );
}

export async function reloadNewest() {
  await work("Loading the newest version", async () => {
    await loadProject();
  });
}

export async function showVersion(version) {
  await work(version ? `Loading version ${version}` : "Loading the newest version", async () => {
    await loadProject(version);
    showTab("files");
  });
}
