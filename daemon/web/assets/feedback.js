// What the page says while it works: the status line (shown while work
// goes on, announced to screen readers always), the busy indicator (action
// buttons disabled), and failures: beside what failed when the work names
// a place for them, in the alert at the top otherwise.

import { $, show } from "./dom.js";
import { isAbort } from "./api.js";
import { state } from "./state.js";
import { terminal } from "./terminal.js";

export function setStatus(text) {
  $("status").textContent = text;
}

export function applyDisabled() {
  for (const button of document.querySelectorAll("button.act")) {
    button.disabled = state.busy > 0 || button.dataset.off === "1";
  }
}

export function setOff(button, off) {
  button.dataset.off = off ? "1" : "";
  applyDisabled();
}

/** Runs `fn(step)` as the page's current work: a spinner, the step text in
 * the status line, every action button disabled until it ends. A failure
 * shows in `errorBox` (an element beside the control that started the
 * work), or in the alert at the top without one. */
export async function work(label, fn, { errorBox = null } = {}) {
  clearAlert();
  if (errorBox) clearError(errorBox);
  state.busy += 1;
  document.body.setAttribute("aria-busy", "true");
  show($("spinner"), true);
  setStatus(`${label}…`);
  applyDisabled();
  const step = (text) => setStatus(`${label}: ${text}`);
  try {
    return await fn(step);
  } catch (err) {
    if (!isAbort(err)) {
      if (errorBox) showError(errorBox, err);
      else fail(err);
      setStatus(`${label}: failed.`);
    }
    return undefined;
  } finally {
    state.busy -= 1;
    if (state.busy === 0) {
      document.body.removeAttribute("aria-busy");
      show($("spinner"), false);
    }
    applyDisabled();
  }
}

export function fail(err) {
  const message = err instanceof Error ? err.message : String(err);
  showAlert(message);
}

export function showAlert(message) {
  $("alert-text").replaceChildren(...terminal().render(message));
  show($("alert"), true);
}

export function clearAlert() {
  show($("alert"), false);
  $("alert-text").textContent = "";
}

/** Shows a failure in `box`, the place beside what caused it, and brings
 * it into view. */
export function showError(box, err) {
  // Check output and app logs in a message keep their colours; any other
  // control sequence is shown, never run.
  box.replaceChildren(...terminal().render(err instanceof Error ? err.message : String(err)));
  show(box, true);
  box.scrollIntoView({ block: "nearest" });
}

export function clearError(box) {
  show(box, false);
  box.textContent = "";
}
