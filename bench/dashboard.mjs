// The browser half of bench/dashboard.py (a benchmark, not a test): drives
// Chromium through playwright-core against a running appforged's dashboard
// and prints JSON lines on stdout for the Python half to read.
//
//   node bench/dashboard.mjs tti  URL RUNS WARMUP [EMAIL PASSWORD]
//     Loads the dashboard RUNS times (after WARMUP unmeasured loads), each in
//     a fresh browser context, and prints one line per load. Each round, in
//     this order: the baseline (the daemon's smallest file,
//     /assets/favicon.svg, to its load event: the cost of a fresh context, a
//     connection and one request), the first page to its signed-out view being
//     shown, and (with EMAIL and PASSWORD) a signed-in load of the project
//     list (#/) to the list shown. Times are the page's own clock
//     (performance.now(), 0 at navigation start), taken by a
//     MutationObserver the moment the condition holds.
//   node bench/dashboard.mjs hold URL EMAIL PASSWORD projects|logs [PROJECT_ID]
//     Signs in with a link from `appforge dashboard` in one page, opens the project list or the
//     project's Logs tab (following the live log), prints {"ready": ...} and
//     stays idle until its standard input ends, then prints what the page
//     received meanwhile and exits.
//
// APPFORGE (with APPFORGE_SOCKET and XDG_CONFIG_HOME) is a client signed in
// as EMAIL: sign-in links come from `$APPFORGE --json dashboard --no-open`.
// NODE_PATH must reach playwright-core (`make tools` installs it into
// .tools/node_modules); CHROMIUM names the browser (default /usr/bin/chromium).

import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import fs from "node:fs";

const require = createRequire(import.meta.url);
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const TIMEOUT = 30_000;

function out(doc) {
  process.stdout.write(`${JSON.stringify(doc)}\n`);
}

function die(message) {
  process.stderr.write(`dashboard.mjs: ${message}\n`);
  process.exit(1);
}

if (!fs.existsSync(CHROMIUM)) die(`no browser at ${CHROMIUM}: \`make tools\` installs Debian's chromium (or set CHROMIUM)`);
let chromium;
try {
  ({ chromium } = require("playwright-core"));
} catch (e) {
  die(`playwright-core cannot be loaded (NODE_PATH=${process.env.NODE_PATH || ""}): \`make tools\` installs it (${e.message})`);
}

const [mode, BASE, ...rest] = process.argv.slice(2);
if (!BASE) die("usage: dashboard.mjs tti|hold URL ...");

// A hung browser must not hang the benchmark.
setTimeout(() => die("took longer than 15 minutes"), 900_000).unref();

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ["--headless", "--no-sandbox", "--disable-background-networking"],
});
let closing = false;
async function closeAndExit(code) {
  if (closing) return;
  closing = true;
  await browser.close().catch(() => {});
  process.exit(code);
}
process.on("SIGTERM", () => closeAndExit(143));
process.on("SIGINT", () => closeAndExit(130));

const VIEWPORT = { viewport: { width: 1280, height: 800 } };

/** Marks window.__ready = performance.now() once `kind`'s condition holds;
 * runs in the page before any of its scripts (and outside its CSP). */
function markReady(kind) {
  if (window.top !== window) return;
  const byId = (id) => document.getElementById(id);
  const conditions = {
    // app.js has run and shown the signed-out view: it is shown, the status
    // line says "Not signed in: …" (set right after) and the text on how to
    // sign in is laid out (has a box on the page).
    signin: () => {
      const view = byId("view-signin");
      const how = byId("signin-how");
      const status = byId("status");
      return Boolean(view && !view.hidden && how && status && status.textContent.startsWith("Not signed in") &&
        how.getClientRects().length > 0);
    },
    // Signed in: the project list is shown, loaded (the status line counts
    // the projects once ListProjects and Ps have answered) and nothing is busy.
    projects: () => {
      const view = byId("view-projects");
      const status = byId("status");
      return Boolean(view && !view.hidden && status && / project\(s\)\.$/.test(status.textContent) &&
        document.body && !document.body.hasAttribute("aria-busy"));
    },
  };
  const ready = conditions[kind];
  if (!ready) return;
  const observer = new MutationObserver(() => {
    if (window.__ready === undefined && ready()) {
      window.__ready = performance.now();
      observer.disconnect();
    }
  });
  observer.observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
}

function watchProblems(page, problems) {
  page.on("console", (msg) => {
    if (msg.type() === "error") problems.push(`console error: ${msg.text()}`);
  });
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
}

/** One load of `url` in a fresh context; returns the page's timings in ms. */
async function load(kind, url, storageState) {
  const context = await browser.newContext({ ...VIEWPORT, ...(storageState ? { storageState } : {}) });
  try {
    const page = await context.newPage();
    page.setDefaultTimeout(TIMEOUT);
    const problems = [];
    watchProblems(page, problems);
    if (kind !== "baseline") await page.addInitScript(markReady, kind);
    const response = await page.goto(url, { waitUntil: "load" });
    if (!response || !response.ok()) throw new Error(`GET ${url} answered ${response ? response.status() : "nothing"}`);
    if (kind !== "baseline") await page.waitForFunction(() => window.__ready !== undefined, null, { polling: 10 });
    const t = await page.evaluate(() => {
      const nav = performance.getEntriesByType("navigation")[0];
      const api = performance.getEntriesByType("resource").filter((r) => /^\/api\/[0-9a-f]+\/call$/.test(new URL(r.name).pathname));
      return {
        ready: window.__ready === undefined ? null : window.__ready,
        response_start: nav.responseStart,
        response_end: nav.responseEnd,
        dom_interactive: nav.domInteractive,
        dcl_end: nav.domContentLoadedEventEnd,
        load_end: nav.loadEventEnd,
        // The first protocol call (Whoami): sent, and its answer read.
        api_start: api.length ? api[0].startTime : null,
        api_end: api.length ? api[0].responseEnd : null,
        api_calls: api.length,
      };
    });
    if (kind === "baseline") t.ready = t.load_end;
    if (problems.length) t.problems = problems;
    return t;
  } finally {
    await context.close();
  }
}

/** Signs `page` in with a one-time link from `appforge dashboard`. */
async function signIn(page, email) {
  const link = JSON.parse(execFileSync(process.env.APPFORGE, ["--json", "dashboard", "--no-open"], { encoding: "utf8" })).url;
  await page.goto(link);
  await page.locator("#view-projects").waitFor();
  await page.locator("#who-email", { hasText: email }).waitFor();
}

async function tti([runs, warmup, email, password]) {
  const base = new URL(BASE);
  const favicon = new URL("/assets/favicon.svg", base).href;
  const list = new URL("#/", base).href;
  let storageState = null;
  if (email) {
    const context = await browser.newContext(VIEWPORT);
    const page = await context.newPage();
    page.setDefaultTimeout(TIMEOUT);
    await signIn(page, email);
    storageState = await context.storageState();
    await context.close();
  }
  const total = Number(warmup) + Number(runs);
  for (let i = 0; i < total; i++) {
    const measured = i >= Number(warmup);
    out({ round: i, measured, kind: "baseline", ...(await load("baseline", favicon)) });
    out({ round: i, measured, kind: "signin", ...(await load("signin", BASE)) });
    if (storageState) out({ round: i, measured, kind: "projects", ...(await load("projects", list, storageState)) });
  }
}

async function hold([email, password, view, projectId]) {
  const context = await browser.newContext(VIEWPORT);
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const problems = [];
  watchProblems(page, problems);
  await signIn(page, email);
  const lines = () => page.evaluate(() => document.getElementById("logs-view").textContent.split("\n").filter((l) => l).length);
  let before = 0;
  if (view === "logs") {
    await page.goto(new URL(`#/projects/${projectId}`, BASE).href);
    await page.locator("#view-project").waitFor();
    await page.locator("#app-state", { hasText: "running" }).waitFor();
    await page.click("#tab-logs");
    await page.locator("#logs-state", { hasText: "Following" }).waitFor();
    await page.waitForFunction(() => document.getElementById("logs-view").textContent.trim().length > 0);
    before = await lines();
  } else {
    await page.waitForFunction(() => / project\(s\)\.$/.test(document.getElementById("status").textContent));
  }
  out({ ready: view, status: await page.locator("#status").textContent() });
  // Idle until the Python half closes our standard input.
  process.stdin.resume();
  await new Promise((resolve) => process.stdin.on("end", resolve).on("close", resolve));
  const doc = { done: view, problems };
  if (view === "logs") {
    doc.log_lines_received = (await lines()) - before;
    doc.logs_state = await page.locator("#logs-state").textContent();
  }
  out(doc);
}

try {
  if (mode === "tti") await tti(rest);
  else if (mode === "hold") await hold(rest);
  else die(`unknown mode ${mode}`);
} catch (err) {
  process.stderr.write(`dashboard.mjs ${mode}: ${err && err.stack ? err.stack : err}\n`);
  await closeAndExit(1);
}
await closeAndExit(0);
