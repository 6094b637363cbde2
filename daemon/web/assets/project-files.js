// The project's files: the list, the viewer, and the editor opened on a
// file or on a new one (saving is project-edit.js).

import { $, el, show } from "./dom.js";
import { clearError, showError } from "./feedback.js";
import { renderCode } from "./highlight.js";
import { state } from "./state.js";

export function renderFiles() {
  const d = state.detail;
  // A version loaded: what failed before is past.
  clearError($("new-file-error"));
  clearError($("file-error"));
  const list = $("file-list");
  list.replaceChildren();
  if (!d.files.some((f) => f.path === state.file)) {
    const preferred = d.files.find((f) => f.path === "app.py") || d.files[0];
    state.file = preferred ? preferred.path : null;
  }
  for (const f of d.files) {
    const button = el("button", {
      type: "button",
      className: "file",
      textContent: f.path,
      attrs: { "data-testid": "file", "data-path": f.path, "aria-current": f.path === state.file ? "true" : null },
      onclick: () => selectFile(f.path),
    });
    list.append(el("li", {}, button));
  }
  renderFile();
}

function selectFile(path) {
  if (!$("edit-form").hidden && !confirm("Leave the edit? Your changes to this file are not saved.")) return;
  endEdit();
  state.file = path;
  for (const b of $("file-list").querySelectorAll("button")) {
    if (b.dataset.path === path) b.setAttribute("aria-current", "true");
    else b.removeAttribute("aria-current");
  }
  renderFile();
}

function renderFile() {
  const f = state.detail && state.detail.files.find((x) => x.path === state.file);
  $("file-name").textContent = f ? f.path : "No files";
  if (f) renderCode($("file-view"), f.path, f.content);
  else $("file-view").replaceChildren();
  showFileActions();
}

/** Edit, Delete and New file, for the newest version only: an older one is
 * for reading. */
function showFileActions() {
  const d = state.detail;
  const newest = Boolean(d) && d.version === state.newest;
  const f = newest && d.files.find((x) => x.path === state.file);
  show($("file-edit"), Boolean(f));
  show($("file-delete"), Boolean(f) && d.files.length > 1);
  show($("new-file-form"), newest);
}

export function startEdit() {
  const f = state.detail.files.find((x) => x.path === state.file);
  if (!f) return;
  state.adding = null;
  openEditor(`Edit ${f.path} (starting from version ${state.detail.version})`, f.content);
}

/** Opens the editor on a file the project does not have yet. */
export function startNewFile(event) {
  event.preventDefault();
  const path = $("new-file-path").value.trim();
  if (!path) return;
  if (state.detail.files.some((f) => f.path === path)) {
    showError($("new-file-error"), `The project already has ${path}: choose it in the list to edit it.`);
    return;
  }
  if (!$("edit-form").hidden && !confirm("Leave the edit? Your changes to this file are not saved.")) return;
  clearError($("new-file-error"));
  state.adding = path;
  openEditor(`New file ${path} (on top of version ${state.detail.version})`, "");
}

function openEditor(label, text) {
  $("edit-label").textContent = label;
  $("edit-text").value = text;
  show($("edit-reload"), false);
  show($("file-view"), false);
  show($("file-edit"), false);
  show($("file-delete"), false);
  show($("edit-form"), true);
  $("edit-text").focus();
}

export function endEdit() {
  state.adding = null;
  clearError($("edit-error"));
  show($("edit-form"), false);
  show($("file-view"), true);
  showFileActions();
}
