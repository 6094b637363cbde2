// appforge's dashboard: one page, hash routes, the daemon's protocol over
// `POST /api/KEY/call`. This module wires the page and starts it; the
// others each hold one part of it.
//
// Safety rules kept throughout: every piece of text that comes from the
// daemon, a project or a model is put on the page with textContent or
// createElement, never as HTML; no inline script or style (the page's
// Content-Security-Policy forbids both).

import { $, show } from "./dom.js";
import { call, codeIs, storeToken, storedToken, takeLinkToken, unpack, whenSessionEnds } from "./api.js";
import { renderUser, signOut, signedOut } from "./account.js";
import { appsChanged, startAppsTimer } from "./apps.js";
import { onEvent, startEvents, stopEvents } from "./events.js";
import { clearAlert, clearError, fail } from "./feedback.js";
import { mountChecks } from "./forms.js";
import { appAction, deleteProject, downloadExport, selectTab, tabKeys } from "./project.js";
import { change } from "./project-change.js";
import { deleteFile, saveEdit } from "./project-edit.js";
import { endEdit, startEdit, startNewFile } from "./project-files.js";
import { projectChanged, reloadNewest, renderAppState } from "./project-load.js";
import { TABS } from "./project-panels.js";
import { refreshSettings, saveSetting, secretChanged } from "./project-settings.js";
import { generate, loadProjects, projectAppsChanged, projectsChanged, saveGeneration } from "./projects.js";
import { route } from "./router.js";
import { state } from "./state.js";

whenSessionEnds(signedOut);

// The page's one event stream: what it shows of the apps follows them,
// whoever changed them.
onEvent("apps", ({ apps }) => {
  state.ps = apps || [];
  if (state.detail && !$("view-project").hidden) {
    renderAppState();
    if (state.tab === "settings") refreshSettings();
  }
  projectAppsChanged();
  appsChanged();
});
onEvent("projects", () => {
  projectsChanged();
  projectChanged();
  // Settings changed elsewhere (the CLI) show on an open Settings tab.
  if (state.detail && !$("view-project").hidden && state.tab === "settings") refreshSettings();
});
onEvent("signed-out", ({ message }) => {
  stopEvents();
  signedOut(message);
});

function wire() {
  for (const slot of document.querySelectorAll("[data-checks]")) mountChecks(slot);
  $("alert-close").addEventListener("click", clearAlert);
  $("signout").addEventListener("click", signOut);
  $("gen-form").addEventListener("submit", generate);
  $("gen-save-form").addEventListener("submit", saveGeneration);
  $("list-refresh").addEventListener("click", loadProjects);
  $("gen-dismiss").addEventListener("click", () => {
    show($("gen-progress"), false);
    $("gen-prompt").focus();
  });
  $("file-edit").addEventListener("click", startEdit);
  $("file-delete").addEventListener("click", deleteFile);
  $("new-file-form").addEventListener("submit", startNewFile);
  $("new-file-path").addEventListener("input", () => clearError($("new-file-error")));
  $("edit-form").addEventListener("submit", saveEdit);
  $("edit-cancel").addEventListener("click", endEdit);
  $("edit-reload").addEventListener("click", reloadNewest);
  $("improve-form").addEventListener("submit", (e) => change("Improve", e));
  $("fix-form").addEventListener("submit", (e) => change("Fix", e));
  $("app-run").addEventListener("click", () => appAction("Run"));
  $("app-stop").addEventListener("click", () => appAction("Stop"));
  $("app-restart").addEventListener("click", () => appAction("Restart"));
  $("app-fix").addEventListener("click", () => {
    selectTab("change");
    change("Fix", null);
  });
  $("project-delete").addEventListener("click", deleteProject);
  $("settings-form").addEventListener("submit", saveSetting);
  $("setting-secret").addEventListener("change", secretChanged);
  $("export-zip").addEventListener("click", () => downloadExport("Zip"));
  $("export-tgz").addEventListener("click", () => downloadExport("TarGz"));
  $("logs-clear").addEventListener("click", () => {
    $("logs-view").textContent = "";
    $("logs-view").dataset.size = "0";
  });
  for (const t of TABS) $(`tab-${t}`).addEventListener("click", () => selectTab(t));
  document.querySelector(".tabs").addEventListener("keydown", tabKeys);
  window.addEventListener("hashchange", route);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && location.hash === "#/apps" && !state.appsTimer) startAppsTimer();
  });
  // Edits in the editor are not lost to a stray key or a closed tab.
  window.addEventListener("beforeunload", (e) => {
    if (!$("edit-form").hidden || state.busy > 0) e.preventDefault();
  });
  selectTab("files", { load: false });
}

async function start() {
  takeLinkToken();
  wire();
  // Without a token from a sign-in link the page is signed out: no request
  // could be answered.
  if (storedToken()) {
    try {
      const reply = await call("Whoami");
      const user = unpack(reply, "User");
      state.user = { email: user.email };
    } catch (err) {
      if (codeIs(err, "unauthenticated")) storeToken("");
      else fail(err);
      state.user = null;
    }
  }
  renderUser();
  if (state.user) startEvents();
  await route();
}

document.addEventListener("DOMContentLoaded", start);
