// The daemon's protocol over `POST /api/KEY/call` (newline-delimited JSON,
// read as a stream), its errors, and the session's CSRF token and API key.

export class ApiError extends Error {
  constructor(code, message, status = 200) {
    super(message);
    this.name = "ApiError";
    this.code = code;
    this.status = status; // the HTTP status: 403 for the dashboard's guard
  }
}

/** Error codes compared loosely: `NotFound`, `not-found` and `not_found` are one. */
export function codeIs(err, code) {
  const norm = (c) => String(c || "").toLowerCase().replace(/[^a-z]/g, "");
  return err instanceof ApiError && norm(err.code) === norm(code);
}

export function isAbort(err) {
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

export function storedToken() {
  return stored(TOKEN_KEY) && stored(API_KEY) ? stored(TOKEN_KEY) : "";
}

/** Keeps a sign-in's CSRF token and API key, or forgets both (""). */
export function storeToken(token, key = "") {
  store(TOKEN_KEY, token);
  store(API_KEY, token ? key : "");
}

/** Takes the CSRF token and API key out of the address bar after a sign-in link. */
export function takeLinkToken() {
  const m = location.hash.match(/^#csrf=([0-9a-f]{16,128})&api=([0-9a-f]{32,128})$/);
  if (!m) return;
  storeToken(m[1], m[2]);
  history.replaceState(null, "", `${location.pathname}#/`);
}

/** The address of an API endpoint (`call`, `export`) under the daemon's key. */
export function apiUrl(name) {
  return `/api/${stored(API_KEY)}/${name}`;
}

function csrfToken() {
  return storedToken();
}

export function headers(extra = {}) {
  return { "X-CSRF-Token": csrfToken(), ...extra };
}

// What to do when the daemon says the session has ended; app.js sets it
// (this module draws nothing).
let sessionEnded = () => {};

/** Sets what a call answered `unauthenticated` does before it rejects. */
export function whenSessionEnds(handler) {
  sessionEnded = handler;
}

/** One protocol request. Progress lines go to `onProgress` as they arrive;
 * resolves to the reply, rejects with an ApiError (or an AbortError). */
export async function call(request, options = {}) {
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
    if (codeIs(outcome.error, "unauthenticated")) sessionEnded(outcome.error.message);
    throw outcome.error;
  }
  return outcome.reply;
}

/** The one variant of a reply (`{"Projects": [...]}` → ["Projects", [...]]). */
export function unpack(reply, expected) {
  if (typeof reply === "string") {
    if (expected && reply !== expected) throw new ApiError("internal", `Unexpected answer ${reply}.`);
    return null;
  }
  const [kind] = Object.keys(reply || {});
  if (expected && kind !== expected) throw new ApiError("internal", `Unexpected answer ${kind}, wanted ${expected}.`);
  return reply[kind];
}
