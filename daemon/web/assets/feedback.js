// What the page says while it works: the status line, the busy indicator
// (action buttons disabled), and the alert for failures.

import { $, show } from "./dom.js";
import { isAbort } from "./api.js";
import { state } from "./state.js";

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
 * the status line, every action button disabled until it ends. */
export async function work(label, fn) {
  clearAlert();
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
      fail(err);
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
  $("alert-text").textContent = message;
  show($("alert"), true);
}

export function clearAlert() {
  show($("alert"), false);
  $("alert-text").textContent = "";
}
