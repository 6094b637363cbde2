// The page's one stream of server-sent events (`GET /api/KEY/events`): the
// signed-in account's apps, sent whenever one of them changes, wherever the
// change was made (this page, the CLI, a crash). Read with fetch rather
// than EventSource, which cannot send the CSRF header every API request
// carries. Lost streams are opened again, a little later each time.

import { apiUrl, headers, isAbort } from "./api.js";

const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 15_000;

const handlers = new Map();
let controller = null;

/** Calls `fn(data)` for each event `name` (its data parsed as JSON). */
export function onEvent(name, fn) {
  handlers.set(name, fn);
}

/** Opens the stream, unless it is open. */
export function startEvents() {
  if (controller) return;
  controller = new AbortController();
  follow(controller);
}

/** Closes the stream (signed out). */
export function stopEvents() {
  if (controller) controller.abort();
  controller = null;
  document.body.dataset.live = "";
}

async function follow(own) {
  let wait = RETRY_FIRST_MS;
  while (controller === own) {
    try {
      const response = await fetch(apiUrl("events"), {
        headers: headers({ Accept: "text/event-stream" }),
        credentials: "same-origin",
        cache: "no-store",
        signal: own.signal,
      });
      if (!response.ok) {
        // Signed out, or a daemon that has restarted since (its API key
        // is another): no retry can succeed.
        const error = await errorOf(response);
        if (response.status === 401 || error.code === "unauthenticated") {
          dispatch("signed-out", { message: error.message });
          return;
        }
      }
      if (response.ok && response.body) {
        document.body.dataset.live = "1";
        wait = RETRY_FIRST_MS;
        await read(response.body);
      }
    } catch (err) {
      if (isAbort(err)) return;
      // The daemon is away (restarting, say): try again later.
    }
    document.body.dataset.live = "";
    if (controller !== own) return;
    await new Promise((resolve) => setTimeout(resolve, wait));
    wait = Math.min(wait * 2, RETRY_MAX_MS);
  }
}

async function errorOf(response) {
  try {
    const { code, message } = (await response.json()).error;
    return { code, message };
  } catch {
    return { code: "", message: "This browser is no longer signed in; run `appforge dashboard` in a terminal." };
  }
}

/** Reads `event:`/`data:` blocks, separated by a blank line, until the stream ends. */
async function read(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue; // a keep-alive comment
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") name = text;
        else if (field === "data") data.push(text);
      }
      if (data.length) {
        let parsed;
        try {
          parsed = JSON.parse(data.join("\n"));
        } catch {
          continue;
        }
        dispatch(name, parsed);
      }
    }
  }
}

function dispatch(name, data) {
  const fn = handlers.get(name);
  if (fn) fn(data);
}
