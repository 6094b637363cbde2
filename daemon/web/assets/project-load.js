// Reading the shown project (its newest version or an older one) and the
// apps, and drawing its title, version and app bar.

import { $, el, show } from "./dom.js";
import { call, unpack } from "./api.js";
import { setOff, work } from "./feedback.js";
import { badge, checkBadge, safeAppUrl } from "./format.js";
import { endEdit, renderFiles } from "./project-files.js";
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
  const bits = [];
  if (app) {
    bits.push(badge(app.status, app.status));
    if (app.pid) bits.push(` pid ${app.pid}`);
    if (app.version) bits.push(` · runs v${app.version}`);
    if (app.newer_version) bits.push(` (v${app.newer_version} is newer: restart to run it)`);
    if (app.restarts) bits.push(` · ${app.restarts} restart(s)`);
    if (app.last_exit && !live) bits.push(` · last exit: ${app.last_exit}`);
    if (app.hint) bits.push(el("span", { className: "hint", textContent: ` ${app.hint}` }));
  } else {
    bits.push(badge("not running", "stopped"));
  }
  $("app-state").replaceChildren(...bits);
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
