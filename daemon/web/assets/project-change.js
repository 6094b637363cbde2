// Improving or fixing the project with a model: a new version.

import { $, show } from "./dom.js";
import { call, unpack } from "./api.js";
import { clearError, setStatus, showError, work } from "./feedback.js";
import { optional, readChecks } from "./forms.js";
import { loadProject } from "./project-load.js";
import { progressView, renderGenerated, sourceName } from "./progress.js";
import { ref } from "./state.js";

export async function change(kind, event) {
  if (event) event.preventDefault();
  const prompt = kind === "Improve" ? $("improve-prompt").value.trim() : optional($("fix-prompt").value);
  clearError($("change-error"));
  if (kind === "Improve" && !prompt) {
    showError($("change-error"), "Say what to change first.");
    $("improve-prompt").focus();
    return;
  }
  show($("change-progress"), true);
  $("change-outcome").replaceChildren();
  const progress = progressView(document.querySelector('[data-progress="change"]'), sourceName($("change-provider").value));
  let finished = false;
  await work(kind === "Improve" ? "Improving" : "Fixing", async (step) => {
    const args = {
      project: ref(),
      prompt,
      provider: optional($("change-provider").value),
      model: optional($("change-model").value),
      checks: readChecks("proj"),
    };
    const reply = await call({ [kind]: args }, { onProgress: (p) => progress.onProgress(p, step) });
    const g = unpack(reply, "Generated");
    finished = true;
    progress.source(sourceName(g.provider));
    progress.done(g.project ? `Done: saved as version ${g.project.version}.` : "Done.");
    renderGenerated($("change-outcome"), g);
    await loadProject();
    setStatus(g.project ? `Saved version ${g.project.version}.` : "Done.");
  }, { errorBox: $("change-error") });
  if (!finished) progress.done("Failed: see the message above.");
}
