#!/usr/bin/env python3
"""Soak run of a release appforged (not a test).

N Flask apps (default 100, made with the offline template provider and
spread over 3 accounts) run for M minutes (default 60) while, all at once:
 - an app's Python is killed with kill -9 every --crash-every seconds (a
   random running app), and the daemon restarts it;
 - `appforge restart` of a random app every --restart-every seconds;
 - the daemon probes every app's health (every --health-interval seconds);
 - 3 users work: each, every few seconds, one of `list`, `show`, `logs`,
   `ps`, and now and then an `edit` or an `improve` of one of its apps
   (offline provider; the new version is checked and the app follows it).
Every minute one line: elapsed minutes, the daemon's RSS, open descriptors,
threads and CPU seconds, the shims' total RSS and descriptors, and the apps
running. At the end each figure from minute --from (default 10) to the end:
the growth of the end (median of the last 3 samples) over the start (median
of the 3 samples from minute --from on); for CPU, of the CPU used per minute.
PASS when nothing grew by more than 5 %. Printed, never asserted.

Run from the repository root after `make release`:
`python3 bench/soak.py` (the hour) or `python3 bench/soak.py --minutes 3 --apps 10`
(a trial; --from is then clamped to a third of the run). Everything it starts
is stopped at the end, on error and on Ctrl-C too.
"""
import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from benchlib import (BIN, ROOT, Appforged, Cleanup, app_port, children, cmdline, descendants,
                      finish, kib_field, log, machine, read)

PROMPT = "a todo app with title and done flag"
IMPROVE_PROMPT = "add a note field to each item"
USERS = 3
TCK = os.sysconf("SC_CLK_TCK")
GROWTH_LIMIT = 5.0  # percent


# ---------------------------------------------------------------- /proc figures

def status_field(pid, name):
    raw = read(f"/proc/{pid}/status")
    return kib_field(raw, name) if raw else None


def fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def cpu_seconds(pid):
    raw = read(f"/proc/{pid}/stat")
    if raw is None:
        return 0.0
    fields = raw.rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TCK


def shims(daemon):
    return [p for p in children(daemon) if "__app-shim" in cmdline(p)]


def sample(daemon):
    sh = shims(daemon)
    apps = sum(1 for p in descendants(daemon) if app_port(p) is not None)
    return {
        "rss": status_field(daemon, "VmRSS") or 0,
        "fds": fds(daemon),
        "threads": status_field(daemon, "Threads") or 0,
        "cpu": cpu_seconds(daemon),
        "shim_rss": sum(status_field(p, "VmRSS") or 0 for p in sh),
        "shim_fds": sum(fds(p) for p in sh),
        "apps": apps,
    }


# ---------------------------------------------------------------- the users

class User:
    """One account, with a client configuration (its session) of its own."""

    def __init__(self, af, i):
        self.af = af
        self.email = f"soak{i}@example.com"
        self.env = dict(af.env, XDG_CONFIG_HOME=os.path.join(af.folder, f"config-{i}"))
        self.call("signup", self.email, "--password-stdin", input=b"soak-password\n")
        self.names = []
        self.changes = 0

    def call(self, *args, check=True, input=None, timeout=600):
        out = subprocess.run([self.af.client, *args], env=self.env, input=input,
                             capture_output=True, timeout=timeout)
        if check and out.returncode != 0:
            raise RuntimeError(f"appforge {' '.join(args)} ({self.email}) exited "
                               f"{out.returncode}: {out.stderr.decode(errors='replace').strip()}")
        return out


class Tally:
    """Counts of each action and its failures, kept across threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.done = {}
        self.failed = {}
        self.examples = []

    def error(self, what, e):
        """An action that could not finish (a time-out, a client that failed to start)."""
        with self.lock:
            self.done[what] = self.done.get(what, 0) + 1
            self.failed[what] = self.failed.get(what, 0) + 1
            if len(self.examples) < 8:
                self.examples.append(f"{what}: {e}"[:300])

    def note(self, what, out):
        with self.lock:
            self.done[what] = self.done.get(what, 0) + 1
            if out is not None and out.returncode != 0:
                self.failed[what] = self.failed.get(what, 0) + 1
                if len(self.examples) < 8:
                    err = out.stderr.decode(errors="replace").strip().splitlines()
                    self.examples.append(f"{what}: exit {out.returncode}: "
                                         f"{err[-1] if err else ''}"[:300])


def make_apps(users, n):
    """n projects over the users, round robin; each user's first checked, the
    rest --no-check (the template provider gives the same files each time)."""
    jobs = []
    for i in range(n):
        user = users[i % len(users)]
        name = f"app-{i:03d}"
        user.names.append(name)
        jobs.append((user, name, len(user.names) == 1))
    for user, name, _ in [j for j in jobs if j[2]]:
        user.call("generate", PROMPT, "--save", "--name", name)

    def one(job):
        user, name, _ = job
        user.call("generate", PROMPT, "--save", "--name", name, "--no-check")

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(one, [j for j in jobs if not j[2]]))

    def run(job):
        job[0].call("run", job[1], timeout=900)

    run(jobs[0])  # makes (or finds) the apps' environment, once
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(run, jobs[1:]))


def crasher(af, stop, every, tally):
    """kill -9 of a random app's Python, every `every` seconds."""
    while not stop.wait(every):
        pythons = [p for p in descendants(af.pid) if app_port(p) is not None]
        if pythons:
            try:
                os.kill(random.choice(pythons), signal.SIGKILL)
                tally.note("kill -9", None)
            except OSError:
                pass


def restarter(users, stop, every, tally):
    while not stop.wait(every):
        user = random.choice(users)
        try:
            out = user.call("restart", random.choice(user.names), check=False, timeout=300)
            tally.note("restart", out)
        except Exception as e:  # keep going; the tally reports it
            tally.error("restart", e)


def worker(user, stop, tally, change_every):
    """One user: a read-only command every 2 to 8 s, a change now and then."""
    next_change = time.time() + random.uniform(change_every / 2, change_every)
    while not stop.wait(random.uniform(2, 8)):
        try:
            next_change = one_action(user, tally, next_change, change_every)
        except Exception as e:  # keep going; the tally reports it
            tally.error("user action", e)


def one_action(user, tally, next_change, change_every):
    """One command of a user; returns when the next change is due."""
    name = random.choice(user.names)
    if time.time() >= next_change:
        next_change = time.time() + change_every
        user.changes += 1
        if user.changes % 2:
            shown = user.call("show", name, "--file", "app.py", check=False)
            if shown.returncode != 0:
                tally.note("show", shown)
                return next_change
            text = shown.stdout + f"\n# soak edit {user.changes}\n".encode()
            out = user.call("edit", name, "--file", "app.py", "--stdin", input=text,
                            check=False, timeout=600)
            tally.note("edit", out)
        else:
            out = user.call("improve", name, IMPROVE_PROMPT, check=False, timeout=600)
            tally.note("improve", out)
        return next_change
    what = random.choice(["list", "show", "logs", "ps"])
    argv = {"list": ["list"], "show": ["show", name], "logs": ["logs", name, "-n", "100"],
            "ps": ["ps"]}[what]
    tally.note(what, user.call(*argv, check=False, timeout=120))
    return next_change


# ---------------------------------------------------------------- the report

LINE = ("{min:>4} {rss:>10.1f} {fds:>6} {threads:>8} {cpu:>9.2f} {shim_rss:>12.1f} "
        "{shim_fds:>9} {apps:>5}")
HEAD = (f"{'min':>4} {'RSS MiB':>10} {'fds':>6} {'threads':>8} {'CPU s':>9} "
        f"{'shims MiB':>12} {'shim fds':>9} {'apps':>5}")


def growth(samples, start):
    """Largest growth, in percent, of each figure from minute `start` to the end."""
    # Medians of 3 samples at each end, fewer when a short run has not
    # 6 samples from `start` on, so that the two ends never overlap.
    w = max(1, min(3, (len(samples) - start) // 2))
    base = samples[start:start + w]
    tail = samples[-w:]
    out = {}
    for key in ("rss", "fds", "threads", "shim_rss", "shim_fds", "apps"):
        a = statistics.median(s[key] for s in base)
        b = statistics.median(s[key] for s in tail)
        out[key] = (b - a) / a * 100 if a else 0.0
    # CPU: of the CPU used per minute, not of the running total.
    per_min = [samples[i]["cpu"] - samples[i - 1]["cpu"] for i in range(1, len(samples))]
    a = statistics.median(per_min[start - 1:start - 1 + w])
    b = statistics.median(per_min[-w:])
    out["cpu per minute"] = (b - a) / a * 100 if a else 0.0
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--apps", type=int, default=100)
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--from", dest="start", type=int, default=10,
                        help="minute from which growth is judged (default 10)")
    parser.add_argument("--crash-every", type=float, default=20.0, help="seconds (default 20)")
    parser.add_argument("--restart-every", type=float, default=30.0, help="seconds (default 30)")
    parser.add_argument("--change-every", type=float, default=120.0,
                        help="seconds between a user's edits or improves (default 120)")
    parser.add_argument("--health-interval", type=float, default=30.0,
                        help="the daemon's probe interval, seconds (default 30)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    start = args.start
    if args.minutes < start + 6:
        start = max(1, args.minutes // 3)
    for b in ("appforged", "appforge"):
        if not os.access(os.path.join(BIN, b), os.X_OK):
            sys.exit(f"{os.path.join(BIN, b)} is missing: run `make release`")

    def interrupted(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)

    work = tempfile.mkdtemp(prefix="appforge-soak-")
    cleanup = Cleanup()
    started = time.time()
    stop = threading.Event()
    threads = []
    try:
        log(f"machine: {machine()}")
        log(f"{args.apps} apps over {USERS} accounts for {args.minutes} min; kill -9 every "
            f"{args.crash_every:.0f} s, restart every {args.restart_every:.0f} s, probes every "
            f"{args.health_interval:.0f} s, an edit or improve per user every "
            f"{args.change_every:.0f} s; growth judged from minute {start}; work folder {work}")
        af = Appforged(os.path.join(work, "appforge"),
                       ["--env-dir", os.path.join(ROOT, ".tools", "bench", "appforge-envs"),
                        "--port-range", "24000-24999",
                        "--health-interval", str(args.health_interval),
                        "--web-addr", "127.0.0.1:0"], cleanup)
        users = [User(af, i) for i in range(USERS)]
        t0 = time.time()
        make_apps(users, args.apps)
        log(f"made and started {args.apps} apps in {time.time() - t0:.1f} s")
        tally = Tally()
        threads = [threading.Thread(target=crasher, args=(af, stop, args.crash_every, tally)),
                   threading.Thread(target=restarter,
                                    args=(users, stop, args.restart_every, tally))]
        threads += [threading.Thread(target=worker, args=(u, stop, tally, args.change_every))
                    for u in users]
        samples = [dict(sample(af.pid), min=0)]
        log(HEAD)
        log(LINE.format(**{**samples[0], "rss": samples[0]["rss"] / 1024,
                           "shim_rss": samples[0]["shim_rss"] / 1024}))
        begin = time.time()
        for t in threads:
            t.start()
        for minute in range(1, args.minutes + 1):
            time.sleep(max(0.0, begin + minute * 60 - time.time()))
            if af.proc.poll() is not None:
                raise RuntimeError(f"appforged ended ({af.proc.returncode}); see {af.log_path}")
            s = dict(sample(af.pid), min=minute)
            samples.append(s)
            log(LINE.format(**{**s, "rss": s["rss"] / 1024, "shim_rss": s["shim_rss"] / 1024}))
        stop.set()
        for t in threads:
            t.join(timeout=600)
        log("\nactions (failed): " + ", ".join(
            f"{k} {v}" + (f" ({tally.failed[k]})" if k in tally.failed else "")
            for k, v in sorted(tally.done.items())))
        for e in tally.examples:
            log(f"  failure: {e}")
        g = growth(samples, start)
        worst = max(g, key=g.get)
        w = max(1, min(3, (len(samples) - start) // 2))
        log(f"\ngrowth from minute {start} to minute {args.minutes} (median of {w} samples at "
            f"each end): " + ", ".join(f"{k} {v:+.1f} %" for k, v in g.items()))
        verdict = "PASS" if g[worst] <= GROWTH_LIMIT else "MISS"
        log(f"{verdict}  largest growth: {worst} {g[worst]:+.1f} % (limit {GROWTH_LIMIT:.0f} %)")
    except KeyboardInterrupt as e:
        log(f"\ninterrupted ({str(e) or 'Ctrl-C'}); cleaning up")
        raise SystemExit(130)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=600)
        finish(cleanup, work, args.keep, started)


if __name__ == "__main__":
    main()
