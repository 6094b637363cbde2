// Saving the editor's text, a new file or a deleted one as a new version of
// the project.

import { $, el, show } from "./dom.js";
import { ApiError, call, codeIs, unpack } from "./api.js";
import { setStatus, work } from "./feedback.js";
import { readChecks } from "./forms.js";
import { showDiffOf } from "./project-history.js";
import { loadProject } from "./project-load.js";
import { renderSaved } from "./progress.js";
import { ref, state } from "./state.js";

export async function saveEdit(event) {
  event.preventDefault();
  const d = state.detail;
  const adding = state.adding;
  const path = adding || state.file;
  const text = $("edit-text").value;
  const files = adding
    ? [...d.files, { path, content: text }]
    : d.files.map((f) => (f.path === path ? { path: f.path, content: text } : f));
  await saveFiles(files, adding ? `Adding ${path}` : `Saving ${path}`, path, $("edit-error"));
  if (adding && state.detail.files.some((f) => f.path === path)) $("new-file-path").value = "";
}

export async function deleteFile() {
  const path = state.file;
  const d = state.detail;
  if (!confirm(`Delete ${path}? A new version is saved without it; earlier versions keep it.`)) return;
  await saveFiles(
    d.files.filter((f) => f.path !== path),
    `Deleting ${path}`,
    null,
    $("file-error"),
  );
}

/** Saves `files` as the project's whole file set, a new version on top of
 * the one shown, and shows `select` (or the preferred file) afterwards. A
 * failure shows in `errorBox`, beside the control that saved; the outcome
 * of an earlier save goes, so that it is not read as this one's. */
async function saveFiles(files, label, select, errorBox) {
  const d = state.detail;
  for (const old of document.querySelectorAll('[data-testid="edit-outcome"]')) old.remove();
  await work(label, async (step) => {
    let reply;
    try {
      reply = await call(
        { EditProject: { project: ref(), base_version: d.version, files, checks: readChecks("proj") } },
        { onProgress: (p) => p.Step && step(p.Step) },
      );
    } catch (err) {
      if (codeIs(err, "conflict")) {
        show($("edit-reload"), true);
        throw new ApiError(
          "conflict",
          `Not saved: the project has changed since version ${d.version}, which this edit started from ` +
            `(${err.message}). Your text is still in the editor: copy what you need, then “Load the newest version” ` +
            "and edit again.",
        );
      }
      throw err;
    }
    const saved = unpack(reply, "Saved");
    state.adding = null;
    if (select) state.file = select;
    await loadProject();
    const box = el("div", { className: "notice", attrs: { "data-testid": "edit-outcome" } });
    renderSaved(box, saved);
    if (saved.saved) {
      box.append(
        el("button", {
          type: "button",
          className: "act",
          textContent: `Show what changed in version ${saved.version}`,
          attrs: { "data-testid": "show-diff" },
          onclick: () => showDiffOf(saved.version),
        }),
      );
    }
    $("file-view").before(box);
    setStatus(saved.saved ? `Saved version ${saved.version}.` : "Nothing changed.");
  }, { errorBox });
}
