// The project's history: its versions, the diff of one, and rolling back.

import { $, el, show } from "./dom.js";
import { call, unpack } from "./api.js";
import { applyDisabled, setStatus, work } from "./feedback.js";
import { checkBadge, timeEl } from "./format.js";
import { readChecks } from "./forms.js";
import { renderDiff } from "./highlight.js";
import { loadProject, showVersion } from "./project-load.js";
import { showTab } from "./project-panels.js";
import { ref, state } from "./state.js";

export async function loadHistory() {
  const reply = await call({ History: { project: ref() } });
  state.history = unpack(reply, "History");
  renderHistory();
}

function renderHistory() {
  const rows = $("history-rows");
  rows.replaceChildren();
  const newest = state.history.length ? state.history[state.history.length - 1].version : 0;
  for (const v of [...state.history].reverse()) {
    const actions = el("td", { className: "actions" });
    if (v.version > 1) {
      actions.append(
        el("button", {
          type: "button",
          className: "act small",
          textContent: "Diff",
          attrs: { "data-testid": "history-diff", "aria-label": `Diff of version ${v.version}` },
          onclick: () => showDiffOf(v.version),
        }),
      );
    }
    actions.append(
      el("button", {
        type: "button",
        className: "act small",
        textContent: "View",
        attrs: { "aria-label": `Files of version ${v.version}` },
        onclick: () => showVersion(v.version === newest ? null : v.version),
      }),
    );
    if (v.version !== newest) {
      actions.append(
        el("button", {
          type: "button",
          className: "act small",
          textContent: "Roll back",
          attrs: { "data-testid": "history-rollback", "aria-label": `Roll back to version ${v.version}` },
          onclick: () => rollback(v.version),
        }),
      );
    }
    rows.append(
      el(
        "tr",
        { attrs: { "data-testid": "history-row", "data-version": v.version } },
        el("th", { scope: "row", textContent: `v${v.version}` }),
        el("td", { textContent: v.kind, attrs: { "data-label": "Kind" } }),
        el("td", { className: "clip", textContent: v.prompt, title: v.prompt, attrs: { "data-label": "What" } }),
        el("td", { attrs: { "data-label": "Checks" } }, checkBadge(v.check_status)),
        el("td", { attrs: { "data-label": "Saved" } }, timeEl(v.created_at)),
        actions,
      ),
    );
  }
  applyDisabled();
}

export async function showDiffOf(version) {
  await work(`Diff of version ${version}`, async () => {
    const reply = await call({ Diff: { project: ref(), from: null, to: version } });
    const diff = unpack(reply, "Diff");
    showTab("history");
    if (!state.history.length || state.history[state.history.length - 1].version < version) await loadHistory();
    $("diff-title").textContent = `Version ${diff.from} → ${diff.to}`;
    $("diff-changed").textContent = diff.changed.length ? `Changed: ${diff.changed.join(", ")}` : "No file changed.";
    renderDiff($("diff-view"), diff.unified);
    show($("diff-box"), true);
    $("diff-box").scrollIntoView({ block: "nearest" });
    setStatus(`Diff of version ${diff.from} to ${diff.to}.`);
  }, { errorBox: $("history-error") });
}

async function rollback(version) {
  await work(`Rolling back to version ${version}`, async (step) => {
    const reply = await call(
      { Rollback: { project: ref(), version, checks: readChecks("proj") } },
      { onProgress: (p) => p.Step && step(p.Step) },
    );
    const saved = unpack(reply, "Saved");
    await loadProject();
    await loadHistory();
    setStatus(saved.saved ? `Version ${saved.version} equals version ${version}.` : `Already equal to version ${version}.`);
  }, { errorBox: $("history-error") });
  if (state.history.length) {
    const newest = state.history[state.history.length - 1].version;
    if (newest > version) await showDiffOf(newest);
  }
}
