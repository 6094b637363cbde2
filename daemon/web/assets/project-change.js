// Improving or fixing the project with a model: a new version.

import { $, show } from "./dom.js";
import { call, unpack } from "./api.js";
import { setStatus, showAlert, work } from "./feedback.js";
import { optional, readChecks } from "./forms.js";
import { loadProject } from "./project-load.js";
import { progressView, renderGenerated } from "./progress.js";
import { ref } from "./state.js";

export async function change(kind, event) {
  event.preventDefault();
  const prompt = kind === "Improve" ? $("improve-prompt").value.trim() : optional($("fix-prompt").value);
  if (kind === "Improve" && !prompt) {
    showAlert("Say what to change first.");
    return;
  }
  show($("change-progress"), true);
  $("change-outcome").replaceChildren();
  const progress = progressView(document.querySelector('[data-progress="change"]'));
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
    progress.done("Done.");
    renderGenerated($("change-outcome"), g);
    await loadProject();
    setStatus(g.project ? `Saved version ${g.project.version}.` : "Done.");
  });
  if (!finished) progress.done("Failed: see the message above.");
}
