// Live progress of long requests (generate, improve, fix, edit, run…), and
// the outcome of the ones that save versions.

import { el, show } from "./dom.js";
import { checkBadge, plural } from "./format.js";
import { appendLog, logEntries } from "./logs.js";
import { terminal } from "./terminal.js";

/** Live progress in `container`. `source` names where streamed text comes
 * from: "Model output" for a model, something else for the offline
 * scaffolder, which is no model. */
export function progressView(container, source = "Model output") {
  const current = el("p", { className: "current", textContent: "Starting…" });
  const steps = el("ol", { className: "steps", attrs: { "data-testid": "progress-steps" } });
  const textLabel = el("p", { className: "muted", textContent: source });
  const text = el("pre", {
    className: "modeltext",
    tabIndex: 0,
    attrs: { "aria-label": source, "data-testid": "model-text" },
  });
  const logs = el("pre", { className: "logs small", tabIndex: 0, attrs: { "aria-label": "Log lines" } });
  show(textLabel, false);
  show(text, false);
  show(logs, false);
  container.replaceChildren(current, steps, textLabel, text, logs);
  let received = 0;
  let stepText = "Starting";
  let textTerm = terminal();
  const logTerm = terminal();
  const follow = (pre) => {
    pre.scrollTop = pre.scrollHeight;
  };
  return {
    onProgress(p, statusStep) {
      const [kind] = Object.keys(p || {});
      const value = p[kind];
      if (kind === "Step") {
        stepText = value;
        received = 0;
        current.textContent = value;
        steps.append(el("li", { textContent: value }));
        if (statusStep) statusStep(value);
      } else if (kind === "Text") {
        received += value.length;
        show(textLabel, true);
        show(text, true);
        text.classList.remove("stale");
        text.append(...textTerm.render(value, false));
        current.textContent = `${stepText}: ${received} characters received`;
        follow(text);
      } else if (kind === "Restart") {
        steps.append(el("li", { className: "restart", textContent: `↻ ${value}` }));
        text.replaceChildren();
        textTerm = terminal();
        text.classList.add("stale");
        received = 0;
        current.textContent = `Starting again: ${value}`;
        if (statusStep) statusStep(`starting again: ${value}`);
      } else if (kind === "Log" || kind === "LogLines") {
        show(logs, true);
        for (const entry of logEntries(p)) appendLog(logs, logTerm, entry);
        follow(logs);
      }
    },
    done(message) {
      current.textContent = message;
    },
    /** Names the streamed text's source, once the reply has said it. */
    source(name) {
      textLabel.textContent = name;
      text.setAttribute("aria-label", name);
    },
  };
}

/** The checks, mends and repair rounds of a Generated or SavedVersion reply. */
function checksBlock(status, checks) {
  const list = el("ul", { className: "checklist" });
  for (const c of checks || []) {
    list.append(
      el(
        "li",
        { className: c.passed ? "pass" : "fail" },
        el("span", { className: "mark", textContent: c.passed ? "✓" : "✗", attrs: { "aria-hidden": "true" } }),
        ` ${c.step} ${c.passed ? "passed" : "FAILED"} `,
        el("span", { className: "muted", textContent: `(${c.millis} ms)` }),
      ),
    );
  }
  const note =
    status === "skipped"
      ? "Checks skipped: the app has not been run."
      : status === "failed"
        ? "Checks failed; the version was kept anyway (keep-broken)."
        : "";
  return el("div", { className: "checkblock" }, checkBadge(status), note ? el("span", { textContent: ` ${note}` }) : null, list);
}

/** What streamed text is called, by the provider that wrote it: the
 * offline scaffolder is no model. */
export function sourceName(provider) {
  if (provider === "template") return "Scaffolder output";
  return provider ? "Model output" : "Output";
}

export function renderGenerated(box, g) {
  const secs = (g.duration_ms / 1000).toFixed(1);
  const from = g.provider === "template" ? "the offline scaffolder" : `${g.provider} (${g.model})`;
  let made = `${plural(g.files.length, "file")} from ${from} in ${secs} s`;
  if (g.provider !== "template") made += `, ${plural(g.tokens_used, "token")}`;
  if (g.repair_rounds > 0) made += `, ${plural(g.repair_rounds, "repair round")}`;
  const parts = [el("p", { className: "summary", textContent: made })];
  if (g.understood) parts.push(el("p", { attrs: { "data-testid": "understood" }, textContent: `Understood: ${g.understood}.` }));
  // Code that did not change was not run again: the notes below say so.
  if (!g.unchanged && !g.docs_only) parts.push(checksBlock(g.check_status, g.checks));
  if (g.mends && g.mends.length) {
    parts.push(
      el("p", { className: "muted", textContent: "Mended without a model round:" }),
      el("ul", { className: "mends" }, g.mends.map((m) => el("li", { textContent: m }))),
    );
  }
  if (g.deleted && g.deleted.length) {
    parts.push(
      el("p", { className: "muted", textContent: "Deleted, as the model asked:" }),
      el("ul", { className: "mends", attrs: { "data-testid": "deleted" } }, g.deleted.map((p) => el("li", { textContent: p }))),
    );
  }
  if (g.project && g.unchanged) {
    parts.push(
      el(
        "p",
        { attrs: { "data-testid": "unchanged" } },
        "No change: ",
        el("a", { href: `#/projects/${g.project.project_id}`, textContent: g.project.name }),
        ` version ${g.project.version} already has this; nothing was saved or restarted.`,
      ),
    );
  } else if (g.project) {
    parts.push(
      el(
        "p",
        { attrs: { "data-testid": "saved-as" } },
        "Saved as ",
        el("a", { href: `#/projects/${g.project.project_id}`, textContent: g.project.name }),
        ` (version ${g.project.version}).`,
      ),
    );
  }
  if (g.restarted) parts.push(el("p", { textContent: "The running app was restarted on the new version." }));
  if (g.docs_only) parts.push(el("p", { textContent: "Only documentation changed: the app was not run again or restarted." }));
  box.replaceChildren(...parts);
}

export function renderSaved(box, s) {
  const parts = [];
  if (!s.saved) {
    parts.push(el("p", { textContent: `Nothing changed: still version ${s.version}.` }));
  } else {
    parts.push(el("p", { className: "summary", textContent: `Saved version ${s.version}; changed: ${s.changed.join(", ") || "nothing"}.` }));
    if (s.docs_only) {
      parts.push(el("p", { textContent: "Only documentation changed: the app was not run again or restarted." }));
    } else {
      parts.push(checksBlock(s.check_status, s.checks));
    }
    if (s.restarted) parts.push(el("p", { textContent: "The running app was restarted on the new version." }));
  }
  box.replaceChildren(...parts);
}
