// The dashboard in a real browser, as a person would use it: sign in with
// a one-time link from `appforge dashboard`, generate an app (offline
// template provider) and save it, read its files, run it and open it, the
// overview (at phone width too, and its picture for the README), edit a
// file, fail an edit, read the diff, roll back, add and delete a file, see
// an edit, a stop and a restart made from the CLI on the open page, stop
// it, set a setting and a secret (the secret masked, its value in no answer
// the page got), download its export, delete it, see a crashing app fail
// with its traceback, its missing setting and a Fix button, sign out.
//
// Run by tests/tests/dashboard_browser.rs against a real appforged:
//   DASHBOARD_URL=http://127.0.0.1:PORT/ SCREENSHOT_DIR=target/dashboard-screenshots \
//   APPFORGE=target/debug/appforge APPFORGE_SOCKET=… XDG_CONFIG_HOME=… USER_EMAIL=… \
//   NODE_PATH=.tools/node_modules node tests/browser/flow.mjs
// APPFORGE with APPFORGE_SOCKET and XDG_CONFIG_HOME is a client signed in
// as USER_EMAIL: the flow asks it for sign-in links.
// CHROMIUM names the browser (default /usr/bin/chromium); `make tools`
// installs playwright-core and Debian's chromium.
//
// Every wait is on a condition (a locator, a response, a download), never a
// fixed sleep; a change made from the CLI must show within STALE_MS. Any console error, page error or CSP violation fails the run.

import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const require = createRequire(import.meta.url);

const BASE = process.env.DASHBOARD_URL;
const SHOTS = process.env.SCREENSHOT_DIR || "target/dashboard-screenshots";
/** Where the README's picture of the overview goes, when set. */
const OVERVIEW_PNG = process.env.OVERVIEW_PNG || "";
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const APPFORGE = process.env.APPFORGE;
const USER_EMAIL = process.env.USER_EMAIL;
/** Generation and runs: the checks install, import, start and test the app. */
const LONG = 120_000;
const SHORT = 20_000;
/** How soon the page shows a change made elsewhere (its event stream). */
const STALE_MS = 3_000;
const PROMPT = "a todo app with title and done flag";
const EDIT_LINE = "Edited in the browser test.";
/** An app that warns in colour, then crashes on import with a traceback. */
const CRASHING_APP = `import os
import sys

from flask import Flask

app = Flask(__name__)
TOKEN = os.environ.get("CRASHER_TOKEN")
print("\\033[33mwarning: no database\\033[0m", file=sys.stderr, flush=True)
raise RuntimeError("crashing on purpose: the database is missing")
`;
/** A secret set on the page: it must never come back to it. */
const SECRET = "sk-browser-5e0c9a7d41b2f863";
const OTHER_LINE = "Edited by someone else meanwhile.";
const CLI_LINE = "Edited from the CLI while the page was open.";
const EXPECTED_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "frame-src http://127.0.0.1:* http://localhost:*; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const started = Date.now();
let current = "starting";

function log(message) {
  const t = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
  console.log(`[${t} s] ${message}`);
}

function die(message) {
  console.error(`FAILED at step "${current}": ${message}`);
  process.exit(1);
}

if (!BASE) die("DASHBOARD_URL is not set (e.g. http://127.0.0.1:7070/)");
if (!APPFORGE || !USER_EMAIL) die("APPFORGE (a client signed in as USER_EMAIL) and USER_EMAIL must be set");
if (!fs.existsSync(CHROMIUM)) {
  die(`no browser at ${CHROMIUM}: \`make tools\` installs Debian's chromium (or set CHROMIUM)`);
}
let chromium;
try {
  ({ chromium } = require("playwright-core"));
} catch (e) {
  die(`playwright-core cannot be loaded (NODE_PATH=${process.env.NODE_PATH || ""}): \`make tools\` installs it (${e.message})`);
}

// A hung browser must not hang the test run.
setTimeout(() => die("the whole flow took longer than 10 minutes"), 600_000).unref();

function step(name) {
  current = name;
  log(name);
}

function check(cond, message) {
  if (!cond) throw new Error(message);
}

/** Runs the signed-in CLI (`appforge ARGS…`), as someone in a terminal would. */
function cli(...args) {
  return execFileSync(APPFORGE, args, { encoding: "utf8" });
}

/** How far the page is wider than the window, in pixels (0: it fits). */
function overflow() {
  return page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
}

fs.mkdirSync(SHOTS, { recursive: true });

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ["--headless", "--no-sandbox", "--disable-background-networking"],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
const page = await context.newPage();
page.setDefaultTimeout(SHORT);

// Console errors, uncaught errors and CSP violations, of the page and its frames.
const problems = [];
page.on("console", (msg) => {
  const text = msg.text();
  if (msg.type() === "error" || /Content Security Policy/i.test(text)) {
    problems.push(`console ${msg.type()}: ${text} (${msg.location().url || "?"})`);
  }
});
page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
// The page's script modules, as the browser fetched them.
const scripts = [];
page.on("response", (response) => {
  if (response.request().resourceType() === "script") scripts.push(response);
});
// Every API answer the page reads, as text, so that a secret is looked for
// in all of them: the page's fetches are teed (the event stream included).
await page.addInitScript(() => {
  const original = window.fetch.bind(window);
  window.apiBodies = [];
  window.fetch = async (input, init) => {
    const response = await original(input, init);
    const url = typeof input === "string" ? input : input.url;
    if (!url.includes("/api/") || !response.body) return response;
    const [theirs, ours] = response.body.tee();
    const at = window.apiBodies.push("") - 1;
    (async () => {
      const reader = ours.getReader();
      const decoder = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        window.apiBodies[at] += decoder.decode(value, { stream: true });
      }
    })().catch(() => {});
    return new Response(theirs, { status: response.status, statusText: response.statusText, headers: response.headers });
  };
});
await page.addInitScript(() => {
  document.addEventListener("securitypolicyviolation", (e) => {
    console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI}`);
  });
});

async function shot(name) {
  const file = path.join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file });
  log(`  screenshot ${file}`);
}

const origin = new URL(BASE).origin;

/** The API's key, once the sign-in link has handed it to the page. */
let apiKey = null;

/** Where the API's endpoint `name` is: under the key, once known. */
function apiUrl(name) {
  return new URL(apiKey ? `/api/${apiKey}/${name}` : `/api/${name}`, BASE).href;
}

/** One protocol request from outside the page (sharing its cookies): the
 * final line of the answer, parsed. */
async function rawCall(request, csrf) {
  const response = await context.request.post(apiUrl("call"), {
    headers: { "Content-Type": "application/json", Origin: origin, ...(csrf ? { "X-CSRF-Token": csrf } : {}) },
    data: JSON.stringify(request),
    failOnStatusCode: false,
  });
  const lines = (await response.text()).split("\n").filter((l) => l.trim());
  return { status: response.status(), last: lines.length ? JSON.parse(lines[lines.length - 1]) : null };
}

/** A one-time sign-in link, from `appforge dashboard --no-open --json`. */
function signInLink() {
  const out = JSON.parse(execFileSync(APPFORGE, ["--json", "dashboard", "--no-open"], { encoding: "utf8" }));
  check(out.expires_in_s === 60, `odd link: ${JSON.stringify(out)}`);
  return out.url;
}

function storedToken() {
  return page.evaluate(() => localStorage.getItem("appforge.csrf") || "");
}

async function alertText() {
  return (await page.locator("#alert").isVisible()) ? await page.locator("#alert-text").textContent() : "";
}

/** Waits for `locator` to be visible, failing at once with its message when
 * the page shows an error instead. */
async function until(locator, timeout = SHORT) {
  const alert = page.locator("#alert");
  await locator.filter({ visible: true }).or(alert.filter({ visible: true })).first().waitFor({ timeout });
  if ((await alert.isVisible()) && !(await locator.first().isVisible())) {
    throw new Error(`the page shows an error: ${await alertText()}`);
  }
}

try {
  // ---------------------------------------------------------------------------
  step("open the dashboard");
  const first = await page.goto(BASE);
  check(first.ok(), `GET / answered ${first.status()}`);
  const csp = first.headers()["content-security-policy"];
  check(csp === EXPECTED_CSP, `GET / has Content-Security-Policy ${JSON.stringify(csp)}`);
  await page.locator("#view-signin").waitFor();
  await page.locator("#signin-how", { hasText: "appforge dashboard" }).waitFor();
  // Every module loaded and ran: nothing reported so far, every script a 200 of JavaScript.
  check(problems.length === 0, `the page reported on load:\n  ${problems.join("\n  ")}`);
  check(scripts.length > 1, `the page loaded ${scripts.length} script(s), not its modules`);
  for (const response of scripts) {
    const type = response.headers()["content-type"] || "";
    check(response.status() === 200 && type.startsWith("text/javascript"), `${response.url()} answered ${response.status()} ${type}`);
  }
  log(`  ${scripts.length} script modules loaded`);
  check((await page.locator("form#signin-form, form#signup-form").count()) === 0, "the page still has password forms");
  check((await context.cookies(BASE)).length === 0, "GET / set a cookie");
  await shot("signin");

  step("without a link, the API gives nothing, and nothing signs up or in");
  {
    // Without the key that the sign-in hands to the page, the API is not found.
    const noSession = await rawCall("Whoami", null);
    check(noSession.status === 404, `a call without a session answered ${noSession.status}`);
    check(noSession.last && noSession.last.error && noSession.last.error.code === "unauthenticated", `no unauthenticated error: ${JSON.stringify(noSession.last)}`);
    const made = "a".repeat(64);
    for (const request of [{ Signup: { email: "eve@example.com", password: "eve-password-123" } }, { Login: { email: USER_EMAIL, password: "x".repeat(12) } }]) {
      const r = await rawCall(request, made);
      check(r.status === 404, `${Object.keys(request)[0]} over HTTP answered ${r.status}: ${JSON.stringify(r.last)}`);
    }
    check((await context.cookies(BASE)).length === 0, "a refused sign-in set a cookie");
  }

  // ---------------------------------------------------------------------------
  step("sign in with a link from `appforge dashboard`");
  const link = signInLink();
  await page.goto(link);
  await until(page.locator("#view-projects"));
  await page.locator("#who-email", { hasText: USER_EMAIL }).waitFor();
  check(await page.locator("#signout").isVisible(), "no sign-out button once signed in");
  check(!page.url().includes("csrf") && !page.url().includes("token"), `the address bar keeps a secret: ${page.url()}`);
  apiKey = await page.evaluate(() => localStorage.getItem("appforge.api") || "");
  check(/^[0-9a-f]{32,}$/.test(apiKey), `the page holds no API key: ${JSON.stringify(apiKey)}`);
  {
    // The session cookie's path is the API's: the browser sends it nowhere
    // else, so never to an app on another port of 127.0.0.1.
    check((await context.cookies(BASE)).length === 0, `a cookie is sent to /: ${JSON.stringify(await context.cookies(BASE))}`);
    const cookies = await context.cookies(apiUrl("call"));
    const session = cookies.find((c) => c.name === "appforge_session");
    check(
      session && session.httpOnly && session.sameSite === "Strict" && session.path === `/api/${apiKey}/`,
      `odd session cookie: ${JSON.stringify(cookies)}`,
    );
    const again = await context.request.get(link, { maxRedirects: 0, failOnStatusCode: false });
    check(again.status() === 403, `a used link answered ${again.status()}`);
    check(/appforge dashboard/.test(await again.text()), "a used link does not say what to do");
  }

  step("session cookies tossed by an app on another port sign no one out");
  // What an app's `Set-Cookie: appforge_session=…; Path=…` leaves in the
  // jar (cookies ignore ports); none can have the API's path.
  await context.addCookies(
    ["/", "/api/", "/api/call"].map((p, i) => ({ name: "appforge_session", value: `x${i}`, domain: "127.0.0.1", path: p })),
  );
  {
    const sent = (await context.cookies(apiUrl("call"))).filter((c) => c.name === "appforge_session");
    check(sent.length === 3 && sent.some((c) => c.path === `/api/${apiKey}/`), `the jar: ${JSON.stringify(sent)}`);
  }
  await page.reload();
  await until(page.locator("#view-projects"));
  await page.locator("#who-email", { hasText: USER_EMAIL }).waitFor();
  await page.locator("#list-empty").waitFor();
  check(!(await page.locator("#alert").isVisible()), `an alert with tossed cookies: ${await alertText()}`);
  {
    const me = await rawCall("Whoami", await storedToken());
    check(me.status === 200 && me.last && me.last.reply && me.last.reply.User.email === USER_EMAIL, `a signed-in call with tossed cookies: ${me.status} ${JSON.stringify(me.last)}`);
  }

  step("terminal text on the page: colour as classes, every other control shown");
  {
    const rendered = await page.evaluate(async () => {
      // The page's own module: a script from 'self', as the CSP allows.
      const { terminal } = await import("/assets/terminal.js");
      const t = terminal();
      const box = document.createElement("pre");
      box.append(...t.render("\u001b[1;31mred\u001b[0m \u001b]0;owned\u0007 \u001b[2J\u001b[H \u009b6n \u202egnp.exe"));
      // An escape cut in two between chunks.
      box.append(...t.render("\u001b["), ...t.render("32mgreen"));
      return { html: box.innerHTML, text: box.textContent };
    });
    log(`  ${rendered.html}`);
    check(/<span class="sgr-bold sgr-fg-1">red<\/span>/.test(rendered.html), `no red span: ${rendered.html}`);
    check(/<span class="sgr-fg-2">green<\/span>/.test(rendered.html), `a cut escape: ${rendered.html}`);
    check(!/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202e]/.test(rendered.text), `a control passed through: ${JSON.stringify(rendered.text)}`);
    for (const shown of ["␛]0;owned␇", "␛[2J", "␛[H", "<U+009B>", "<U+202E>"]) {
      check(rendered.text.includes(shown), `${shown} is not shown: ${JSON.stringify(rendered.text)}`);
    }
    check((rendered.html.match(/class="esc"/g) || []).length >= 5, `escapes not marked: ${rendered.html}`);
  }

  // ---------------------------------------------------------------------------
  step("generate an app (template provider), streamed");
  await page.fill("#gen-prompt", PROMPT);
  await page.selectOption("#gen-provider", "template");
  check(!(await page.locator("#gen-save").isChecked()), "save is on by default");
  await page.click("#gen-submit");
  // Busy while it works: the button is disabled and a step is shown.
  await page.locator('[data-testid="progress-steps"] li').first().waitFor({ timeout: LONG });
  await until(page.locator("#gen-result"), LONG);
  const outcome = await page.locator("#gen-outcome").textContent();
  log(`  outcome: ${outcome.replace(/\s+/g, " ").trim()}`);
  check(/checks passed/.test(outcome), `the checks did not pass: ${outcome}`);
  check(/install passed/.test(outcome), `the outcome lists no check steps: ${outcome}`);
  check(await page.locator("#gen-submit").isEnabled(), "Generate stays disabled after the work");
  // The unsaved files can be read before saving.
  await page.locator('#gen-files .chip[data-path="app.py"]').click();
  await page.locator('[data-testid="gen-file-view"] .tok-keyword').first().waitFor();

  step("save the generation");
  await page.fill("#gen-save-name", "browser-todo");
  await page.click("#gen-save-submit");
  await until(page.locator('[data-testid="gen-saved-link"]'));
  await page.locator('[data-testid="project-row"]', { hasText: "browser-todo" }).waitFor();
  await page.locator('[data-testid="project-row"]', { hasText: "checks passed" }).waitFor();
  await page.click("#gen-dismiss");
  await page.locator("#gen-progress").waitFor({ state: "hidden" });
  await shot("projects");

  // ---------------------------------------------------------------------------
  step("the project's files");
  await page.click('[data-testid="project-row"] a');
  await page.locator("#view-project").waitFor();
  await page.locator("#project-title", { hasText: "browser-todo" }).waitFor();
  for (const file of ["app.py", "README.md", "requirements.txt"]) {
    await page.locator(`[data-testid="file"][data-path="${file}"]`).waitFor();
  }
  await page.locator("#file-name", { hasText: "app.py" }).waitFor();
  check((await page.locator("#file-view .tok-keyword").count()) > 0, "app.py has no highlighted keyword");
  check((await page.locator("#file-view .tok-string").count()) > 0, "app.py has no highlighted string");
  const appPy = await page.locator("#file-view .src").textContent();
  check(/Flask/.test(appPy), "app.py as shown does not mention Flask");
  const projectUrl = page.url();
  const projectId = Number(projectUrl.match(/#\/projects\/(\d+)/)[1]);
  await shot("project");

  // ---------------------------------------------------------------------------
  step("run the app");
  await page.click("#app-run");
  await until(page.locator("#app-url"), LONG);
  const appUrl = await page.locator("#app-url").getAttribute("href");
  log(`  the app runs at ${appUrl}`);
  check(/^http:\/\/(127\.0\.0\.1|localhost):\d+\/?/.test(appUrl), `odd app URL ${appUrl}`);
  await page.locator("#app-state", { hasText: "running" }).waitFor();
  check(await page.locator("#app-run").isDisabled(), "Run stays enabled while the app runs");

  step("open the app: its URL answers, the preview shows it");
  const answer = await context.request.get(appUrl, { failOnStatusCode: false });
  check(answer.status() === 200, `the app answered ${answer.status()}`);
  await page.click("#tab-preview");
  const frame = page.frameLocator("#preview");
  await frame.locator("body").waitFor({ timeout: SHORT });
  const frameText = await frame.locator("body").innerText();
  check(frameText.trim().length > 0, "the preview frame is empty");
  await shot("preview");

  step("live logs");
  await page.click("#tab-logs");
  await page.locator("#logs-state", { hasText: "Following" }).waitFor();
  await page.waitForFunction(() => document.getElementById("logs-view").textContent.trim().length > 0, null, { timeout: LONG });

  step("the running apps overview");
  await page.click("#nav-apps");
  await page.locator("#view-apps").waitFor();
  await page.locator(`[data-testid="app-row"][data-project-id="${projectId}"]`, { hasText: "running" }).waitFor();
  await page.waitForFunction(() => document.getElementById("usage-note").textContent.trim().length > 0);
  const usageNote = await page.locator("#usage-note").textContent();
  check(!/not available/.test(usageNote), `Usage failed: ${usageNote}`);
  await page.locator("#apps-updated", { hasText: "1 app supervised" }).waitFor();
  // The charts have a value axis and clock times under them.
  await page.locator('[data-testid="usage-card"] svg.chart text.tick').first().waitFor();
  {
    const ticks = await page.locator('[data-testid="usage-card"] svg.chart.cpu text.tick').allTextContents();
    check(ticks.some((t) => /%/.test(t)), `the CPU chart has no value labels: ${JSON.stringify(ticks)}`);
    check(ticks.some((t) => /\d{1,2}:\d{2}/.test(t)), `the CPU chart has no time labels: ${JSON.stringify(ticks)}`);
  }
  await shot("apps");
  if (OVERVIEW_PNG) {
    await page.screenshot({ path: OVERVIEW_PNG });
    log(`  screenshot ${OVERVIEW_PNG}`);
  }

  step("the overview at phone width: no sideways scrolling, rows as cards");
  await page.setViewportSize({ width: 390, height: 844 });
  {
    const wider = await overflow();
    check(wider <= 0, `the overview is ${wider}px wider than a 390px screen`);
    const row = page.locator(`[data-testid="app-row"][data-project-id="${projectId}"]`);
    const name = await row.locator("th").boundingBox();
    check(name && name.width > 150, `the app's name gets ${name && name.width}px: it wraps a letter a line`);
    for (const label of ["CPU", "Memory", "Address"]) {
      const cell = row.locator(`td[data-label="${label}"]`);
      const box = await cell.boundingBox();
      check(box && box.x >= 0 && box.x + box.width <= 390, `${label} is off the screen: ${JSON.stringify(box)}`);
    }
  }
  await shot("apps-phone");
  await page.setViewportSize({ width: 1280, height: 800 });

  // ---------------------------------------------------------------------------
  step("edit README.md as a new version");
  await page.goto(projectUrl);
  await page.locator("#project-title", { hasText: "browser-todo" }).waitFor();
  await page.click("#tab-files");
  await page.click('[data-testid="file"][data-path="README.md"]');
  await page.locator("#file-name", { hasText: "README.md" }).waitFor();
  await page.click("#file-edit");
  const before = await page.inputValue("#edit-text");
  await page.fill("#edit-text", `${before.replace(/\n?$/, "\n")}${EDIT_LINE}\n`);
  await page.click("#edit-save");
  await until(page.locator('[data-testid="edit-outcome"]'), LONG);
  const edited = await page.locator('[data-testid="edit-outcome"]').textContent();
  log(`  ${edited.replace(/\s+/g, " ").trim()}`);
  check(/Saved version 2/.test(edited), `the edit did not save version 2: ${edited}`);
  await page.locator("#file-view .src", { hasText: EDIT_LINE }).waitFor();

  step("the new version's diff");
  await page.click('[data-testid="show-diff"]');
  await page.locator("#diff-box").waitFor();
  await page.locator("#diff-view .dl.add", { hasText: EDIT_LINE }).waitFor();
  check((await page.locator("#diff-view .dl.file").count()) > 0, "the diff has no file header");

  step("an edit that fails its checks shows why beside the editor, not as the last save's outcome");
  {
    await page.click("#tab-files");
    await page.click('[data-testid="file"][data-path="app.py"]');
    await page.click("#file-edit");
    const good = await page.inputValue("#edit-text");
    const broken = `${good.replace(/\n?$/, "\n")}def broken(:\n    pass\n`;
    await page.fill("#edit-text", broken);
    // No repair round: the edit fails as written.
    await page.fill("#proj-repair-rounds", "0");
    await page.click("#edit-save");
    const error = page.locator("#edit-form #edit-error");
    await error.waitFor({ timeout: LONG });
    const text = await error.textContent();
    log(`  ${text.replace(/\s+/g, " ").trim().slice(0, 200)}`);
    check(/SyntaxError|syntax/i.test(text), `the error beside the editor does not name the syntax error: ${text}`);
    check(await error.isVisible(), "the editor's error is not shown");
    const box = await error.boundingBox();
    const viewport = page.viewportSize();
    check(box && box.y >= 0 && box.y < viewport.height, `the editor's error is out of view: ${JSON.stringify(box)}`);
    check(!(await page.locator("#alert").isVisible()), `the failure went to the top alert: ${await alertText()}`);
    check((await page.locator('[data-testid="edit-outcome"]').count()) === 0, "the last save's outcome stays beside the failed edit");
    check((await page.inputValue("#edit-text")) === broken, "the failed edit's text is gone");
    await page.fill("#proj-repair-rounds", "");
    await page.click("#edit-cancel");
    await error.waitFor({ state: "hidden" });
    await page.locator("#project-badges", { hasText: "v2" }).waitFor();
  }

  step("an edit from a version that is no longer the newest is refused, clearly");
  {
    // The page starts editing version 2; meanwhile someone else saves version 3.
    await page.click("#tab-files");
    await page.click('[data-testid="file"][data-path="README.md"]');
    await page.click("#file-edit");
    await page.fill("#edit-text", "This edit loses the race.\n");
    const token = await storedToken();
    const shown = await rawCall({ ShowProject: { project: String(projectId), version: null, file: null } }, token);
    check(shown.last && shown.last.reply, `ShowProject from outside failed: ${JSON.stringify(shown.last)}`);
    const files = shown.last.reply.Project.files.map((f) =>
      f.path === "README.md" ? { path: f.path, content: `${f.content}${OTHER_LINE}\n` } : f,
    );
    const other = await rawCall(
      { EditProject: { project: String(projectId), base_version: 2, files, checks: { check: false, keep_broken: false, repair_rounds: null } } },
      token,
    );
    check(other.last && other.last.reply && other.last.reply.Saved.version === 3, `the other edit: ${JSON.stringify(other.last)}`);
    await page.click("#edit-save");
    await page.locator("#edit-error").waitFor({ timeout: LONG });
    const conflict = await page.locator("#edit-error").textContent();
    log(`  ${conflict}`);
    check(/changed since version 2/.test(conflict), `the conflict is not explained: ${conflict}`);
    check((await page.inputValue("#edit-text")) === "This edit loses the race.\n", "the refused edit's text is gone");
    await page.click("#edit-reload");
    await page.locator("#file-view .src", { hasText: OTHER_LINE }).waitFor();
    await page.locator("#project-badges", { hasText: "v3" }).waitFor();
  }

  step("roll back to version 1");
  await page.click("#tab-history");
  await page.locator('[data-testid="history-row"][data-version="3"]').waitFor();
  await page.locator('[data-testid="history-row"][data-version="1"] [data-testid="history-rollback"]').click();
  await until(page.locator('[data-testid="history-row"][data-version="4"]', { hasText: "rollback" }), LONG);
  await page.locator("#diff-view .dl.del", { hasText: OTHER_LINE }).waitFor({ timeout: LONG });
  await page.locator("#diff-view .dl.del", { hasText: EDIT_LINE }).waitFor();
  await shot("history");
  await page.click("#tab-files");
  await page.click('[data-testid="file"][data-path="README.md"]');
  await page.locator("#file-name", { hasText: "README.md" }).waitFor();
  check(!(await page.locator("#file-view .src").textContent()).includes(EDIT_LINE), "README.md still has the edit after the rollback");
  await page.locator("#project-badges", { hasText: "v4" }).waitFor();

  step("improve by a prompt, streamed");
  await page.click("#tab-change");
  await page.fill("#improve-prompt", "add a priority field");
  await page.selectOption("#change-provider", "template");
  await page.click("#improve-submit");
  await until(page.locator('#change-outcome [data-testid="saved-as"]'), LONG);
  const improved = await page.locator("#change-outcome").textContent();
  log(`  ${improved.replace(/\s+/g, " ").trim()}`);
  check(/version 5/.test(improved), `the improvement did not save version 5: ${improved}`);
  await page.locator("#project-badges", { hasText: "v5" }).waitFor();
  await page.click("#tab-files");
  await page.click('[data-testid="file"][data-path="app.py"]');
  await page.locator("#file-view .src", { hasText: "priority" }).first().waitFor();

  // ---------------------------------------------------------------------------
  step("add a file, then delete it, each as a new version");
  {
    const NEW_FILE = "static/extra.css";
    await page.fill("#new-file-path", NEW_FILE);
    await page.click('[data-testid="new-file-add"]');
    await page.locator("#edit-form").waitFor();
    check((await page.inputValue("#edit-text")) === "", "a new file does not start empty");
    await page.fill("#edit-text", "body { color: teal; }\n");
    await page.click("#edit-save");
    await until(page.locator('[data-testid="edit-outcome"]', { hasText: "Saved version 6" }), LONG);
    await page.locator(`[data-testid="file"][data-path="${NEW_FILE}"]`).waitFor();
    await page.locator("#file-name", { hasText: NEW_FILE }).waitFor();
    await page.locator("#file-view .src", { hasText: "color: teal" }).waitFor();
    check((await page.inputValue("#new-file-path")) === "", "the new file's path stays in its box");

    // A path the daemon refuses: the reason is shown, the text kept, nothing saved.
    await page.fill("#new-file-path", "../escape.py");
    await page.click('[data-testid="new-file-add"]');
    await page.fill("#edit-text", "print('out')\n");
    await page.click("#edit-save");
    await page.locator("#edit-error").waitFor({ timeout: LONG });
    const refused = await page.locator("#edit-error").textContent();
    log(`  ${refused}`);
    check(refused.length > 0, "a refused path says nothing");
    check((await page.inputValue("#edit-text")) === "print('out')\n", "the refused file's text is gone");
    await page.click("#edit-cancel");
    await page.locator("#project-badges", { hasText: "v6" }).waitFor();

    // A path the project has: told, and nothing opened.
    await page.fill("#new-file-path", "app.py");
    await page.click('[data-testid="new-file-add"]');
    await page.locator("#new-file-error").waitFor();
    const existing = await page.locator("#new-file-error").textContent();
    check(/already has app\.py/.test(existing), `an existing path: ${existing}`);
    check(await page.locator("#edit-form").isHidden(), "the editor opened on an existing path");

    await page.click(`[data-testid="file"][data-path="${NEW_FILE}"]`);
    page.once("dialog", (dialog) => dialog.accept());
    await page.click("#file-delete");
    await until(page.locator('[data-testid="edit-outcome"]', { hasText: "Saved version 7" }), LONG);
    await page.locator(`[data-testid="file"][data-path="${NEW_FILE}"]`).waitFor({ state: "detached" });
    await page.locator("#project-badges", { hasText: "v7" }).waitFor();
  }

  // ---------------------------------------------------------------------------
  step("phone width");
  await page.setViewportSize({ width: 390, height: 844 });
  await page.locator("#tab-files").scrollIntoViewIfNeeded();
  const wider = await overflow();
  check(wider <= 0, `the project page is ${wider}px wider than a 390px screen`);
  await page.evaluate(() => window.scrollTo(0, 0));
  await shot("project-phone");
  await page.setViewportSize({ width: 1280, height: 800 });

  // ---------------------------------------------------------------------------
  step("a version saved from the CLI shows on the open page at once");
  {
    await page.click("#tab-files");
    await page.click('[data-testid="file"][data-path="README.md"]');
    const readme = await page.locator("#file-view .src").textContent();
    execFileSync(APPFORGE, ["edit", "browser-todo", "--file", "README.md", "--stdin", "--no-check"], {
      encoding: "utf8",
      input: `${readme.replace(/\n?$/, "\n")}${CLI_LINE}\n`,
    });
    await page.locator("#project-badges", { hasText: "v8" }).waitFor({ timeout: STALE_MS });
    await page.locator("#file-view .src", { hasText: CLI_LINE }).waitFor({ timeout: STALE_MS });
  }

  step("a stop from the CLI shows on the open page at once");
  await page.locator("#app-state", { hasText: "running" }).waitFor();
  cli("stop", "browser-todo");
  {
    const stoppedAt = Date.now();
    await page.locator("#app-state", { hasText: "not running" }).waitFor({ timeout: STALE_MS });
    await page.locator("#app-url").waitFor({ state: "hidden", timeout: STALE_MS });
    await page.waitForFunction(() => !document.getElementById("app-run").disabled, null, { timeout: STALE_MS });
    log(`  shown ${Date.now() - stoppedAt} ms after \`appforge stop\` returned`);
  }

  step("run it again from the page, and a restart from the CLI shows too");
  await page.click("#app-run");
  await until(page.locator("#app-url"), LONG);
  await page.locator("#app-state", { hasText: "running" }).waitFor();
  {
    const pidOf = async () => (await page.locator("#app-state").textContent()).match(/pid (\d+)/)?.[1];
    const before = await pidOf();
    check(before, `no pid shown: ${await page.locator("#app-state").textContent()}`);
    cli("restart", "browser-todo");
    await page.waitForFunction(
      (old) => {
        const m = document.getElementById("app-state").textContent.match(/running pid (\d+)/);
        return m && m[1] !== old;
      },
      before,
      { timeout: STALE_MS },
    );
  }

  step("settings and a secret: set on the page, the app restarted with them, the secret never shown again");
  {
    const pidOf = async () => (await page.locator("#app-state").textContent()).match(/running pid (\d+)/)?.[1];
    await page.click("#tab-settings");
    await page.locator("#settings-empty").waitFor();
    const before = await pidOf();
    await page.fill("#setting-name", "MODE");
    await page.fill("#setting-value", "fast");
    await page.click("#setting-save");
    await page.locator("#status", { hasText: "Saved MODE" }).waitFor({ timeout: LONG });
    await page.locator('[data-testid="setting-row"][data-name="MODE"]', { hasText: "fast" }).waitFor();
    // The page follows the restart the change caused.
    await page.waitForFunction(
      (old) => {
        const m = document.getElementById("app-state").textContent.match(/running pid (\d+)/);
        return m && m[1] !== old;
      },
      before,
      { timeout: LONG },
    );
    check(/restarted/.test(await page.locator("#status").textContent()), `the status does not say the app restarted: ${await page.locator("#status").textContent()}`);

    // A secret: typed into a password field, masked once saved.
    await page.fill("#setting-name", "API_KEY");
    await page.check("#setting-secret");
    check((await page.getAttribute("#setting-value", "type")) === "password", "a secret's value is typed in plain sight");
    await page.fill("#setting-value", SECRET);
    await page.click("#setting-save");
    await page.locator("#status", { hasText: "Saved API_KEY" }).waitFor({ timeout: LONG });
    const secretRow = page.locator('[data-testid="setting-row"][data-name="API_KEY"]');
    await secretRow.waitFor();
    const shown = await secretRow.textContent();
    check(shown.includes("********") && shown.includes("secret"), `the secret is not shown masked: ${shown}`);
    check((await page.inputValue("#setting-value")) === "", "the secret's value stays in its field");
    await page.locator("#app-state", { hasText: "running" }).waitFor({ timeout: LONG });
    await shot("settings");

    // Changing it: the form is filled with its name, never its value.
    await secretRow.locator("button", { hasText: "Change" }).click();
    check((await page.inputValue("#setting-name")) === "API_KEY", "Change does not fill the name");
    check((await page.inputValue("#setting-value")) === "", "Change fills a secret's value");
    check(await page.isChecked("#setting-secret"), "Change does not keep it a secret");
    await page.fill("#setting-name", "");
    await page.uncheck("#setting-secret");

    // A name the daemon sets is refused, beside the form.
    await page.fill("#setting-name", "PORT");
    await page.fill("#setting-value", "1");
    await page.click("#setting-save");
    await page.locator("#settings-error").waitFor();
    const refused = await page.locator("#settings-error").textContent();
    check(/PORT/.test(refused) && /cannot be a setting/.test(refused), `the refusal does not say why: ${refused}`);
    check(!(await page.locator("#alert").isVisible()), `the refusal went to the top alert: ${await alertText()}`);
    await page.fill("#setting-name", "");
    await page.fill("#setting-value", "");

    // The CLI sees what the page set, the secret masked.
    const listed = JSON.parse(cli("--json", "env", "browser-todo"));
    const names = listed.settings.map((x) => `${x.name}=${x.value}`).join(" ");
    check(names === "API_KEY=******** MODE=fast", `appforge env lists ${names}`);

    // Remove one.
    page.once("dialog", (dialog) => dialog.accept());
    await page.locator('[data-testid="setting-row"][data-name="MODE"] [data-testid="setting-remove"]').click();
    await page.locator("#status", { hasText: "Removed MODE" }).waitFor({ timeout: LONG });
    await page.locator('[data-testid="setting-row"][data-name="MODE"]').waitFor({ state: "detached" });
    await page.locator("#app-state", { hasText: "running" }).waitFor({ timeout: LONG });

    // A setting made from the CLI shows on the open tab.
    cli("env", "browser-todo", "set", "FROM_CLI=yes");
    await page.locator('[data-testid="setting-row"][data-name="FROM_CLI"]', { hasText: "yes" }).waitFor({ timeout: STALE_MS });
    await page.locator("#app-state", { hasText: "running" }).waitFor({ timeout: LONG });

    // The secret reached the page once, typed: nothing the daemon sent holds it.
    const html = await page.content();
    check(!html.includes(SECRET), "the secret's value is in the page's HTML");
    const bodies = await page.evaluate(() => window.apiBodies);
    check(bodies.length > 5, `only ${bodies.length} API answers were seen`);
    check(bodies.some((b) => b.includes('"API_KEY"')), "no API answer listed the secret's name");
    const leaked = bodies.filter((b) => b.includes(SECRET));
    check(leaked.length === 0, `an API answer holds the secret's value: ${leaked[0] && leaked[0].slice(0, 200)}`);
    await page.click("#tab-files");
  }

  step("stop the app");
  await page.locator("#app-stop").waitFor();
  await page.click("#app-stop");
  await page.locator("#app-url").waitFor({ state: "hidden", timeout: LONG });
  await page.locator("#app-run").waitFor();
  await page.waitForFunction(() => !document.getElementById("app-run").disabled, null, { timeout: LONG });
  const afterStop = await context.request.get(appUrl, { failOnStatusCode: false, timeout: 5000 }).then(
    (r) => r.status(),
    () => "refused",
  );
  check(afterStop === "refused", `the app still answers after stop (${afterStop})`);

  // ---------------------------------------------------------------------------
  step("download the export");
  const [download] = await Promise.all([page.waitForEvent("download", { timeout: LONG }), page.click("#export-zip")]);
  const zipPath = path.join(SHOTS, "export.zip");
  await download.saveAs(zipPath);
  const zip = fs.readFileSync(zipPath);
  log(`  ${download.suggestedFilename()}: ${zip.length} bytes`);
  check(zip.length > 100, `the export is ${zip.length} bytes`);
  check(zip.subarray(0, 4).equals(Buffer.from([0x50, 0x4b, 0x03, 0x04])), "the export is not a zip file");
  check(/\.zip$/.test(download.suggestedFilename()), `the export is called ${download.suggestedFilename()}`);

  // ---------------------------------------------------------------------------
  step("delete the project");
  page.once("dialog", (dialog) => dialog.accept());
  await page.click("#project-delete");
  await page.locator("#view-projects").waitFor();
  await page.locator("#list-empty").waitFor();

  // ---------------------------------------------------------------------------
  step("a crashing app: the failure beside the Run button, its traceback in colour, a Fix button");
  {
    cli("generate", PROMPT, "--save", "--name", "crasher", "--provider", "template");
    // Unchecked: the checks would refuse an app that crashes on import.
    execFileSync(APPFORGE, ["edit", "crasher", "--file", "app.py", "--stdin", "--no-check"], {
      encoding: "utf8",
      input: CRASHING_APP,
    });
    // The open list follows projects made elsewhere.
    await page.locator('[data-testid="project-row"]', { hasText: "crasher" }).waitFor({ timeout: STALE_MS });
    await page.locator('[data-testid="project-row"]', { hasText: "crasher" }).locator("a").click();
    await page.locator("#project-title", { hasText: "crasher" }).waitFor();
    await page.locator("#project-badges", { hasText: "v2" }).waitFor();
    await page.click("#app-run");
    await page.locator("#app-error").waitFor({ timeout: LONG });
    const why = await page.locator("#app-error").textContent();
    log(`  ${why.split("\n")[0]}`);
    check(/did not start/.test(why), `the failed run does not say so beside Run: ${why}`);
    check(!(await page.locator("#alert").isVisible()), `the failed run went to the top alert: ${await alertText()}`);
    await page.locator("#app-state", { hasText: "failed" }).waitFor({ timeout: STALE_MS });
    // It reads a setting it was not given: named beside its state.
    await page.locator('#app-state [data-testid="app-missing-setting"]', { hasText: "missing setting: CRASHER_TOKEN" }).waitFor();
    // Its settings say so too, and offer to add it.
    await page.click("#tab-settings");
    await page.locator('#settings-missing [data-testid="missing-setting"]', { hasText: "missing setting: CRASHER_TOKEN" }).waitFor();
    await page.locator("#settings-missing button", { hasText: "add it" }).click();
    check((await page.inputValue("#setting-name")) === "CRASHER_TOKEN", "“add it” does not fill the name");
    await page.click("#tab-files");
    await page.locator("#app-failure").waitFor();
    await page.locator("#app-fix").waitFor();
    check(!/appforge fix/.test(await page.locator("#app-state").textContent()), "the page shows the CLI's `appforge fix` hint");
    const failureLog = page.locator("#app-failure-log");
    await failureLog.locator("text=the database is missing").first().waitFor();
    check(/Traceback/.test(await failureLog.textContent()), `no traceback in the failure box: ${await failureLog.textContent()}`);
    await shot("failed-app");
    // Its log: the colour it printed is rendered, not shown as codes.
    await page.click("#tab-logs");
    await page.locator("#logs-view .sgr-fg-3", { hasText: "warning: no database" }).first().waitFor();
    const logText = await page.locator("#logs-view").textContent();
    check(!logText.includes("\u241b"), `a colour code is shown raw in the log: ${logText.slice(0, 500)}`);

    // Fix: the change panel opens and tells how it went, there.
    await page.click("#tab-files");
    await page.click("#app-fix");
    await page.locator("#panel-change").waitFor();
    await page.locator('#change-outcome [data-testid="saved-as"], #change-error:not([hidden])').first().waitFor({ timeout: LONG });
    const fixed = (await page.locator("#change-outcome").textContent()) || (await page.locator("#change-error").textContent());
    log(`  fix: ${fixed.replace(/\s+/g, " ").trim().slice(0, 200)}`);
    check(!(await page.locator("#alert").isVisible()), `the fix's outcome went to the top alert: ${await alertText()}`);
    if (/restarted on the new version/.test(fixed)) {
      // The app came back: the page says so, and the failure box goes.
      await page.locator("#app-state", { hasText: "running" }).waitFor({ timeout: STALE_MS });
      await page.locator("#app-failure").waitFor({ state: "hidden", timeout: STALE_MS });
    }
  }

  // ---------------------------------------------------------------------------
  step("sign out");
  const lastToken = await storedToken();
  await page.click("#signout");
  await page.locator("#view-signin").waitFor();
  {
    const after = await rawCall("ListProjects", lastToken);
    const code = after.last && after.last.error && after.last.error.code;
    check(code === "unauthenticated", `a call after sign-out answered ${JSON.stringify(after.last)}`);
  }
  await page.reload();
  await page.locator("#view-signin").waitFor();
  check(!(await page.locator("#who").isVisible()), "the signed-out page still shows the user");

  // ---------------------------------------------------------------------------
  step("no console errors, page errors or CSP violations");
  check(problems.length === 0, `the page reported:\n  ${problems.join("\n  ")}`);
} catch (err) {
  try {
    await page.screenshot({ path: path.join(SHOTS, "failure.png"), fullPage: true });
    console.error(`screenshot of the failure: ${path.join(SHOTS, "failure.png")}`);
    console.error(`status line: ${await page.locator("#status").textContent()}`);
    const alert = await alertText();
    if (alert) console.error(`alert: ${alert}`);
  } catch {
    // the page itself is gone
  }
  if (problems.length) console.error(`console problems so far:\n  ${problems.join("\n  ")}`);
  await browser.close().catch(() => {});
  die(err && err.stack ? err.stack : String(err));
}

await browser.close();
log(`the dashboard flow passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
