// Hash routes: which view shows, and what leaving one stops.

import { $, show } from "./dom.js";
import { startAppsTimer, stopAppsTimer } from "./apps.js";
import { setStatus } from "./feedback.js";
import { openProject } from "./project.js";
import { resetPreview, stopLogs } from "./project-panels.js";
import { loadProjects } from "./projects.js";
import { state } from "./state.js";

const VIEWS = ["signin", "projects", "project", "apps"];

function showView(name) {
  for (const v of VIEWS) show($(`view-${v}`), v === name);
  for (const link of document.querySelectorAll("#nav a")) {
    const current =
      (name === "projects" && link.id === "nav-projects") || (name === "apps" && link.id === "nav-apps");
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function leaveViews() {
  stopLogs();
  stopAppsTimer();
  resetPreview();
}

let firstRoute = true;

export async function route() {
  leaveViews();
  const hash = location.hash || "#/";
  if (!state.user) {
    if (hash !== "#/signin") {
      state.wanted = hash;
      location.replace("#/signin");
      return;
    }
    document.title = "Sign in · appforge";
    showView("signin");
    setStatus("Not signed in: run `appforge dashboard` in a terminal.");
    focusView();
    return;
  }
  const project = hash.match(/^#\/projects\/(\d+)$/);
  if (hash === "#/signin") {
    location.replace(state.wanted && state.wanted !== "#/signin" ? state.wanted : "#/");
  } else if (hash === "#/" || hash === "#" || hash === "") {
    document.title = "Projects · appforge";
    showView("projects");
    focusView();
    await loadProjects();
  } else if (hash === "#/apps") {
    document.title = "Running apps · appforge";
    showView("apps");
    focusView();
    startAppsTimer();
  } else if (project) {
    showView("project");
    focusView();
    await openProject(Number(project[1]));
  } else {
    location.replace("#/");
  }
}

function focusView(id) {
  if (firstRoute) {
    firstRoute = false;
    if (id) $(id).focus();
    return;
  }
  window.scrollTo(0, 0);
  (id ? $(id) : $("main")).focus({ preventScroll: true });
}
