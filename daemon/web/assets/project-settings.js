// The project's settings and secrets (the protocol's Env request, as
// `appforge env` makes it): listed, set, removed. A secret comes back from
// the daemon masked; its value field is write-only (a password field,
// emptied once sent), so its value is on the page only while it is typed.

import { $, el, show } from "./dom.js";
import { ApiError, call, unpack } from "./api.js";
import { clearError, setStatus, work } from "./feedback.js";
import { badge } from "./format.js";
import { renderAppState } from "./project-load.js";
import { ref, state } from "./state.js";

/** Reads the settings and draws them. */
export async function loadSettings() {
  await work("Loading the settings", async () => {
    renderSettings(await env("List"));
  }, { errorBox: $("settings-error") });
}

/** Reads the settings again without the busy indicator, as the event
 * stream says the app changed (a change from the CLI restarts it). */
export async function refreshSettings() {
  try {
    renderSettings(await env("List"));
  } catch {
    // What the tab shows stays; the next change or visit says what failed.
  }
}

/** Sends one change; the reply is the settings after it. */
async function env(change, step = () => {}) {
  const reply = await call({ Env: { project: ref(), change } }, { onProgress: (p) => p.Step && step(p.Step) });
  return unpack(reply, "Env");
}

function renderSettings(info) {
  const rows = info.settings.map((s) =>
    el(
      "tr",
      { data: { testid: "setting-row", name: s.name } },
      el("th", { scope: "row", className: "mono", textContent: s.name }),
      el(
        "td",
        { className: "mono clip" },
        // The daemon masks a secret's value; the page adds nothing to it.
        s.value,
        s.secret ? " " : "",
        s.secret ? badge("secret", "version") : "",
      ),
      el(
        "td",
        { className: "actions" },
        el("button", {
          type: "button",
          className: "act small",
          textContent: "Change",
          onclick: () => startChange(s),
        }),
        el("button", {
          type: "button",
          className: "act small danger",
          textContent: "Remove",
          attrs: { "data-testid": "setting-remove" },
          onclick: () => removeSetting(s.name),
        }),
      ),
    ),
  );
  $("settings-rows").replaceChildren(...rows);
  show($("settings-table"), rows.length > 0);
  show($("settings-empty"), rows.length === 0);
  renderMissing(info.missing_settings || []);
}

/** The settings the newest version's code reads that are not set. */
function renderMissing(missing) {
  const box = $("settings-missing");
  box.replaceChildren(
    ...missing.map((name) =>
      el(
        "span",
        { className: "missing-setting", data: { testid: "missing-setting" } },
        `missing setting: ${name} `,
        el("button", { type: "button", className: "link", textContent: "add it", onclick: () => startChange({ name, secret: false, value: "" }) }),
      ),
    ),
  );
  show(box, missing.length > 0);
}

/** Fills the form to change `setting`: never with a secret's value. */
function startChange(setting) {
  $("setting-name").value = setting.name;
  $("setting-secret").checked = setting.secret;
  secretChanged();
  $("setting-value").value = setting.secret ? "" : setting.value;
  clearError($("settings-error"));
  $("setting-value").focus();
}

/** A secret's value is typed into a password field. */
export function secretChanged() {
  $("setting-value").type = $("setting-secret").checked ? "password" : "text";
}

export async function saveSetting(event) {
  event.preventDefault();
  const name = $("setting-name").value.trim();
  const secret = $("setting-secret").checked;
  await work(`Saving ${name || "the setting"}`, async (step) => {
    if (!name) throw new ApiError("invalid-input", "Give the setting a name, such as API_TOKEN.");
    const value = $("setting-value").value;
    // Write-only: the value leaves the page with the request.
    if (secret) $("setting-value").value = "";
    const info = await env({ Set: { settings: [[name, value]], secret } }, step);
    $("setting-name").value = "";
    $("setting-value").value = "";
    $("setting-secret").checked = false;
    secretChanged();
    await changed(info, `Saved ${name}`);
  }, { errorBox: $("settings-error") });
}

async function removeSetting(name) {
  if (!confirm(`Remove the setting ${name}?`)) return;
  await work(`Removing ${name}`, async (step) => {
    await changed(await env({ Unset: { names: [name] } }, step), `Removed ${name}`);
  }, { errorBox: $("settings-error") });
}

/** Draws the settings after a change, and the app that restarted with them. */
async function changed(info, what) {
  if (info.restarted) {
    state.ps = unpack(await call("Ps"), "Processes");
    renderAppState();
  }
  renderSettings(info);
  setStatus(info.restarted ? `${what}; the app was restarted with it.` : `${what}; the app gets it when it next starts.`);
}
