// The projects page: the list of projects, and generating a new app.

import { $, el, show } from "./dom.js";
import { call, unpack } from "./api.js";
import { clearError, fail, setStatus, showError, work } from "./feedback.js";
import { badge, checkBadge, fmtBytes, plural, safeAppUrl, timeEl } from "./format.js";
import { optional, readChecks } from "./forms.js";
import { renderCode } from "./highlight.js";
import { progressView, renderGenerated, sourceName } from "./progress.js";
import { state } from "./state.js";

export async function loadProjects() {
  await work("Loading projects", async () => {
    const [projects, processes] = await Promise.all([call("ListProjects"), call("Ps")]);
    state.ps = unpack(processes, "Processes");
    state.projects = unpack(projects, "Projects");
    renderProjects(state.projects);
    setStatus(`${plural(state.projects.length, "project")}.`);
  });
}

/** The event stream's news that projects changed: the list is read again. */
export function projectsChanged() {
  if (!$("view-projects").hidden) refreshListQuietly();
}

/** The event stream's news: the list's App column follows the apps. */
export function projectAppsChanged() {
  if (state.projects && !$("view-projects").hidden) renderProjects(state.projects);
}

function renderProjects(list) {
  const rows = $("project-rows");
  rows.replaceChildren();
  show($("list-empty"), list.length === 0);
  show($("project-table"), list.length > 0);
  for (const p of list) {
    const proc = state.ps.find((a) => a.project_id === p.id);
    const status = proc ? proc.status : p.status;
    const url = proc && proc.url ? safeAppUrl(proc.url) : null;
    rows.append(
      el(
        "tr",
        { attrs: { "data-testid": "project-row", "data-project-id": p.id } },
        el("th", { scope: "row" }, el("a", { href: `#/projects/${p.id}`, textContent: p.name })),
        el("td", { textContent: `v${p.version}`, attrs: { "data-label": "Version" } }),
        el("td", { attrs: { "data-label": "Checks" } }, checkBadge(p.check_status)),
        el(
          "td",
          { attrs: { "data-label": "App" } },
          badge(status, status),
          url ? el("a", { href: url, target: "_blank", rel: "noopener noreferrer", textContent: ` ${new URL(url).host}`, className: "applink" }) : null,
        ),
        el("td", { attrs: { "data-label": "Changed" } }, timeEl(p.last_modified)),
      ),
    );
  }
}

export async function generate(event) {
  event.preventDefault();
  const form = $("gen-form");
  const prompt = $("gen-prompt").value.trim();
  clearError($("gen-error"));
  if (!prompt) {
    showError($("gen-error"), "Describe the app first.");
    $("gen-prompt").focus();
    return;
  }
  show($("gen-progress"), true);
  show($("gen-result"), false);
  show($("gen-save-form"), false);
  show($("gen-saved"), false);
  $("gen-files").replaceChildren();
  const progress = progressView(document.querySelector('[data-progress="gen"]'), sourceName($("gen-provider").value));
  let finished = false;
  await work("Generating", async (step) => {
    const request = {
      Generate: {
        prompt,
        save: $("gen-save").checked,
        name: optional($("gen-name").value),
        provider: optional($("gen-provider").value),
        model: optional($("gen-model").value),
        checks: readChecks("gen"),
      },
    };
    const reply = await call(request, { onProgress: (p) => progress.onProgress(p, step) });
    const g = unpack(reply, "Generated");
    state.lastGeneration = g;
    finished = true;
    progress.source(sourceName(g.provider));
    progress.done(g.project ? `Done: saved as ${g.project.name} (version ${g.project.version}).` : "Done: not saved yet.");
    renderGenerated($("gen-outcome"), g);
    renderGenFiles(g);
    show($("gen-result"), true);
    if (!g.project) {
      $("gen-save-name").value = $("gen-name").value;
      show($("gen-save-form"), true);
      setStatus("Generated; not saved yet.");
    } else {
      setStatus(`Saved as ${g.project.name}, version ${g.project.version}.`);
      await refreshListQuietly();
    }
  }, { errorBox: $("gen-error") });
  if (!finished) progress.done("Failed: see the message beside Generate.");
  form.querySelector("button[type=submit]").focus();
}

function renderGenFiles(g) {
  const box = $("gen-files");
  const viewer = el("div", { className: "code", attrs: { "data-testid": "gen-file-view" } });
  show(viewer, false);
  const chips = g.files.map((f) =>
    el("button", {
      type: "button",
      className: "chip",
      textContent: `${f.path} (${fmtBytes(f.content.length)})`,
      attrs: { "data-path": f.path, "aria-label": `Show ${f.path}` },
      onclick: () => {
        renderCode(viewer, f.path, f.content);
        show(viewer, true);
      },
    }),
  );
  box.replaceChildren(el("div", { className: "row wrap" }, chips), viewer);
}

export async function saveGeneration(event) {
  event.preventDefault();
  const g = state.lastGeneration;
  if (!g) return;
  await work("Saving", async () => {
    const reply = await call({
      SaveGeneration: { generation_id: g.generation_id, name: optional($("gen-save-name").value) },
    });
    const saved = unpack(reply, "Generated");
    show($("gen-save-form"), false);
    const p = saved.project;
    // The progress above said "not saved yet": it says what is true now.
    const current = document.querySelector('[data-progress="gen"] .current');
    if (current) current.textContent = `Done: saved as ${p.name} (version ${p.version}).`;
    $("gen-saved").replaceChildren(
      "Saved as ",
      el("a", { href: `#/projects/${p.project_id}`, textContent: p.name, attrs: { "data-testid": "gen-saved-link" } }),
      ` (version ${p.version}).`,
    );
    show($("gen-saved"), true);
    setStatus(`Saved as ${p.name}.`);
    await refreshListQuietly();
    $("gen-saved").querySelector("a").focus();
  }, { errorBox: $("gen-save-error") });
}

async function refreshListQuietly() {
  try {
    const [projects, processes] = await Promise.all([call("ListProjects"), call("Ps")]);
    state.ps = unpack(processes, "Processes");
    state.projects = unpack(projects, "Projects");
    renderProjects(state.projects);
  } catch (err) {
    fail(err);
  }
}
