// appforge's dashboard: one page, hash routes, the daemon's protocol over
// `POST /api/KEY/call` (newline-delimited JSON, read as a stream).
//
// Safety rules kept throughout: every piece of text that comes from the
// daemon, a project or a model is put on the page with textContent or
// createElement, never as HTML; no inline script or style (the page's
// Content-Security-Policy forbids both).
"use strict";

// ---------------------------------------------------------------------------
// DOM helpers

const $ = (id) => document.getElementById(id);

/** An element with properties (className, textContent, …), attributes
 * (`attrs`), data attributes (`data`) and children (nodes or strings). */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  const { attrs, data, ...rest } = props || {};
  Object.assign(node, rest);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const [k, v] of Object.entries(data || {})) node.dataset[k] = v;
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

function show(node, visible) {
  node.hidden = !visible;
}

// ---------------------------------------------------------------------------
// Terminal text (app logs, model output) made safe for the page: SGR colour
// codes become spans with classes (the CSP forbids inline styles); every
// other control (OSC, cursor moves, clears, C0 and C1 bytes, bidi
// overrides) is shown as a visible escape and never acts.

const SGR_ATTRS = { 1: "bold", 2: "dim", 3: "italic", 4: "underline" };
const SGR_OFF = { 22: ["bold", "dim"], 23: ["italic"], 24: ["underline"] };
/** Longest escape sequence waited for across two chunks of a stream. */
const ESC_CARRY = 64;

/** A renderer that keeps the colour state and any escape cut in two
 * between the chunks of one stream. */
function terminal() {
  const sgr = { fg: null, bg: null, attrs: new Set() };
  let carry = "";
  const visible = (text) => el("span", { className: "esc", textContent: text, title: "control sequence, not run" });
  const picture = (ch) => {
    const c = ch.codePointAt(0);
    if (c < 0x20) return String.fromCodePoint(0x2400 + c); // ␛, ␇, ␈ …
    if (c === 0x7f) return "\u2421";
    return `<U+${c.toString(16).toUpperCase().padStart(4, "0")}>`;
  };
  const applySgr = (params) => {
    const codes = params === "" ? [0] : params.split(";").map((p) => (p === "" ? 0 : Number(p)));
    for (let i = 0; i < codes.length; i++) {
      const n = codes[i];
      if (n === 0) {
        sgr.fg = null;
        sgr.bg = null;
        sgr.attrs.clear();
      } else if (SGR_ATTRS[n]) sgr.attrs.add(SGR_ATTRS[n]);
      else if (SGR_OFF[n]) for (const a of SGR_OFF[n]) sgr.attrs.delete(a);
      else if (n >= 30 && n <= 37) sgr.fg = n - 30;
      else if (n >= 90 && n <= 97) sgr.fg = n - 90 + 8;
      else if (n === 39) sgr.fg = null;
      else if (n >= 40 && n <= 47) sgr.bg = n - 40;
      else if (n >= 100 && n <= 107) sgr.bg = n - 100 + 8;
      else if (n === 49) sgr.bg = null;
      else if (n === 38 || n === 48) {
        // 256 colours or RGB: dropped, their arguments skipped.
        i += codes[i + 1] === 5 ? 2 : codes[i + 1] === 2 ? 4 : 1;
      }
    }
  };
  const span = (text) => {
    const classes = [...sgr.attrs].map((a) => `sgr-${a}`);
    if (sgr.fg !== null) classes.push(`sgr-fg-${sgr.fg}`);
    if (sgr.bg !== null) classes.push(`sgr-bg-${sgr.bg}`);
    return classes.length ? el("span", { className: classes.join(" "), textContent: text }) : document.createTextNode(text);
  };
  // Controls: C0 but tab and newline, DEL, C1, and the bidi overrides and isolates.
  const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/;
  return {
    /** The nodes for the next chunk of the stream; `colour` false drops SGR. */
    render(chunk, colour = true) {
      const text = carry + chunk;
      carry = "";
      const out = [];
      let plain = "";
      const flush = () => {
        if (plain) out.push(colour ? span(plain) : document.createTextNode(plain));
        plain = "";
      };
      let i = 0;
      while (i < text.length) {
        const ch = text[i];
        if (!CONTROL.test(ch)) {
          plain += ch;
          i += 1;
          continue;
        }
        if (ch === "\r" && text[i + 1] === "\n") {
          i += 1; // CRLF is a line end
          continue;
        }
        if (ch === "\u001b" && (text[i + 1] === "[" || i + 1 === text.length)) {
          const m = /^\u001b\[([0-9;:<=>?]*)([ -\/]*)([@-~])/.exec(text.slice(i, i + ESC_CARRY));
          if (!m) {
            const rest = text.slice(i);
            if (rest.length < ESC_CARRY && /^\u001b(\[[0-9;:<=>?]*[ -\/]*)?$/.test(rest)) {
              flush();
              carry = rest; // cut in two: wait for the next chunk
              return out;
            }
          } else {
            flush();
            if (m[3] === "m" && m[2] === "" && /^[0-9;]*$/.test(m[1])) {
              if (colour) applySgr(m[1]);
            } else {
              out.push(visible(picture("\u001b") + m[0].slice(1)));
            }
            i += m[0].length;
            continue;
          }
        }
        flush();
        out.push(visible(picture(ch)));
        i += 1;
      }
      flush();
      return out;
    },
  };
}

// ---------------------------------------------------------------------------
// The daemon's API

class ApiError extends Error {
  constructor(code, message, status = 200) {
    super(message);
    this.name = "ApiError";
    this.code = code;
    this.status = status; // the HTTP status: 403 for the dashboard's guard
  }
}

/** Error codes compared loosely: `NotFound`, `not-found` and `not_found` are one. */
function codeIs(err, code) {
  const norm = (c) => String(c || "").toLowerCase().replace(/[^a-z]/g, "");
  return err instanceof ApiError && norm(err.code) === norm(code);
}

function isAbort(err) {
  return err && err.name === "AbortError";
}

// Every POST carries the CSRF token issued with the browser's session, and
// goes to the API under the daemon's key (the session cookie's path, so the
// browser sends that cookie to no app). Both arrive once, in the fragment of
// the sign-in link's redirect (`#csrf=…&api=…`, never sent to any server),
// and are kept in this origin's storage, out of reach of the apps on other
// ports.
const TOKEN_KEY = "appforge.csrf";
const API_KEY = "appforge.api";

// Without storage (private mode) the session ends with the page.
const memory = {};

function stored(name) {
  try {
    return localStorage.getItem(name) || "";
  } catch {
    return memory[name] || "";
  }
}

function store(name, value) {
  memory[name] = value || "";
  try {
    if (value) localStorage.setItem(name, value);
    else localStorage.removeItem(name);
  } catch {
    // Storage refused: `memory` keeps it for this page.
  }
}

function storedToken() {
  return stored(TOKEN_KEY) && stored(API_KEY) ? stored(TOKEN_KEY) : "";
}

/** Keeps a sign-in's CSRF token and API key, or forgets both (""). */
function storeToken(token, key = "") {
  store(TOKEN_KEY, token);
  store(API_KEY, token ? key : "");
}

/** Takes the CSRF token and API key out of the address bar after a sign-in link. */
function takeLinkToken() {
  const m = location.hash.match(/^#csrf=([0-9a-f]{16,128})&api=([0-9a-f]{32,128})$/);
  if (!m) return;
  storeToken(m[1], m[2]);
  history.replaceState(null, "", `${location.pathname}#/`);
}

/** The address of an API endpoint (`call`, `export`) under the daemon's key. */
function apiUrl(name) {
  return `/api/${stored(API_KEY)}/${name}`;
}

function csrfToken() {
  return storedToken();
}

function headers(extra = {}) {
  return { "X-CSRF-Token": csrfToken(), ...extra };
}

/** One protocol request. Progress lines go to `onProgress` as they arrive;
 * resolves to the reply, rejects with an ApiError (or an AbortError). */
async function call(request, options = {}) {
  return callOnce(request, options);
}

async function callOnce(request, { onProgress, signal } = {}) {
  let response;
  try {
    response = await fetch(apiUrl("call"), {
      method: "POST",
      headers: headers({ "Content-Type": "application/json" }),
      body: JSON.stringify(request),
      credentials: "same-origin",
      cache: "no-store",
      signal,
    });
  } catch (err) {
    if (isAbort(err)) throw err;
    throw new ApiError("network", "The daemon could not be reached. Is appforged still running?");
  }
  if (!response.body) throw new ApiError("internal", `The daemon answered ${response.status} with no body.`);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let outcome = null;
  const handle = (line) => {
    if (!line.trim()) return;
    let msg;
    try {
      msg = JSON.parse(line);
    } catch {
      throw new ApiError("internal", `The daemon answered ${response.status} with something that is not JSON.`);
    }
    if (msg && "progress" in msg) {
      if (onProgress) onProgress(msg.progress);
    } else if (msg && "reply" in msg) {
      outcome = { reply: msg.reply };
    } else if (msg && "error" in msg) {
      const e = msg.error || {};
      outcome = { error: new ApiError(e.code || "internal", e.message || "The request failed.", response.status) };
    }
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      handle(buffer.slice(0, nl));
      buffer = buffer.slice(nl + 1);
    }
  }
  buffer += decoder.decode();
  handle(buffer);
  if (!outcome) {
    throw new ApiError("internal", `The daemon ended its answer (HTTP ${response.status}) without a result.`);
  }
  if (outcome.error) {
    if (codeIs(outcome.error, "unauthenticated")) signedOut(outcome.error.message);
    throw outcome.error;
  }
  return outcome.reply;
}

/** The one variant of a reply (`{"Projects": [...]}` → ["Projects", [...]]). */
function unpack(reply, expected) {
  if (typeof reply === "string") {
    if (expected && reply !== expected) throw new ApiError("internal", `Unexpected answer ${reply}.`);
    return null;
  }
  const [kind] = Object.keys(reply || {});
  if (expected && kind !== expected) throw new ApiError("internal", `Unexpected answer ${kind}, wanted ${expected}.`);
  return reply[kind];
}

// ---------------------------------------------------------------------------
// State, status line, busy indicator, alerts

const state = {
  user: null, // { email }
  busy: 0,
  wanted: null, // the route to go to after signing in
  projectId: null,
  detail: null, // ProjectDetail shown
  newest: null, // newest version of the project shown
  history: [],
  file: null, // path shown
  adding: null, // path of the new file open in the editor
  ps: [], // ProcessInfo of the caller's apps
  tab: "files",
  logs: null, // AbortController of the log follow
  appsTimer: null,
  appsLoading: false,
  lastGeneration: null,
};

function setStatus(text) {
  $("status").textContent = text;
}

function applyDisabled() {
  for (const button of document.querySelectorAll("button.act")) {
    button.disabled = state.busy > 0 || button.dataset.off === "1";
  }
}

function setOff(button, off) {
  button.dataset.off = off ? "1" : "";
  applyDisabled();
}

/** Runs `fn(step)` as the page's current work: a spinner, the step text in
 * the status line, every action button disabled until it ends. */
async function work(label, fn) {
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

function fail(err) {
  const message = err instanceof Error ? err.message : String(err);
  showAlert(message);
}

function showAlert(message) {
  $("alert-text").textContent = message;
  show($("alert"), true);
}

function clearAlert() {
  show($("alert"), false);
  $("alert-text").textContent = "";
}

function signedOut(message) {
  if (!state.user) return;
  state.user = null;
  renderUser();
  if (location.hash !== "#/signin") {
    state.wanted = location.hash;
    location.hash = "#/signin";
  }
  if (message) showAlert(message);
}

// ---------------------------------------------------------------------------
// Formatting

function fmtBytes(n) {
  if (n === null || n === undefined) return "–";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

function fmtDuration(s) {
  if (s === null || s === undefined) return "–";
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  const h = Math.floor(s / 3600);
  if (h < 48) return `${h} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

function fmtPercent(p) {
  return p === null || p === undefined ? "–" : `${p.toFixed(1)} %`;
}

function fmtWhen(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso || "";
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return d.toLocaleDateString();
}

function timeEl(iso) {
  const d = new Date(iso);
  return el("time", {
    textContent: fmtWhen(iso),
    title: Number.isNaN(d.getTime()) ? "" : d.toLocaleString(),
    attrs: { datetime: iso },
  });
}

function badge(text, kind) {
  return el("span", { className: `badge ${kind || text || "none"}`, textContent: text });
}

function checkBadge(status) {
  if (!status) return badge("not checked", "none");
  return badge(status === "passed" ? "checks passed" : status === "skipped" ? "not checked" : "checks failed", status);
}

/** Only addresses of apps on this machine are linked or framed. */
function safeAppUrl(url) {
  try {
    const u = new URL(url);
    return u.protocol === "http:" && (u.hostname === "127.0.0.1" || u.hostname === "localhost") ? u.href : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------
// Check options (CheckOptions), one fieldset per place that saves versions

function mountChecks(slot) {
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

function readChecks(p) {
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

function optional(value) {
  const v = value.trim();
  return v === "" ? null : v;
}

// ---------------------------------------------------------------------------
// Live progress of long requests (generate, improve, fix, edit, run…)

function progressView(container) {
  const current = el("p", { className: "current", textContent: "Starting…" });
  const steps = el("ol", { className: "steps", attrs: { "data-testid": "progress-steps" } });
  const textLabel = el("p", { className: "muted", textContent: "Model output" });
  const text = el("pre", {
    className: "modeltext",
    tabIndex: 0,
    attrs: { "aria-label": "Model output", "data-testid": "model-text" },
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

function renderGenerated(box, g) {
  const secs = (g.duration_ms / 1000).toFixed(1);
  let made = `${g.files.length} files from ${g.provider} (${g.model}) in ${secs} s, ${g.tokens_used} tokens`;
  if (g.repair_rounds > 0) made += `, ${g.repair_rounds} repair round${g.repair_rounds === 1 ? "" : "s"}`;
  const parts = [el("p", { className: "summary", textContent: made }), checksBlock(g.check_status, g.checks)];
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
  if (g.project) {
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
  box.replaceChildren(...parts);
}

function renderSaved(box, s) {
  const parts = [];
  if (!s.saved) {
    parts.push(el("p", { textContent: `Nothing changed: still version ${s.version}.` }));
  } else {
    parts.push(
      el("p", { className: "summary", textContent: `Saved version ${s.version}; changed: ${s.changed.join(", ") || "nothing"}.` }),
      checksBlock(s.check_status, s.checks),
    );
    if (s.restarted) parts.push(el("p", { textContent: "The running app was restarted on the new version." }));
  }
  box.replaceChildren(...parts);
}

// ---------------------------------------------------------------------------
// Syntax highlighting: a small tokenizer per language; tokens become spans
// whose text is set with textContent.

const PY_KEYWORDS =
  "False None True and as assert async await break class continue def del elif else except finally for from global if import in is lambda nonlocal not or pass raise return try while with yield match case";
const PY_BUILTINS =
  "print len range str int float bool list dict set tuple open super self cls isinstance enumerate zip map filter sorted min max sum any all repr type object Exception ValueError KeyError TypeError";
const JS_KEYWORDS =
  "await break case catch class const continue debugger default delete do else export extends finally for function if import in instanceof let new of return static super switch this throw try typeof var void while with yield async true false null undefined";
const words = (s) => new Set(s.split(" "));

const STRING_DQ = /"(?:\\[\s\S]|[^"\\\n])*"?/y;
const STRING_SQ = /'(?:\\[\s\S]|[^'\\\n])*'?/y;
const SPACE = { type: "plain", re: /\s+/y };
const NUMBER = { type: "number", re: /\d[\d_]*(?:\.\d+)?(?:[eE][+-]?\d+)?/y };

const HTML_TAG = {
  rules: [
    SPACE,
    { type: "tag", re: /<\/?[A-Za-z][\w:-]*|\/?>/y },
    { type: "attr", re: /[^\s"'<>/=]+(?=\s*=)/y },
    { type: "string", re: /"[^"]*"?|'[^']*'?/y },
    { type: "template", re: /\{\{[\s\S]*?(?:\}\}|$)|\{%[\s\S]*?(?:%\}|$)/y },
  ],
};

const LANGS = {
  python: {
    rules: [
      SPACE,
      { type: "comment", re: /#[^\n]*/y },
      {
        type: "string",
        re: /[rRbBuUfF]{0,2}(?:"""[\s\S]*?(?:"""|$)|'''[\s\S]*?(?:'''|$)|"(?:\\[\s\S]|[^"\\\n])*"?|'(?:\\[\s\S]|[^'\\\n])*'?)/y,
      },
      { type: "decorator", re: /@[A-Za-z_][\w.]*/y },
      NUMBER,
      { type: "word", re: /[A-Za-z_]\w*/y },
    ],
    keywords: words(PY_KEYWORDS),
    builtins: words(PY_BUILTINS),
  },
  js: {
    rules: [
      SPACE,
      { type: "comment", re: /\/\/[^\n]*|\/\*[\s\S]*?(?:\*\/|$)/y },
      { type: "string", re: STRING_DQ },
      { type: "string", re: STRING_SQ },
      { type: "string", re: /`(?:\\[\s\S]|[^`\\])*`?/y },
      NUMBER,
      { type: "word", re: /[A-Za-z_$][\w$]*/y },
    ],
    keywords: words(JS_KEYWORDS),
  },
  css: {
    rules: [
      SPACE,
      { type: "comment", re: /\/\*[\s\S]*?(?:\*\/|$)/y },
      { type: "string", re: STRING_DQ },
      { type: "string", re: STRING_SQ },
      { type: "keyword", re: /@[\w-]+/y },
      { type: "number", re: /#[0-9a-fA-F]{3,8}\b/y },
      { type: "attr", re: /[\w-]+(?=\s*:[^:])/y },
      { type: "number", re: /-?\d*\.?\d+(?:px|em|rem|%|vh|vw|s|ms|fr|ch|deg)?/y },
      { type: "plain", re: /[\w-]+/y },
    ],
  },
  html: {
    rules: [
      SPACE,
      { type: "comment", re: /<!--[\s\S]*?(?:-->|$)|\{#[\s\S]*?(?:#\}|$)/y },
      { type: "template", re: /\{\{[\s\S]*?(?:\}\}|$)|\{%[\s\S]*?(?:%\}|$)/y },
      { type: "keyword", re: /<![A-Za-z][^>]*>?/y },
      { type: "sub", re: /<\/?[A-Za-z][^<>]*>?/y, sub: HTML_TAG },
      { type: "plain", re: /[^<{\s]+/y },
    ],
  },
  markdown: {
    rules: [
      { type: "string", re: /```[\s\S]*?(?:```|$)/y, bol: true },
      { type: "keyword", re: /#{1,6}[ \t][^\n]*/y, bol: true },
      { type: "punct", re: /[ \t]*(?:[-*+]|\d+\.)[ \t]/y, bol: true },
      { type: "comment", re: /> ?[^\n]*/y, bol: true },
      SPACE,
      { type: "string", re: /`[^`\n]*`/y },
      { type: "strong", re: /\*\*[^*\n]+\*\*|__[^_\n]+__/y },
      { type: "em", re: /\*[^*\n]+\*|_[^_\n]+_/y },
      { type: "link", re: /\[[^\]\n]*\]\([^)\n]*\)/y },
      { type: "plain", re: /[^\s`*_[#>]+/y },
    ],
  },
  json: {
    rules: [SPACE, { type: "attr", re: /"(?:\\.|[^"\\\n])*"(?=\s*:)/y }, { type: "string", re: STRING_DQ }, NUMBER, { type: "word", re: /\w+/y }],
    keywords: words("true false null"),
  },
  plain: {
    rules: [
      SPACE,
      { type: "comment", re: /#[^\n]*/y },
      { type: "string", re: STRING_DQ },
      { type: "string", re: STRING_SQ },
      NUMBER,
      { type: "plain", re: /[A-Za-z_][\w.-]*/y },
    ],
  },
};

function langOf(path) {
  const name = path.split("/").pop().toLowerCase();
  const ext = name.includes(".") ? name.split(".").pop() : "";
  return (
    {
      py: "python",
      js: "js",
      mjs: "js",
      cjs: "js",
      ts: "js",
      css: "css",
      html: "html",
      htm: "html",
      jinja: "html",
      j2: "html",
      svg: "html",
      xml: "html",
      md: "markdown",
      markdown: "markdown",
      json: "json",
    }[ext] || "plain"
  );
}

/** [[type or null, text], …] covering `text` exactly. */
function tokenize(text, lang) {
  const out = [];
  let plain = "";
  const flush = () => {
    if (plain) out.push([null, plain]);
    plain = "";
  };
  let i = 0;
  outer: while (i < text.length) {
    for (const rule of lang.rules) {
      if (rule.bol && i > 0 && text[i - 1] !== "\n") continue;
      rule.re.lastIndex = i;
      const m = rule.re.exec(text);
      if (!m || m[0].length === 0) continue;
      const t = m[0];
      let type = rule.type;
      if (type === "word") {
        type = lang.keywords && lang.keywords.has(t) ? "keyword" : lang.builtins && lang.builtins.has(t) ? "builtin" : "plain";
      }
      if (type === "sub") {
        flush();
        out.push(...tokenize(t, rule.sub));
      } else if (type === "plain") {
        plain += t;
      } else {
        flush();
        out.push([type, t]);
      }
      i += t.length;
      continue outer;
    }
    plain += text[i];
    i += 1;
  }
  flush();
  return out;
}

const HIGHLIGHT_LIMIT = 300_000;

/** A code block with line numbers: `path` picks the language. */
function renderCode(container, path, content) {
  const code = el("code", { className: `lang-${langOf(path)}` });
  if (content.length > HIGHLIGHT_LIMIT) {
    code.textContent = content;
  } else {
    for (const [type, t] of tokenize(content, LANGS[langOf(path)])) {
      code.append(type ? el("span", { className: `tok-${type}`, textContent: t }) : t);
    }
  }
  let lines = content.split("\n").length;
  if (content.endsWith("\n")) lines -= 1;
  const numbers = Array.from({ length: Math.max(lines, 1) }, (_, k) => k + 1).join("\n");
  container.replaceChildren(
    el("pre", { className: "gutter", textContent: numbers, attrs: { "aria-hidden": "true" } }),
    el("pre", { className: "src", tabIndex: 0, attrs: { "aria-label": `Contents of ${path}` } }, code),
  );
}

/** A unified diff, one line per span, coloured by its first character. */
function renderDiff(pre, unified) {
  pre.replaceChildren();
  if (!unified) {
    pre.append(el("span", { className: "dl ctx", textContent: "The two versions are the same." }));
    return;
  }
  const lines = unified.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  for (const line of lines) {
    let kind = "ctx";
    if (line.startsWith("+++ ") || line.startsWith("--- ") || line.startsWith("diff ") || line.startsWith("index ")) kind = "file";
    else if (line.startsWith("@@")) kind = "hunk";
    else if (line.startsWith("+")) kind = "add";
    else if (line.startsWith("-")) kind = "del";
    else if (line.startsWith("\\")) kind = "meta";
    pre.append(el("span", { className: `dl ${kind}`, textContent: `${line}\n` }));
  }
}

// ---------------------------------------------------------------------------
// Routing

const VIEWS = ["signin", "projects", "project", "apps"];

function showView(name) {
  for (const v of VIEWS) show($(`view-${v}`), v === name);
  for (const link of document.querySelectorAll("#nav a")) {
    const current =
      (name === "projects" && link.id === "nav-projects") || (name === "apps" && link.id === "nav-apps");
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function leaveViews() {
  stopLogs();
  stopAppsTimer();
  resetPreview();
}

let firstRoute = true;

async function route() {
  leaveViews();
  const hash = location.hash || "#/";
  if (!state.user) {
    if (hash !== "#/signin") {
      state.wanted = hash;
      location.replace("#/signin");
      return;
    }
    document.title = "Sign in · appforge";
    showView("signin");
    setStatus("Not signed in: run `appforge dashboard` in a terminal.");
    focusView();
    return;
  }
  const project = hash.match(/^#\/projects\/(\d+)$/);
  if (hash === "#/signin") {
    location.replace(state.wanted && state.wanted !== "#/signin" ? state.wanted : "#/");
  } else if (hash === "#/" || hash === "#" || hash === "") {
    document.title = "Projects · appforge";
    showView("projects");
    focusView();
    await loadProjects();
  } else if (hash === "#/apps") {
    document.title = "Running apps · appforge";
    showView("apps");
    focusView();
    startAppsTimer();
  } else if (project) {
    showView("project");
    focusView();
    await openProject(Number(project[1]));
  } else {
    location.replace("#/");
  }
}

function focusView(id) {
  if (firstRoute) {
    firstRoute = false;
    if (id) $(id).focus();
    return;
  }
  window.scrollTo(0, 0);
  (id ? $(id) : $("main")).focus({ preventScroll: true });
}

function renderUser() {
  show($("nav"), Boolean(state.user));
  show($("who"), Boolean(state.user));
  $("who-email").textContent = state.user ? state.user.email : "";
}

// ---------------------------------------------------------------------------
// Signing in and out

async function signOut() {
  await work("Signing out", async () => {
    try {
      await call("Logout");
    } catch (err) {
      if (!codeIs(err, "unauthenticated")) throw err;
    }
    storeToken("");
    state.user = null;
    state.wanted = null;
    renderUser();
    location.hash = "#/signin";
    setStatus("Signed out.");
  });
}

// ---------------------------------------------------------------------------
// Projects list and generation

async function loadProjects() {
  await work("Loading projects", async () => {
    const [projects, processes] = await Promise.all([call("ListProjects"), call("Ps")]);
    state.ps = unpack(processes, "Processes");
    renderProjects(unpack(projects, "Projects"));
    setStatus(`${state.user.email}: ${unpack(projects, "Projects").length} project(s).`);
  });
}

function renderProjects(list) {
  const rows = $("project-rows");
  rows.replaceChildren();
  show($("list-empty"), list.length === 0);
  show($("project-table"), list.length > 0);
  for (const p of list) {
    const proc = state.ps.find((a) => a.project_id === p.id);
    const status = proc ? proc.status : p.status;
    const url = proc && proc.url ? safeAppUrl(proc.url) : null;
    rows.append(
      el(
        "tr",
        { attrs: { "data-testid": "project-row", "data-project-id": p.id } },
        el("th", { scope: "row" }, el("a", { href: `#/projects/${p.id}`, textContent: p.name })),
        el("td", { textContent: `v${p.version}` }),
        el("td", {}, checkBadge(p.check_status)),
        el(
          "td",
          {},
          badge(status, status),
          url ? el("a", { href: url, target: "_blank", rel: "noopener noreferrer", textContent: ` ${new URL(url).host}`, className: "applink" }) : null,
        ),
        el("td", {}, timeEl(p.last_modified)),
      ),
    );
  }
}

async function generate(event) {
  event.preventDefault();
  const form = $("gen-form");
  const prompt = $("gen-prompt").value.trim();
  if (!prompt) {
    showAlert("Describe the app first.");
    $("gen-prompt").focus();
    return;
  }
  show($("gen-progress"), true);
  show($("gen-result"), false);
  show($("gen-save-form"), false);
  show($("gen-saved"), false);
  $("gen-files").replaceChildren();
  const progress = progressView(document.querySelector('[data-progress="gen"]'));
  let finished = false;
  await work("Generating", async (step) => {
    const request = {
      Generate: {
        prompt,
        save: $("gen-save").checked,
        name: optional($("gen-name").value),
        provider: optional($("gen-provider").value),
        model: optional($("gen-model").value),
        checks: readChecks("gen"),
      },
    };
    const reply = await call(request, { onProgress: (p) => progress.onProgress(p, step) });
    const g = unpack(reply, "Generated");
    state.lastGeneration = g;
    finished = true;
    progress.done(g.project ? "Done: saved." : "Done: not saved yet.");
    renderGenerated($("gen-outcome"), g);
    renderGenFiles(g);
    show($("gen-result"), true);
    if (!g.project) {
      $("gen-save-name").value = $("gen-name").value;
      show($("gen-save-form"), true);
      setStatus("Generated; not saved yet.");
    } else {
      setStatus(`Saved as ${g.project.name}, version ${g.project.version}.`);
      await refreshListQuietly();
    }
  });
  if (!finished) progress.done("Failed: see the message above.");
  form.querySelector("button[type=submit]").focus();
}

function renderGenFiles(g) {
  const box = $("gen-files");
  const viewer = el("div", { className: "code", attrs: { "data-testid": "gen-file-view" } });
  show(viewer, false);
  const chips = g.files.map((f) =>
    el("button", {
      type: "button",
      className: "chip",
      textContent: `${f.path} (${fmtBytes(f.content.length)})`,
      attrs: { "data-path": f.path, "aria-label": `Show ${f.path}` },
      onclick: () => {
        renderCode(viewer, f.path, f.content);
        show(viewer, true);
      },
    }),
  );
  box.replaceChildren(el("div", { className: "row wrap" }, chips), viewer);
}

async function saveGeneration(event) {
  event.preventDefault();
  const g = state.lastGeneration;
  if (!g) return;
  await work("Saving", async () => {
    const reply = await call({
      SaveGeneration: { generation_id: g.generation_id, name: optional($("gen-save-name").value) },
    });
    const saved = unpack(reply, "Generated");
    show($("gen-save-form"), false);
    const p = saved.project;
    $("gen-saved").replaceChildren(
      "Saved as ",
      el("a", { href: `#/projects/${p.project_id}`, textContent: p.name, attrs: { "data-testid": "gen-saved-link" } }),
      ` (version ${p.version}).`,
    );
    show($("gen-saved"), true);
    setStatus(`Saved as ${p.name}.`);
    await refreshListQuietly();
    $("gen-saved").querySelector("a").focus();
  });
}

async function refreshListQuietly() {
  try {
    const [projects, processes] = await Promise.all([call("ListProjects"), call("Ps")]);
    state.ps = unpack(processes, "Processes");
    renderProjects(unpack(projects, "Projects"));
  } catch (err) {
    fail(err);
  }
}

// ---------------------------------------------------------------------------
// One project

const ref = () => String(state.projectId);

async function openProject(id, { version = null } = {}) {
  if (state.projectId !== id) {
    state.projectId = id;
    state.detail = null;
    state.file = null;
    state.history = [];
    $("logs-view").textContent = "";
    show($("diff-box"), false);
    show($("change-progress"), false);
    $("project-title").textContent = `Project ${id}`;
    selectTab("files", { load: false });
  }
  await work("Loading the project", async () => {
    await loadProject(version);
    setStatus(`Project ${state.detail.summary.name}, version ${state.detail.version}.`);
  });
  await enterTab(state.tab);
}

/** Reads the project (newest or `version`) and the apps, and draws them. */
async function loadProject(version = null) {
  const [detailReply, psReply] = await Promise.all([
    call({ ShowProject: { project: ref(), version, file: null } }),
    call("Ps"),
  ]);
  const detail = unpack(detailReply, "Project");
  state.ps = unpack(psReply, "Processes");
  state.detail = detail;
  state.newest = detail.summary.version;
  endEdit();
  renderProjectHead();
  renderFiles();
  renderAppState();
}

function renderProjectHead() {
  const d = state.detail;
  document.title = `${d.summary.name} · appforge`;
  $("project-title").textContent = d.summary.name;
  $("project-prompt").textContent = d.prompt;
  $("project-badges").replaceChildren(badge(`v${d.summary.version}`, "version"), checkBadge(d.summary.check_status));
}

function currentApp() {
  return state.ps.find((a) => a.project_id === state.projectId) || null;
}

function renderAppState() {
  const app = currentApp();
  const live = app && ["running", "starting", "backoff"].includes(app.status);
  const bits = [];
  if (app) {
    bits.push(badge(app.status, app.status));
    if (app.pid) bits.push(` pid ${app.pid}`);
    if (app.version) bits.push(` · runs v${app.version}`);
    if (app.newer_version) bits.push(` (v${app.newer_version} is newer: restart to run it)`);
    if (app.restarts) bits.push(` · ${app.restarts} restart(s)`);
    if (app.last_exit && !live) bits.push(` · last exit: ${app.last_exit}`);
    if (app.hint) bits.push(el("span", { className: "hint", textContent: ` ${app.hint}` }));
  } else {
    bits.push(badge("not running", "stopped"));
  }
  $("app-state").replaceChildren(...bits);
  const url = live && app.url ? safeAppUrl(app.url) : null;
  const link = $("app-url");
  if (url) {
    link.href = url;
    link.textContent = url;
  } else {
    link.removeAttribute("href");
    link.textContent = "";
  }
  show(link, Boolean(url));
  setOff($("app-run"), live);
  setOff($("app-stop"), !live);
  setOff($("app-restart"), !app);
  if (state.tab === "preview") loadPreview();
}

// Files ---------------------------------------------------------------------

function renderFiles() {
  const d = state.detail;
  const list = $("file-list");
  list.replaceChildren();
  const old = d.version !== state.newest;
  $("files-version").replaceChildren(
    old ? el("strong", { textContent: `Version ${d.version} (newest is ${state.newest}). ` }) : `Version ${d.version}. `,
    old ? el("button", { type: "button", className: "link", textContent: "Show the newest", onclick: () => showVersion(null) }) : "",
  );
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

function startEdit() {
  const f = state.detail.files.find((x) => x.path === state.file);
  if (!f) return;
  state.adding = null;
  openEditor(`Edit ${f.path} (starting from version ${state.detail.version})`, f.content);
}

/** Opens the editor on a file the project does not have yet. */
function startNewFile(event) {
  event.preventDefault();
  const path = $("new-file-path").value.trim();
  if (!path) return;
  if (state.detail.files.some((f) => f.path === path)) {
    showAlert(`The project already has ${path}: choose it in the list to edit it.`);
    return;
  }
  if (!$("edit-form").hidden && !confirm("Leave the edit? Your changes to this file are not saved.")) return;
  clearAlert();
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

function endEdit() {
  state.adding = null;
  show($("edit-form"), false);
  show($("file-view"), true);
  showFileActions();
}

async function saveEdit(event) {
  event.preventDefault();
  const d = state.detail;
  const adding = state.adding;
  const path = adding || state.file;
  const text = $("edit-text").value;
  const files = adding
    ? [...d.files, { path, content: text }]
    : d.files.map((f) => (f.path === path ? { path: f.path, content: text } : f));
  await saveFiles(files, adding ? `Adding ${path}` : `Saving ${path}`, path);
  if (adding && state.detail.files.some((f) => f.path === path)) $("new-file-path").value = "";
}

async function deleteFile() {
  const path = state.file;
  const d = state.detail;
  if (!confirm(`Delete ${path}? A new version is saved without it; earlier versions keep it.`)) return;
  await saveFiles(
    d.files.filter((f) => f.path !== path),
    `Deleting ${path}`,
    null,
  );
}

/** Saves `files` as the project's whole file set, a new version on top of
 * the one shown, and shows `select` (or the preferred file) afterwards. */
async function saveFiles(files, label, select) {
  const d = state.detail;
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
  });
}

async function reloadNewest() {
  await work("Loading the newest version", async () => {
    await loadProject();
  });
}

async function showVersion(version) {
  await work(version ? `Loading version ${version}` : "Loading the newest version", async () => {
    await loadProject(version);
    selectTab("files");
  });
}

// Improve and fix -------------------------------------------------------------

async function change(kind, event) {
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

// History -------------------------------------------------------------------

async function loadHistory() {
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
        el("td", { textContent: v.kind }),
        el("td", { className: "clip", textContent: v.prompt, title: v.prompt }),
        el("td", {}, checkBadge(v.check_status)),
        el("td", {}, timeEl(v.created_at)),
        actions,
      ),
    );
  }
  applyDisabled();
}

async function showDiffOf(version) {
  await work(`Diff of version ${version}`, async () => {
    const reply = await call({ Diff: { project: ref(), from: null, to: version } });
    const diff = unpack(reply, "Diff");
    selectTab("history", { load: false });
    if (!state.history.length || state.history[state.history.length - 1].version < version) await loadHistory();
    $("diff-title").textContent = `Version ${diff.from} → ${diff.to}`;
    $("diff-changed").textContent = diff.changed.length ? `Changed: ${diff.changed.join(", ")}` : "No file changed.";
    renderDiff($("diff-view"), diff.unified);
    show($("diff-box"), true);
    $("diff-box").scrollIntoView({ block: "nearest" });
    setStatus(`Diff of version ${diff.from} to ${diff.to}.`);
  });
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
  });
  if (state.history.length) {
    const newest = state.history[state.history.length - 1].version;
    if (newest > version) await showDiffOf(newest);
  }
}

// Running the app -------------------------------------------------------------

async function appAction(kind) {
  const label = { Run: "Starting the app", Stop: "Stopping the app", Restart: "Restarting the app" }[kind];
  const request =
    kind === "Run"
      ? { Run: { project: ref(), port: null } }
      : kind === "Stop"
        ? { Stop: { project: ref(), all: false } }
        : { Restart: { project: ref() } };
  await work(label, async (step) => {
    const reply = await call(request, { onProgress: (p) => p.Step && step(p.Step) });
    const [kindOf] = Object.keys(reply);
    state.ps = unpack(await call("Ps"), "Processes");
    renderAppState();
    if (kindOf === "Running") setStatus(`Running at ${reply.Running.url || "its port"}.`);
    else setStatus("Stopped.");
  });
  if (state.tab === "logs" && !state.logs) startLogs();
}

/** Downloads the project's archive (`POST /api/KEY/export`) as a file. */
async function downloadExport(format) {
  const name = state.detail ? state.detail.summary.name : ref();
  await work(`Exporting ${name}`, async () => {
    let response;
    try {
      response = await fetch(apiUrl("export"), {
        method: "POST",
        headers: headers({ "Content-Type": "application/json" }),
        body: JSON.stringify({ project: ref(), format }),
        credentials: "same-origin",
        cache: "no-store",
      });
    } catch {
      throw new ApiError("network", "The daemon could not be reached. Is appforged still running?");
    }
    if (!response.ok) {
      let error = null;
      try {
        error = (await response.json()).error;
      } catch {
        // not JSON: the status says enough
      }
      const err = new ApiError((error && error.code) || "internal", (error && error.message) || `The export failed (HTTP ${response.status}).`);
      if (codeIs(err, "unauthenticated")) signedOut(err.message);
      throw err;
    }
    const blob = await response.blob();
    const disposition = response.headers.get("Content-Disposition") || "";
    const match = disposition.match(/filename="([^"]+)"/);
    const file = match ? match[1] : `${name}.${format === "Zip" ? "zip" : "tar.gz"}`;
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: file, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    setStatus(`Downloaded ${file} (${fmtBytes(blob.size)}).`);
  });
}

async function deleteProject() {
  const name = state.detail ? state.detail.summary.name : ref();
  if (!confirm(`Delete the project “${name}” with all its versions? This cannot be undone.`)) return;
  await work(`Deleting ${name}`, async () => {
    unpack(await call({ DeleteProject: { project: ref() } }), "Deleted");
    state.projectId = null;
    location.hash = "#/";
    setStatus(`Deleted ${name}.`);
  });
}

// Logs ----------------------------------------------------------------------

const LOG_LIMIT = 200_000;

/** The text and source of a log frame: plain text, or `{text, source}`
 * once log lines say who wrote them (the app, or appforge itself). */
function logEntry(value) {
  if (typeof value === "string") return { text: value, source: null };
  if (value && typeof value === "object") {
    const text = value.text ?? value.line ?? value.data ?? "";
    const source = String(value.source ?? "").toLowerCase() || null;
    return { text: typeof text === "string" ? text : String(text), source };
  }
  return { text: "", source: null };
}

/** Appends a log frame to `view`: the app's output through the terminal
 * renderer, appforge's own lines marked apart; the oldest lines go past
 * LOG_LIMIT characters. */
function appendLog(view, term, value) {
  const { text, source } = logEntry(value);
  if (!text) return;
  const nodes = term.render(text, source !== "appforge");
  if (source === "appforge") view.append(el("span", { className: "log-appforge" }, ...nodes));
  else view.append(...nodes);
  let size = (view.dataset.size ? Number(view.dataset.size) : 0) + text.length;
  if (size > LOG_LIMIT) {
    while (view.firstChild && size > LOG_LIMIT / 2) {
      size -= (view.firstChild.textContent || "").length;
      view.firstChild.remove();
    }
  }
  view.dataset.size = String(size);
}

/** The log entries of a Log or LogLines progress frame: `Log` is the app's
 * text (older daemons); each of `LogLines` says who wrote it, and a line
 * cut in pieces ends only with its last piece. */
function logEntries(p) {
  if (p.Log !== undefined) return [p.Log];
  if (p.LogLine !== undefined) return [p.LogLine];
  let open = false;
  return (p.LogLines || []).map((line) => {
    const tag = !open && line.source === "appforge" ? "[appforge] " : "";
    open = !line.ends;
    return { text: tag + line.text + (line.ends ? "\n" : ""), source: line.source };
  });
}

function startLogs() {
  stopLogs();
  const controller = new AbortController();
  state.logs = controller;
  const view = $("logs-view");
  view.textContent = "";
  view.dataset.size = "0";
  const term = terminal();
  $("logs-state").textContent = "Following the log live…";
  call(
    { Logs: { project: ref(), lines: 200, follow: true } },
    {
      signal: controller.signal,
      onProgress: (p) => {
        const entries = logEntries(p);
        if (entries.length === 0) return;
        const atEnd = view.scrollTop + view.clientHeight >= view.scrollHeight - 8;
        for (const entry of entries) appendLog(view, term, entry);
        if (atEnd) view.scrollTop = view.scrollHeight;
      },
    },
  ).then(
    () => {
      if (state.logs === controller) {
        state.logs = null;
        $("logs-state").textContent = "The log has ended.";
      }
    },
    (err) => {
      if (isAbort(err)) return;
      if (state.logs === controller) state.logs = null;
      $("logs-state").textContent = `Cannot follow the log: ${err.message}`;
    },
  );
}

function stopLogs() {
  if (state.logs) {
    state.logs.abort();
    state.logs = null;
    $("logs-state").textContent = "Not following.";
  }
}

// Preview -------------------------------------------------------------------

function loadPreview() {
  const app = currentApp();
  const url = app && app.status === "running" && app.url ? safeAppUrl(app.url) : null;
  const frame = $("preview");
  if (!url) {
    resetPreview();
    $("preview-note").textContent = "Run the app to preview it here.";
    return;
  }
  $("preview-note").replaceChildren(
    "The app at ",
    el("a", { href: url, target: "_blank", rel: "noopener noreferrer", textContent: url }),
    " (opens in a new tab).",
  );
  if (frame.getAttribute("src") !== url) frame.src = url;
  show(frame, true);
}

/** A fresh frame, so a hidden preview does not keep the app's page loaded. */
function resetPreview() {
  const frame = $("preview");
  if (!frame.getAttribute("src")) return;
  const fresh = frame.cloneNode(false);
  fresh.removeAttribute("src");
  fresh.hidden = true;
  frame.replaceWith(fresh);
}

// Tabs ----------------------------------------------------------------------

const TABS = ["files", "change", "history", "logs", "preview"];

function selectTab(name, { load = true } = {}) {
  const leaving = state.tab;
  state.tab = name;
  for (const t of TABS) {
    const tab = $(`tab-${t}`);
    tab.setAttribute("aria-selected", String(t === name));
    tab.tabIndex = t === name ? 0 : -1;
    show($(`panel-${t}`), t === name);
  }
  if (leaving === "logs" && name !== "logs") stopLogs();
  if (leaving === "preview" && name !== "preview") resetPreview();
  if (load && state.detail) enterTab(name);
}

async function enterTab(name) {
  if (!state.detail) return;
  if (name === "history") {
    await work("Loading the history", async () => {
      await loadHistory();
    });
  } else if (name === "logs") {
    if (!state.logs) startLogs();
  } else if (name === "preview") {
    loadPreview();
  }
}

function tabKeys(event) {
  const i = TABS.indexOf(state.tab);
  let next = null;
  if (event.key === "ArrowRight") next = TABS[(i + 1) % TABS.length];
  else if (event.key === "ArrowLeft") next = TABS[(i + TABS.length - 1) % TABS.length];
  else if (event.key === "Home") next = TABS[0];
  else if (event.key === "End") next = TABS[TABS.length - 1];
  if (!next) return;
  event.preventDefault();
  selectTab(next);
  $(`tab-${next}`).focus();
}

// ---------------------------------------------------------------------------
// Running apps overview

const APPS_EVERY_MS = 5000;

function startAppsTimer() {
  stopAppsTimer();
  const tick = async () => {
    state.appsTimer = null;
    if (location.hash !== "#/apps") return;
    if (document.visibilityState === "visible") await refreshApps();
    if (location.hash === "#/apps" && !state.appsTimer) state.appsTimer = setTimeout(tick, APPS_EVERY_MS);
  };
  tick();
}

function stopAppsTimer() {
  if (state.appsTimer) clearTimeout(state.appsTimer);
  state.appsTimer = null;
}

async function refreshApps() {
  if (state.appsLoading) return;
  state.appsLoading = true;
  try {
    const [psReply, usage] = await Promise.all([
      call("Ps"),
      call("Usage").then(
        (r) => ({ series: unpack(r, "Usage") }),
        (err) => ({ error: err }),
      ),
    ]);
    state.ps = unpack(psReply, "Processes");
    renderApps(state.ps);
    renderUsage(usage);
    $("apps-updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
    if (state.busy === 0) setStatus(`${state.ps.length} app(s) supervised.`);
  } catch (err) {
    if (!codeIs(err, "unauthenticated")) fail(err);
  } finally {
    state.appsLoading = false;
  }
}

function renderApps(apps) {
  const rows = $("apps-rows");
  rows.replaceChildren();
  show($("apps-empty"), apps.length === 0);
  show($("apps-table"), apps.length > 0);
  for (const a of apps) {
    const url = a.url ? safeAppUrl(a.url) : null;
    const version = a.version ? `v${a.version}${a.newer_version ? ` (v${a.newer_version} newer)` : ""}` : "–";
    rows.append(
      el(
        "tr",
        { attrs: { "data-testid": "app-row", "data-project-id": a.project_id } },
        el("th", { scope: "row" }, el("a", { href: `#/projects/${a.project_id}`, textContent: a.name })),
        el(
          "td",
          {},
          badge(a.status, a.status),
          a.hint ? el("div", { className: "hint", textContent: a.hint }) : null,
          a.last_exit && a.status !== "running" ? el("div", { className: "muted", textContent: `last exit: ${a.last_exit}` }) : null,
        ),
        el("td", { textContent: version }),
        el("td", { textContent: String(a.restarts) }),
        el("td", { textContent: fmtDuration(a.uptime_s) }),
        el("td", { textContent: fmtPercent(a.cpu_percent) }),
        el("td", { textContent: fmtBytes(a.rss_bytes) }),
        el("td", {}, url ? el("a", { href: url, target: "_blank", rel: "noopener noreferrer", textContent: new URL(url).host }) : "–"),
      ),
    );
  }
}

function renderUsage(usage) {
  const box = $("usage");
  if (usage.error) {
    $("usage-note").textContent = `Usage history is not available: ${usage.error.message}`;
    box.replaceChildren();
    return;
  }
  const series = usage.series || [];
  $("usage-note").textContent = series.length
    ? "CPU and memory of each app, one sample a minute and one of now."
    : "No usage yet: none of your apps runs.";
  box.replaceChildren(
    ...series.map((s) =>
      el(
        "figure",
        { className: "usagecard", attrs: { "data-testid": "usage-card", "data-project-id": s.project_id } },
        el("figcaption", {}, el("a", { href: `#/projects/${s.project_id}`, textContent: s.name })),
        el(
          "div",
          { className: "charts" },
          chart(s.samples, "cpu_percent", "CPU", fmtPercent, "cpu"),
          chart(s.samples, "rss_bytes", "Memory", fmtBytes, "mem"),
        ),
      ),
    ),
  );
}

/** A small line chart of one field of the samples, as inline SVG. */
function chart(samples, key, label, fmt, kind) {
  const W = 280;
  const H = 72;
  const PAD = 4;
  const points = (samples || []).filter((s) => typeof s[key] === "number");
  const latest = points.length ? points[points.length - 1][key] : null;
  const peak = points.reduce((m, s) => Math.max(m, s[key]), 0);
  const summary = points.length
    ? `${label} over the last hour: latest ${fmt(latest)}, peak ${fmt(peak)}, ${points.length} samples.`
    : `${label}: no samples yet.`;
  const root = svg("svg", {
    viewBox: `0 0 ${W} ${H}`,
    class: `chart ${kind}`,
    role: "img",
    "aria-label": summary,
    preserveAspectRatio: "none",
  });
  root.append(svg("title", {}, summary));
  root.append(svg("line", { x1: 0, y1: H - PAD, x2: W, y2: H - PAD, class: "axis" }));
  if (points.length) {
    const now = Date.now() / 1000;
    const t0 = Math.min(points[0].at_unix_s, now - 3600);
    const t1 = Math.max(points[points.length - 1].at_unix_s, t0 + 60);
    const top = kind === "cpu" ? Math.max(peak, 5) : Math.max(peak, 1) * 1.15;
    const x = (t) => PAD + ((t - t0) / (t1 - t0)) * (W - 2 * PAD);
    const y = (v) => H - PAD - (v / top) * (H - 2 * PAD);
    const coords = points.map((s) => `${x(s.at_unix_s).toFixed(1)},${y(s[key]).toFixed(1)}`);
    if (points.length > 1) {
      root.append(
        svg("polygon", {
          points: `${x(points[0].at_unix_s).toFixed(1)},${H - PAD} ${coords.join(" ")} ${x(points[points.length - 1].at_unix_s).toFixed(1)},${H - PAD}`,
          class: "area",
        }),
      );
      root.append(svg("polyline", { points: coords.join(" "), class: "line" }));
    }
    const last = points[points.length - 1];
    root.append(svg("circle", { cx: x(last.at_unix_s).toFixed(1), cy: y(last[key]).toFixed(1), r: 2.5, class: "dot" }));
  }
  return el(
    "div",
    { className: "chartbox" },
    el(
      "div",
      { className: "chartlabel" },
      el("span", { textContent: label }),
      el("span", { className: "muted", textContent: points.length ? `${fmt(latest)} (peak ${fmt(peak)})` : "–" }),
    ),
    root,
  );
}

// ---------------------------------------------------------------------------
// Start

function wire() {
  for (const slot of document.querySelectorAll("[data-checks]")) mountChecks(slot);
  $("alert-close").addEventListener("click", clearAlert);
  $("signout").addEventListener("click", signOut);
  $("gen-form").addEventListener("submit", generate);
  $("gen-save-form").addEventListener("submit", saveGeneration);
  $("list-refresh").addEventListener("click", loadProjects);
  $("gen-dismiss").addEventListener("click", () => {
    show($("gen-progress"), false);
    $("gen-prompt").focus();
  });
  $("file-edit").addEventListener("click", startEdit);
  $("file-delete").addEventListener("click", deleteFile);
  $("new-file-form").addEventListener("submit", startNewFile);
  $("edit-form").addEventListener("submit", saveEdit);
  $("edit-cancel").addEventListener("click", endEdit);
  $("edit-reload").addEventListener("click", reloadNewest);
  $("improve-form").addEventListener("submit", (e) => change("Improve", e));
  $("fix-form").addEventListener("submit", (e) => change("Fix", e));
  $("app-run").addEventListener("click", () => appAction("Run"));
  $("app-stop").addEventListener("click", () => appAction("Stop"));
  $("app-restart").addEventListener("click", () => appAction("Restart"));
  $("project-delete").addEventListener("click", deleteProject);
  $("export-zip").addEventListener("click", () => downloadExport("Zip"));
  $("export-tgz").addEventListener("click", () => downloadExport("TarGz"));
  $("logs-clear").addEventListener("click", () => {
    $("logs-view").textContent = "";
    $("logs-view").dataset.size = "0";
  });
  for (const t of TABS) $(`tab-${t}`).addEventListener("click", () => selectTab(t));
  document.querySelector(".tabs").addEventListener("keydown", tabKeys);
  window.addEventListener("hashchange", route);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && location.hash === "#/apps" && !state.appsTimer) startAppsTimer();
  });
  // Edits in the editor are not lost to a stray key or a closed tab.
  window.addEventListener("beforeunload", (e) => {
    if (!$("edit-form").hidden || state.busy > 0) e.preventDefault();
  });
  selectTab("files", { load: false });
}

async function start() {
  takeLinkToken();
  wire();
  // Without a token from a sign-in link the page is signed out: no request
  // could be answered.
  if (storedToken()) {
    try {
      const reply = await call("Whoami");
      const user = unpack(reply, "User");
      state.user = { email: user.email };
    } catch (err) {
      if (codeIs(err, "unauthenticated")) storeToken("");
      else fail(err);
      state.user = null;
    }
  }
  renderUser();
  await route();
}

document.addEventListener("DOMContentLoaded", start);
