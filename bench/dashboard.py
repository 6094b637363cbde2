#!/usr/bin/env python3
"""Benchmark of the web dashboard: first page's time to interactive and the daemon's RSS (not a test).

Measured in one run, with the release binaries, the offline scaffolder
(`--provider template`) and a warm Python environment:
 1. The daemon's memory (VmRSS from /proc/PID/status and Pss from
    /proc/PID/smaps_rollup, sampled every 0.5 s over --hold seconds per
    phase, medians), for a daemon with the dashboard off (`--web-addr off`,
    the baseline) and one with it on, each fresh and idle, then after the
    same client work (signup, `generate --save`, `run`: one app running)
    idle, then with the app logging a line a second. The daemon with the
    dashboard also with one Chromium page signed in and idle on the project
    list, with one page on the app's Logs tab following the live log while
    the app logs a line a second, and idle again once the browser is gone.
 2. Time to interactive of the first page on that warm daemon: --runs loads
    (after --warmup unmeasured ones), each in a fresh browser context, from
    navigation start to the signed-out page being shown (app.js has run,
    shown how to sign in, laid out, and set the status line to "Not signed
    in: …"), with the navigation timing
    (HTML received, domInteractive, DOMContentLoaded) along the way; the
    same for a signed-in load of the project list (#/, to the list shown);
    and, interleaved as the baseline, a fresh context loading the daemon's
    smallest file (/assets/favicon.svg) to its load event.

The browser half is bench/dashboard.mjs (playwright-core and Chromium, both
installed by `make tools`; CHROMIUM names another browser). Run from the
repository root after `make release` and `make tools`:
`python3 bench/dashboard.py [--runs 20] [--env-dir DIR]`. Everything it
starts (daemons, apps, browsers) is stopped at the end, on error and on
Ctrl-C too.
"""
import argparse
import glob
import http.client
import json
import os
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

from benchlib import BIN, ROOT, Appforged, Cleanup, descendants, finish, kib_field, log, machine, med_p95, read, stop_popen

HELPER = os.path.join(ROOT, "bench", "dashboard.mjs")
NODE_PATH = os.path.join(ROOT, ".tools", "node_modules")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
PROMPT = "a todo app with title and done flag"
EMAIL, PASSWORD = "bench@example.com", "bench-password"
SAMPLE_EVERY = 0.5   # seconds between memory samples
LOG_EVERY = 1.0      # seconds between requests to the app (one log line each)
# Far from the tests' 21000-21999.
PORTS_OFF, PORTS_ON, PORTS_WARM = "31000-31029", "31030-31059", "31060-31089"


# ---------------------------------------------------------------- /proc


def memory(pid):
    """(VmRSS, Pss) of a process in KiB; Pss is None where smaps_rollup is unreadable."""
    return (kib_field(read(f"/proc/{pid}/status"), "VmRSS"),
            kib_field(read(f"/proc/{pid}/smaps_rollup"), "Pss"))


# ---------------------------------------------------------------- figures


def table(head, rows):
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    right = [i > 0 for i in range(len(head))]

    def line(cells):
        return "| " + " | ".join(str(c).rjust(w) if r else str(c).ljust(w)
                                 for c, w, r in zip(cells, widths, right)) + " |"
    log(line(head))
    log("|" + "|".join(("-" * (w + 1) + ":") if r else ("-" * (w + 2))
                       for w, r in zip(widths, right)) + "|")
    for r in rows:
        log(line(r))


# ---------------------------------------------------------------- clean-up


# ---------------------------------------------------------------- the daemon

class Daemon(Appforged):
    """A daemon with the dashboard on or off, as a user works with it."""

    def __init__(self, work, name, web, env_dir, ports, cleanup):
        args = ["--env-dir", env_dir, "--port-range", ports,
                "--web-addr", "127.0.0.1:0" if web else "off"]
        python = os.path.join(ROOT, ".venv", "bin", "python")
        if os.path.exists(python):
            args += ["--python", python]
        super().__init__(os.path.join(work, name), args, cleanup, name=f"appforged ({name})")
        self.web_url = self.json("status").get("web_url")
        if web and not self.web_url:
            raise RuntimeError(f"the dashboard is off; see {self.log_path}")

    def work_as_a_user(self):
        """signup, generate --save, run, five requests: one app running. Returns it."""
        self.call("signup", EMAIL, "--password-stdin", input=f"{PASSWORD}\n".encode())
        saved = self.json("generate", PROMPT, "--save", "--name", "todo")
        if saved.get("check_status") != "passed":
            raise RuntimeError(f"the generated app did not pass its checks: {saved}")
        app = self.json("run", "todo")
        if app.get("status") != "running":
            raise RuntimeError(f"the app is not running: {app}")
        for _ in range(5):
            get(app["url"])
        return app


def get(url, timeout=5):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request("GET", u.path or "/")
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


class Requests:
    """GETs the app once every LOG_EVERY s (a log line each) until stopped."""

    def __init__(self, url):
        self.url, self.sent, self.ok = url, 0, 0
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.halt.wait(LOG_EVERY):
            self.sent += 1
            self.ok += get(self.url) == 200

    def stop(self):
        self.halt.set()
        self.thread.join()


def sample(pid, seconds):
    """VmRSS and Pss samples (KiB) every SAMPLE_EVERY s for `seconds`."""
    rss, pss = [], []
    end = time.monotonic() + seconds
    while True:
        r, p = memory(pid)
        if r is None:
            raise RuntimeError(f"pid {pid} is gone")
        rss.append(r)
        if p is not None:
            pss.append(p)
        if time.monotonic() + SAMPLE_EVERY > end:
            return rss, pss
        time.sleep(SAMPLE_EVERY)


# ---------------------------------------------------------------- the browser

class Browser:
    """One run of bench/dashboard.mjs; stdout read as JSON lines."""

    def __init__(self, work, args, cleanup, name, daemon=None):
        env = dict(os.environ, NODE_PATH=NODE_PATH, CHROMIUM=CHROMIUM)
        if daemon is not None:
            # The page signs in with links from this daemon's signed-in client.
            env.update(APPFORGE=daemon.client, APPFORGE_SOCKET=daemon.env["APPFORGE_SOCKET"],
                       XDG_CONFIG_HOME=daemon.env["XDG_CONFIG_HOME"])
        self.err_path = os.path.join(work, f"browser-{name}.err")
        self.name = name
        with open(self.err_path, "ab") as err:
            self.proc = subprocess.Popen(["node", HELPER, *args], env=env, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=err, start_new_session=True)
        self.cleanup = cleanup
        cleanup.track([self.proc.pid])
        cleanup.add(f"browser ({name})", self.stop)
        self.lines = queue.Queue()
        threading.Thread(target=self.reader, daemon=True).start()

    def reader(self):
        for raw in self.proc.stdout:
            try:
                self.lines.put(json.loads(raw))
            except ValueError:
                pass
        self.lines.put(None)

    def next(self, timeout=120):
        try:
            doc = self.lines.get(timeout=timeout)
        except queue.Empty:
            doc = None
        # Chromium and its helpers, tracked for the clean-up.
        self.cleanup.track(descendants(self.proc.pid))
        if doc is None:
            raise RuntimeError(f"the browser ({self.name}) ended or hung: "
                               f"{(read(self.err_path) or b'').decode(errors='replace')[-1500:]}")
        return doc

    def rest(self, timeout=120):
        """Closes its standard input and reads what it prints until it exits."""
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        docs = []
        while True:
            try:
                doc = self.lines.get(timeout=timeout)
            except queue.Empty:
                break
            if doc is None:
                break
            docs.append(doc)
        self.proc.wait(timeout=60)
        if self.proc.returncode != 0:
            raise RuntimeError(f"the browser ({self.name}) exited {self.proc.returncode}: "
                               f"{(read(self.err_path) or b'').decode(errors='replace')[-1500:]}")
        return docs

    def stop(self):
        if self.proc.poll() is None:
            self.cleanup.track(descendants(self.proc.pid))
            if self.proc.stdin and not self.proc.stdin.closed:
                try:
                    self.proc.stdin.close()
                except OSError:
                    pass
            stop_popen(self.proc, grace=15)


# ---------------------------------------------------------------- phases

def memory_phase(results, key, daemon, seconds, what):
    rss, pss = sample(daemon.pid, seconds)
    results[key] = (rss, pss)
    pss_text = f", Pss {statistics.median(pss) / 1024:.1f} MiB" if pss else ""
    log(f"  {what}: VmRSS {statistics.median(rss) / 1024:.1f} MiB{pss_text} "
        f"(median of {len(rss)} samples)")


def run_daemon_off(work, env_dir, args, cleanup, results):
    log("\n[1a] dashboard off (--web-addr off): the baseline")
    d = Daemon(work, "off", False, env_dir, PORTS_OFF, cleanup)
    log(f"  appforged pid {d.pid}: {' '.join(d.argv[1:])}")
    time.sleep(args.settle)
    memory_phase(results, "off-fresh", d, args.hold, "fresh, idle")
    app = d.work_as_a_user()
    time.sleep(args.settle)
    memory_phase(results, "off-app", d, args.hold, "after signup, generate, run; idle")
    hits = Requests(app["url"])
    try:
        memory_phase(results, "off-logging", d, args.hold,
                     f"the app logging a line every {LOG_EVERY:g} s")
    finally:
        hits.stop()
    d.stop(cleanup)


def run_daemon_on(work, env_dir, args, cleanup, results):
    log("\n[1b] dashboard on (--web-addr 127.0.0.1:0)")
    d = Daemon(work, "on", True, env_dir, PORTS_ON, cleanup)
    log(f"  appforged pid {d.pid}: {' '.join(d.argv[1:])}; dashboard {d.web_url}")
    time.sleep(args.settle)
    memory_phase(results, "on-fresh", d, args.hold, "fresh, idle, no browser")
    app = d.work_as_a_user()
    time.sleep(args.settle)
    memory_phase(results, "on-app", d, args.hold, "after signup, generate, run; idle, no browser")

    page = Browser(work, ["hold", d.web_url, EMAIL, PASSWORD, "projects"], cleanup, "projects", d)
    ready = page.next()
    memory_phase(results, "on-projects", d, args.hold,
                 f"one page signed in, idle on the project list ({ready.get('status')!r})")
    done = page.rest()
    problems = [p for doc in done for p in doc.get("problems", [])]

    hits = Requests(app["url"])
    try:
        memory_phase(results, "on-logging", d, args.hold,
                     f"the app logging a line every {LOG_EVERY:g} s, no browser")
        page = Browser(work, ["hold", d.web_url, EMAIL, PASSWORD, "logs", str(app["project_id"])],
                       cleanup, "logs", d)
        page.next()
        sent = hits.sent
        memory_phase(results, "on-logs", d, args.hold,
                     "one page on the Logs tab following the live log, the app logging")
        sent = hits.sent - sent
        done = page.rest()
    finally:
        hits.stop()
    received = next((doc.get("log_lines_received") for doc in done if "done" in doc), None)
    state = next((doc.get("logs_state") for doc in done if "done" in doc), None)
    problems += [p for doc in done for p in doc.get("problems", [])]
    log(f"  the page received {received} log line(s) for {sent} request(s) meanwhile; "
        f"its log state: {state!r}")
    results["logs-received"] = (received, sent)
    time.sleep(args.settle)
    memory_phase(results, "on-after", d, args.hold, "no browser again (its pages closed); idle")
    if problems:
        log("  the page reported: " + "; ".join(problems))
    return d


def run_tti(work, d, args, cleanup, results):
    log(f"\n[2] time to interactive on the warm daemon: {args.runs} loads of each kind "
        f"(after {args.warmup} warm-up loads), a fresh browser context each, interleaved")
    b = Browser(work, ["tti", d.web_url, str(args.runs), str(args.warmup), EMAIL, PASSWORD],
                cleanup, "tti", d)
    docs = b.rest(timeout=300)
    loads = [doc for doc in docs if doc.get("measured")]
    problems = sorted({p for doc in loads if doc["kind"] != "baseline"
                       for p in doc.get("problems", [])})
    if problems:
        log("  the page reported: " + "; ".join(problems))
    by_kind = {}
    for doc in loads:
        by_kind.setdefault(doc["kind"], []).append(doc)
    if len(by_kind.get("signin", [])) != args.runs:
        raise RuntimeError(f"expected {args.runs} measured loads, got {len(by_kind.get('signin', []))}")
    results["tti"] = by_kind


def report(results, args):
    log("\n## Daemon memory (MiB; medians of the samples of each phase, "
        f"every {SAMPLE_EVERY:g} s over {args.hold:g} s)\n")

    def cell(key, which):
        if key not in results:
            return "–"
        xs = results[key][which]
        return f"{statistics.median(xs) / 1024:.1f}" if xs else "n/a"

    rows = [
        ("fresh, idle", "off-fresh", "on-fresh"),
        ("one app running (signup, generate, run), idle", "off-app", "on-app"),
        (f"the app logging a line every {LOG_EVERY:g} s", "off-logging", "on-logging"),
        ("+ one page signed in, idle on the project list", None, "on-projects"),
        ("+ one page following the app's live log (app logging)", None, "on-logs"),
        ("browser closed again, idle", None, "on-after"),
    ]
    table(("phase", "off: VmRSS", "off: Pss", "on: VmRSS", "on: Pss"),
          [(what, cell(off, 0) if off else "–", cell(off, 1) if off else "–",
            cell(on, 0), cell(on, 1)) for what, off, on in rows])
    med = lambda k: statistics.median(results[k][0]) / 1024  # noqa: E731
    if all(k in results for k in ("off-fresh", "on-fresh", "on-app", "off-app", "on-projects",
                                  "on-logging", "on-logs")):
        log(f"\nVmRSS the dashboard adds: fresh {med('on-fresh') - med('off-fresh'):+.1f} MiB, "
            f"with one app {med('on-app') - med('off-app'):+.1f} MiB; "
            f"one idle page on the project list {med('on-projects') - med('on-app'):+.1f} MiB; "
            f"one page following the live log {med('on-logs') - med('on-logging'):+.1f} MiB "
            f"(each against the phase before it without a browser).")
    if "logs-received" in results:
        r, s = results["logs-received"]
        log(f"The live-log page received {r} line(s) for {s} request(s) to the app during its phase.")

    if "tti" not in results:
        return
    t = results["tti"]
    log(f"\n## Time to interactive, warm daemon (ms from navigation start, the page's clock; "
        f"{args.runs} loads each, a fresh browser context each)\n")
    rows = []

    def row(what, kind, field):
        value = field if callable(field) else (lambda doc: doc.get(field))
        xs = [x for x in map(value, t.get(kind, [])) if x is not None]
        if xs:
            m, p = med_p95(xs)
            rows.append((what, f"{m:.1f}", f"{p:.1f}"))

    row("baseline: /assets/favicon.svg, load event", "baseline", "ready")
    row("first page: HTML received (responseEnd)", "signin", "response_end")
    row("first page: domInteractive", "signin", "dom_interactive")
    row("first page: DOMContentLoaded end (app.js has run)", "signin", "dcl_end")
    row("first page: Whoami answered", "signin", "api_end")
    row("**first page: signed-out view shown (TTI)**", "signin", "ready")
    row("first page: from Whoami answered to form usable", "signin",
        lambda doc: doc["ready"] - doc["api_end"] if doc.get("api_end") is not None else None)
    row("signed in, #/: domInteractive", "projects", "dom_interactive")
    row("**signed in, #/: project list shown (TTI)**", "projects", "ready")
    table(("load", "median", "p95"), rows)
    base = statistics.median(d["ready"] for d in t["baseline"])
    sign = statistics.median(d["ready"] for d in t["signin"])
    line = f"\nSign-in TTI minus the baseline (medians): {sign - base:.1f} ms"
    if t.get("projects"):
        proj = statistics.median(d["ready"] for d in t["projects"])
        line += f"; project list TTI minus the baseline: {proj - base:.1f} ms"
    log(line + ".")


# ---------------------------------------------------------------- main

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="measured page loads of each kind")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured page loads first")
    parser.add_argument("--hold", type=float, default=10.0,
                        help="seconds each memory phase lasts (default 10)")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds of quiet before an idle phase (default 2)")
    parser.add_argument("--env-dir", help="Python environments to reuse (default: a folder in "
                        "the temporary folder, made by a first, unmeasured generation)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    for name in ("appforged", "appforge-shim", "appforge"):
        if not os.access(os.path.join(BIN, name), os.X_OK):
            sys.exit(f"{os.path.join(BIN, name)} is missing: `make release` "
                     "(cargo build --release --workspace --bins)")
    if not os.path.exists(os.path.join(NODE_PATH, "playwright-core", "package.json")) \
            or not os.path.exists(CHROMIUM) or not shutil.which("node"):
        sys.exit(f"needs node, playwright-core in {NODE_PATH} and Chromium at {CHROMIUM}: `make tools`")

    def interrupted(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)

    work = tempfile.mkdtemp(prefix="appforge-bench-dashboard-")
    env_dir = os.path.abspath(args.env_dir) if args.env_dir else os.path.join(work, "envs")
    cleanup = Cleanup()
    results = {}
    started = time.time()
    try:
        log(f"machine: {machine()}")
        log(f"binaries: {BIN}; work folder: {work}; environments: {env_dir}")
        if not glob.glob(os.path.join(env_dir, "*", "bin", "python")):
            t0 = time.time()
            warm = Daemon(work, "warm-up", False, env_dir, PORTS_WARM, cleanup)
            warm.work_as_a_user()
            warm.stop(cleanup)
            log(f"warm-up daemon made the app's Python environment in {time.time() - t0:.1f} s")
        try:
            run_daemon_off(work, env_dir, args, cleanup, results)
            d = run_daemon_on(work, env_dir, args, cleanup, results)
            run_tti(work, d, args, cleanup, results)
            d.stop(cleanup)
        except Exception:
            if results:
                log("\n(the run failed; the figures so far)")
                report(results, args)
            raise
        report(results, args)
    except KeyboardInterrupt as e:
        log(f"\ninterrupted ({str(e) or 'Ctrl-C'}); cleaning up")
        raise SystemExit(130)
    finally:
        finish(cleanup, work, args.keep, started)


if __name__ == "__main__":
    main()
