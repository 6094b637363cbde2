// The project page: opening a project, its tabs, running its app,
// exporting and deleting it.

import { $, el, show } from "./dom.js";
import { ApiError, apiUrl, call, codeIs, headers, unpack } from "./api.js";
import { signedOut } from "./account.js";
import { clearError, setStatus, work } from "./feedback.js";
import { fmtBytes } from "./format.js";
import { loadHistory } from "./project-history.js";
import { loadProject, renderAppState } from "./project-load.js";
import { TABS, loadPreview, showTab, startLogs } from "./project-panels.js";
import { loadSettings } from "./project-settings.js";
import { ref, state } from "./state.js";

export async function openProject(id, { version = null } = {}) {
  if (state.projectId !== id) {
    state.projectId = id;
    state.detail = null;
    state.file = null;
    state.history = [];
    $("logs-view").textContent = "";
    $("settings-rows").replaceChildren();
    $("settings-missing").replaceChildren();
    for (const old of document.querySelectorAll('[data-testid="edit-outcome"]')) old.remove();
    for (const box of document.querySelectorAll("#view-project .fielderror")) clearError(box);
    show($("diff-box"), false);
    show($("change-progress"), false);
    $("project-title").textContent = `Project ${id}`;
    selectTab("files", { load: false });
  }
  await work("Loading the project", async () => {
    await loadProject(version);
    setStatus(`Project ${state.detail.summary.name}, version ${state.detail.version}.`);
  });
  await enterTab(state.tab);
}

/** Shows the panel `name` and, with `load`, loads what it shows. */
export function selectTab(name, { load = true } = {}) {
  showTab(name);
  if (load && state.detail) enterTab(name);
}

async function enterTab(name) {
  if (!state.detail) return;
  if (name === "history") {
    await work("Loading the history", async () => {
      await loadHistory();
    });
  } else if (name === "logs") {
    if (!state.logs) startLogs();
  } else if (name === "preview") {
    loadPreview();
  } else if (name === "settings") {
    await loadSettings();
  }
}

export function tabKeys(event) {
  const i = TABS.indexOf(state.tab);
  let next = null;
  if (event.key === "ArrowRight") next = TABS[(i + 1) % TABS.length];
  else if (event.key === "ArrowLeft") next = TABS[(i + TABS.length - 1) % TABS.length];
  else if (event.key === "Home") next = TABS[0];
  else if (event.key === "End") next = TABS[TABS.length - 1];
  if (!next) return;
  event.preventDefault();
  selectTab(next);
  $(`tab-${next}`).focus();
}

export async function appAction(kind) {
  const label = { Run: "Starting the app", Stop: "Stopping the app", Restart: "Restarting the app" }[kind];
  const request =
    kind === "Run"
      ? { Run: { project: ref(), port: null } }
      : kind === "Stop"
        ? { Stop: { project: ref(), all: false } }
        : { Restart: { project: ref() } };
  await work(label, async (step) => {
    let reply;
    try {
      reply = await call(request, { onProgress: (p) => p.Step && step(p.Step) });
    } catch (err) {
      // An app that did not come up: the box below shows the end of its
      // log and the Fix button, so its first line is enough here (the rest
      // is the log, and the CLI's `appforge fix`).
      if (codeIs(err, "app-failed")) throw new ApiError(err.code, err.message.split("\n--- ")[0], err.status);
      throw err;
    }
    const [kindOf] = Object.keys(reply);
    state.ps = unpack(await call("Ps"), "Processes");
    renderAppState();
    if (kindOf === "Running") setStatus(`Running at ${reply.Running.url || "its port"}.`);
    else setStatus("Stopped.");
  }, { errorBox: $("app-error") });
  if (state.tab === "logs" && !state.logs) startLogs();
}

/** Downloads the project's archive (`POST /api/KEY/export`) as a file. */
export async function downloadExport(format) {
  const name = state.detail ? state.detail.summary.name : ref();
  await work(`Exporting ${name}`, async () => {
    let response;
    try {
      response = await fetch(apiUrl("export"), {
        method: "POST",
        headers: headers({ "Content-Type": "application/json" }),
        body: JSON.stringify({ project: ref(), format }),
        credentials: "same-origin",
        cache: "no-store",
      });
    } catch {
      throw new ApiError("network", "The daemon could not be reached. Is appforged still running?");
    }
    if (!response.ok) {
      let error = null;
      try {
        error = (await response.json()).error;
      } catch {
        // not JSON: the status says enough
      }
      const err = new ApiError((error && error.code) || "internal", (error && error.message) || `The export failed (HTTP ${response.status}).`);
      if (codeIs(err, "unauthenticated")) signedOut(err.message);
      throw err;
    }
    const blob = await response.blob();
    const disposition = response.headers.get("Content-Disposition") || "";
    const match = disposition.match(/filename="([^"]+)"/);
    const file = match ? match[1] : `${name}.${format === "Zip" ? "zip" : "tar.gz"}`;
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: file, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    setStatus(`Downloaded ${file} (${fmtBytes(blob.size)}).`);
  }, { errorBox: $("app-error") });
}

export async function deleteProject() {
  const name = state.detail ? state.detail.summary.name : ref();
  if (!confirm(`Delete the project “${name}” with all its versions? This cannot be undone.`)) return;
  await work(`Deleting ${name}`, async () => {
    unpack(await call({ DeleteProject: { project: ref() } }), "Deleted");
    state.projectId = null;
    location.hash = "#/";
    setStatus(`Deleted ${name}.`);
  }, { errorBox: $("app-error") });
}
