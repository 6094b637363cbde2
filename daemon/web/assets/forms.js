// Form fields shared by the pages: the check options (CheckOptions), one
// fieldset per place that saves versions, and optional text fields.

import { $, el } from "./dom.js";
import { ApiError } from "./api.js";

export function mountChecks(slot) {
  const p = slot.dataset.checks;
  const fs = el(
    "fieldset",
    { className: "checks" },
    el("legend", { textContent: "Checks" }),
    el(
      "label",
      { className: "check" },
      el("input", { type: "checkbox", id: `${p}-no-check`, attrs: { "data-testid": `${p}-no-check` } }),
      " Skip the checks (no-check)",
    ),
    el(
      "label",
      { className: "check" },
      el("input", { type: "checkbox", id: `${p}-keep-broken` }),
      " Keep a version that fails them (keep-broken)",
    ),
    el(
      "span",
      { className: "inline" },
      el("label", { htmlFor: `${p}-repair-rounds`, textContent: "Repair rounds" }),
      el("input", {
        type: "number",
        id: `${p}-repair-rounds`,
        min: "0",
        max: "20",
        step: "1",
        placeholder: "default",
        className: "narrow",
        attrs: { inputmode: "numeric" },
      }),
    ),
  );
  slot.replaceChildren(fs);
}

export function readChecks(p) {
  const rounds = $(`${p}-repair-rounds`).value.trim();
  let repair_rounds = null;
  if (rounds !== "") {
    const n = Number(rounds);
    if (!Number.isInteger(n) || n < 0) throw new ApiError("invalid-input", "Repair rounds must be a whole number, 0 or more.");
    repair_rounds = n;
  }
  return {
    check: !$(`${p}-no-check`).checked,
    keep_broken: $(`${p}-keep-broken`).checked,
    repair_rounds,
  };
}

export function optional(value) {
  const v = value.trim();
  return v === "" ? null : v;
}
