#!/usr/bin/env python3
"""Benchmark of appforge's supervision against supervisord and pm2 (not a test).

In one run, the same Flask apps (default: 20, then 100) run under appforged,
then supervisord, then pm2 (fork mode), one supervisor at a time, on
127.0.0.1 only. Every supervisor runs the same app.py with the same Python:
appforge its projects, made with the offline template provider; supervisord
and pm2 a copy of the project's folder each, started as
`python -m flask --app app run --host 127.0.0.1 --port P`.

For each supervisor and each number of apps:
 - the supervision's PSS (/proc/PID/smaps_rollup): the supervisor's root
   process plus every process between it and an app's Python (found by
   walking /proc parent links up from each app), plus any other process
   below the root that is not an app. For appforge: the daemon, every shim
   and every init; for supervisord: its own process; for pm2: its God daemon.
   For appforge also the per-app figure, shim + init of one app (median);
 - the idle CPU of those processes (utime + stime from /proc/PID/stat) over
   a fixed idle window, as ms of CPU per minute; appforged's health probes
   stay on (every 30 s, the default), the others probe nothing;
 - the status command's whole-process wall time: `appforge ps`,
   `supervisorctl status`, `pm2 jlist` (median of --calls runs);
 - kill -9 of one app's Python to the next HTTP 200 on its port, polled
   every 3 ms (median over --kills apps, a different app each time).
Then medians, ratios, and PASS/MISS against the targets, which are printed,
never asserted.

Run from the repository root after `make release` and `make bench-tools`:
`python3 bench/supervisor.py` (`--sizes 5 --idle 10` for a quick look).
Everything it starts is stopped at the end, on error and on Ctrl-C too.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from benchlib import (BIN, ROOT, Appforged, Cleanup, alive, app_port, cmdline, descendants, finish,
                      http_status, kib_field, log, machine, med_p95, read, stop_popen)

PROMPT = "a todo app with title and done flag"
POLL = 0.003            # seconds between HTTP polls after a kill
START_TIMEOUT = 600     # seconds for all apps of one size to serve
SETTLE = 5              # seconds of quiet before PSS, status and idle figures
HEALTH_INTERVAL = 30.0  # appforged's default
PER_APP_TARGET_KIB = 256
TCK = os.sysconf("SC_CLK_TCK")
BENCH_TOOLS = os.path.join(ROOT, ".tools", "bench")
SUPERVISORD = os.path.join(BENCH_TOOLS, "venv", "bin", "supervisord")
SUPERVISORCTL = os.path.join(BENCH_TOOLS, "venv", "bin", "supervisorctl")
PM2 = os.path.join(BENCH_TOOLS, "node_modules", ".bin", "pm2")


# ---------------------------------------------------------------- /proc

def ppid(pid):
    return kib_field(read(f"/proc/{pid}/status"), "PPid")


def pss_kib(pid):
    """Proportional set size, or None when the process is gone or unreadable."""
    return kib_field(read(f"/proc/{pid}/smaps_rollup"), "Pss")


def cpu_ticks(pid):
    """utime + stime of the whole process (its ended threads included)."""
    raw = read(f"/proc/{pid}/stat")
    if raw is None:
        return None
    fields = raw.rsplit(b")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


class Supervision:
    """The processes below `root` at one moment: the apps' Pythons (by
    port), the chain of processes between each app and the root, and the
    supervision's processes (the root, every chain, and anything else below
    the root that is neither an app nor below one)."""

    def __init__(self, root):
        self.root = root
        below = descendants(root)
        self.apps = {}
        for pid in below:
            port = app_port(pid)
            if port is not None:
                self.apps[port] = pid
        under_apps = set(self.apps.values())
        for pid in self.apps.values():
            under_apps |= descendants(pid)
        self.chains = {}
        for port, pid in self.apps.items():
            chain, p = [], ppid(pid)
            while p and p != root:
                chain.append(p)
                p = ppid(p)
            if p != root:
                raise RuntimeError(f"app on port {port} (pid {pid}) is not below pid {root}")
            self.chains[port] = chain
        self.pids = {root} | (below - under_apps)

    def pss(self):
        """(total KiB, unreadable pids) of the supervision's processes."""
        total, unreadable = 0, []
        for pid in self.pids:
            kib = pss_kib(pid)
            if kib is None:
                unreadable.append(pid)
            else:
                total += kib
        return total, unreadable

    def per_app_pss(self):
        """PSS of each app's chain (for appforge: its shim and init), KiB."""
        return [sum(pss_kib(p) or 0 for p in chain) for chain in self.chains.values()]

    def ticks(self):
        return {pid: cpu_ticks(pid) for pid in self.pids}


def idle_cpu_ms_per_min(sup, seconds):
    """CPU of the supervision's processes over `seconds` of quiet, in ms per
    minute: (all of them, the root alone, processes that ended meanwhile and
    so count nothing)."""
    before = sup.ticks()
    time.sleep(seconds)
    after = sup.ticks()
    used = {p: after[p] - before[p] for p in sup.pids
            if before[p] is not None and after[p] is not None}
    gone = [p for p in sup.pids if after[p] is None]

    def per_min(ticks):
        return ticks * 1000 / TCK * 60 / seconds
    return per_min(sum(used.values())), per_min(used.get(sup.root, 0)), gone


# ---------------------------------------------------------------- HTTP and ports

def wait_all_200(ports, timeout=START_TIMEOUT):
    deadline = time.time() + timeout
    pending = set(ports)
    while pending:
        pending = {p for p in pending if http_status(p) != 200}
        if not pending:
            return
        if time.time() > deadline:
            raise TimeoutError(f"{len(pending)} of {len(ports)} apps not serving after {timeout} s")
        time.sleep(0.25)


def wait_ports_free(ports, timeout=120):
    """Until no process listens on `ports` any more: a 200 from an app the
    previous supervisor left would count for the next one."""
    deadline = time.time() + timeout
    while True:
        busy = [p for p in ports if not port_free(p)]
        if not busy:
            return
        if time.time() > deadline:
            raise RuntimeError(f"{len(busy)} ports still in use, e.g. {busy[0]}")
        time.sleep(0.25)


def port_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_block(n, start=20000):
    """A block of n free ports below the kernel's ephemeral range."""
    try:
        limit = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    except (OSError, ValueError, IndexError):
        limit = 32768
    while start + n <= limit:
        bad = next((p for p in range(start, start + n) if not port_free(p)), None)
        if bad is None:
            return list(range(start, start + n))
        start = bad + 1
    raise RuntimeError(f"no block of {n} free ports below {limit}")


# ---------------------------------------------------------------- timings

def timed_calls(argv, env, runs, warmup=2):
    """Whole-process wall time of `argv`, in ms. The wait blocks in waitpid
    (`subprocess.run(timeout=…)` polls with sleeps and would round figures
    up); a timer kills a call that hangs."""
    samples = []
    for i in range(warmup + runs):
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        guard = threading.Timer(60, proc.kill)
        guard.start()
        proc.wait()
        end = time.perf_counter()
        guard.cancel()
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}")
        if i >= warmup:
            samples.append((end - start) * 1000)
    return samples


def kill_to_200(pid, port, timeout=30):
    """kill -9 `pid` (the app's Python) and time until its port answers 200
    again; a 200 counts only once the killed process is gone."""
    t0 = time.perf_counter()
    os.kill(pid, signal.SIGKILL)
    deadline = t0 + timeout
    gone = False
    while time.perf_counter() < deadline:
        gone = gone or not alive(pid)
        if gone and http_status(port, timeout=2) == 200:
            return (time.perf_counter() - t0) * 1000
        time.sleep(POLL)
    raise TimeoutError(f"port {port} did not serve again within {timeout} s of kill -9")


def fmt(samples, unit="ms"):
    med, p95 = med_p95(samples)
    return f"median {med:8.2f} {unit}  p95 {p95:8.2f} {unit}  (n={len(samples)})"


# ---------------------------------------------------------------- one measurement

def measure(root, ports, status, status_argv, status_env, args):
    """Every figure of one supervisor running the apps on `ports`."""
    n = len(ports)
    t0 = time.time()
    wait_all_200(ports)
    log(f"  all {n} serving ({time.time() - t0:.1f} s after the last start)")
    time.sleep(SETTLE)
    sup = Supervision(root)
    missing = set(ports) - set(sup.apps)
    if missing:
        raise RuntimeError(f"{len(missing)} apps not found below pid {root}, e.g. port "
                           f"{min(missing)}")
    pss, unreadable = sup.pss()
    per_app = sup.per_app_pss()
    log(f"  supervision: {len(sup.pids)} processes, PSS {pss / 1024:.2f} MiB"
        + (f" (unreadable: {unreadable})" if unreadable else ""))
    chain_len = statistics.median(len(c) for c in sup.chains.values())
    if chain_len:
        log(f"  per app ({chain_len:.0f} processes between the supervisor and the app): "
            f"PSS median {statistics.median(per_app):.0f} KiB, max {max(per_app)} KiB")
    label, status = status, timed_calls(status_argv, status_env, args.calls)
    log(f"  `{label}`: {fmt(status)}")
    cpu, root_cpu, gone = idle_cpu_ms_per_min(sup, args.idle)
    log(f"  idle CPU over {args.idle:.0f} s: {cpu:.1f} ms per minute"
        + (f" (the root process {root_cpu:.1f}, the others {cpu - root_cpu:.1f})"
           if len(sup.pids) > 1 else "")
        + (f"; {len(gone)} processes ended meanwhile" if gone else ""))
    kills = []
    for i in range(min(args.kills, n)):
        port = ports[(i * n) // min(args.kills, n)]
        pid = Supervision(root).apps.get(port)
        if pid is None:
            raise RuntimeError(f"no app process on port {port} before kill round {i}")
        kills.append(kill_to_200(pid, port))
        time.sleep(0.5)
    log(f"  kill -9 -> HTTP 200: {fmt(kills)}")
    return {"pss": pss, "per_app": statistics.median(per_app) if chain_len else None,
            "cpu": cpu, "status": statistics.median(status), "kill": statistics.median(kills),
            "procs": len(sup.pids)}


# ---------------------------------------------------------------- the apps

def make_projects(af, count, workers=2):
    """`count` projects of the same prompt: the first generation runs the
    checks (and so proves the app serves); the others are saved with
    --no-check, as the template provider gives the same files each time."""
    names = [f"app-{i:03d}" for i in range(count)]
    af.call("generate", PROMPT, "--save", "--name", names[0], timeout=600)

    def one(name):
        af.call("generate", PROMPT, "--save", "--name", name, "--no-check")

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, names[1:]))
    return names


def app_env(python, port):
    """The environment appforged gives an app (see daemon/src/supervisor/app.rs)."""
    return {
        "PATH": f"{os.path.dirname(python)}:/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/"),
        "LANG": "C.UTF-8",
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "VIRTUAL_ENV": os.path.dirname(os.path.dirname(python)),
        "PYTHONUNBUFFERED": "1",
    }


def flask_argv(python, port):
    return [python, "-m", "flask", "--app", "app", "run", "--host", "127.0.0.1",
            "--port", str(port)]


def copy_apps(src, base, n):
    folders = []
    for i in range(n):
        dst = os.path.join(base, f"app-{i:03d}")
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns(
            "__pycache__", "*.db", "*.db-*", ".appforge-files"))
        folders.append(dst)
    return folders


# ---------------------------------------------------------------- supervisors

def run_appforge(af, names, sizes, args):
    """The first size's apps, then the rest up to each next size, in one daemon."""
    results, running = {}, 0
    for n in sizes:
        log(f"\n[appforged, {n} apps]")
        t0 = time.time()
        failures = []

        def start(name):
            out = af.call("run", name, check=False, timeout=300)
            if out.returncode != 0:
                failures.append(f"{name}: {out.stderr.decode(errors='replace').strip()[:300]}")

        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(start, names[running:n]))
        if failures:
            raise RuntimeError(f"{len(failures)} `appforge run` failed, e.g. {failures[0]}")
        log(f"  `appforge run` of {n - running} apps, 2 at a time: {time.time() - t0:.1f} s")
        running = n
        ps = {p["name"]: p for p in af.json("ps")}
        ports = [ps[k]["port"] for k in names[:n]]
        results[n] = measure(af.pid, ports, "appforge ps", [af.client, "ps"], af.env, args)
    t0 = time.time()
    af.call("stop", "--all", timeout=600)
    log(f"\n  `appforge stop --all` of {running} apps: {time.time() - t0:.1f} s")
    return results


def run_supervisord(work, python, folders, ports, args, cleanup):
    n = len(ports)
    log(f"\n[supervisord, {n} apps] (autorestart=true, startsecs=0)")
    wait_ports_free(ports)
    base = os.path.join(work, f"supervisord-{n}")
    os.makedirs(os.path.join(base, "logs"))
    conf = os.path.join(base, "supervisord.conf")
    sock = os.path.join(base, "supervisor.sock")
    lines = [
        "[unix_http_server]", f"file={sock}", "",
        "[supervisord]", f"logfile={base}/supervisord.log", f"pidfile={base}/supervisord.pid",
        f"childlogdir={base}/logs", "nodaemon=true", "minfds=4096", "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
        "[supervisorctl]", f"serverurl=unix://{sock}", "",
    ]
    for i, (folder, port) in enumerate(zip(folders, ports)):
        env = ",".join(f'{k}="{v}"' for k, v in app_env(python, port).items())
        lines += [f"[program:app-{i:03d}]", f"command={' '.join(flask_argv(python, port))}",
                  f"directory={folder}", "autostart=true", "autorestart=true", "startsecs=0",
                  "stopasgroup=true", "killasgroup=true", "redirect_stderr=true",
                  f"stdout_logfile={base}/logs/app-{i:03d}.log", f"environment={env}", ""]
    with open(conf, "w") as f:
        f.write("\n".join(lines))
    ctl = [SUPERVISORCTL, "-c", conf]
    with open(os.path.join(base, "stdout.log"), "ab") as logf:
        proc = subprocess.Popen([SUPERVISORD, "-c", conf], stdin=subprocess.DEVNULL,
                                stdout=logf, stderr=logf, start_new_session=True)
    cleanup.track([proc.pid])

    def shutdown():
        if proc.poll() is not None:
            return
        cleanup.track(descendants(proc.pid))
        subprocess.run([*ctl, "shutdown"], capture_output=True, timeout=120)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            stop_popen(proc, grace=10)

    cleanup.add(f"supervisord ({n})", shutdown)
    try:
        return measure(proc.pid, ports, "supervisorctl status", [*ctl, "status"], None, args)
    finally:
        cleanup.track(descendants(proc.pid))
        shutdown()


def run_pm2(work, python, folders, ports, args, cleanup):
    n = len(ports)
    log(f"\n[pm2, {n} apps] (fork mode, interpreter none, restart_delay 0)")
    wait_ports_free(ports)
    base = os.path.join(work, f"pm2-{n}")
    home = os.path.join(base, "home")
    os.makedirs(home)
    env = dict(os.environ, PM2_HOME=home)
    apps = [{
        "name": f"app-{i:03d}", "script": python, "args": flask_argv(python, port)[1:],
        "interpreter": "none", "exec_mode": "fork", "cwd": folder, "autorestart": True,
        "restart_delay": 0, "env": app_env(python, port),
        "out_file": os.path.join(base, "logs", f"app-{i:03d}.log"),
        "error_file": os.path.join(base, "logs", f"app-{i:03d}.log"),
    } for i, (folder, port) in enumerate(zip(folders, ports))]
    eco = os.path.join(base, "apps.json")
    with open(eco, "w") as f:
        json.dump({"apps": apps}, f)
    pid_file = os.path.join(home, "pm2.pid")

    def god():
        try:
            return int(open(pid_file).read().strip())
        except (OSError, ValueError):
            return None

    def shutdown():
        pid = god()
        if pid is None and not os.path.exists(os.path.join(home, "rpc.sock")):
            return  # no daemon was started, and `pm2 kill` would start one
        if pid:
            cleanup.track([pid, *descendants(pid)])
        subprocess.run([PM2, "kill"], env=env, capture_output=True, timeout=120)
        # `pm2 kill` returns before the God daemon has exited.
        deadline = time.time() + 30
        while pid and alive(pid) and time.time() < deadline:
            time.sleep(0.1)

    cleanup.add(f"pm2 ({n})", shutdown)
    try:
        out = subprocess.run([PM2, "start", eco], env=env, capture_output=True, timeout=600)
        if out.returncode != 0:
            raise RuntimeError("pm2 start failed: " + out.stderr.decode(errors="replace")[-300:])
        daemon = god()
        if not daemon:
            raise RuntimeError(f"no pm2 God daemon pid in {pid_file}")
        cleanup.track([daemon])
        return measure(daemon, ports, "pm2 jlist", [PM2, "jlist"], env, args)
    finally:
        shutdown()


# ---------------------------------------------------------------- summary

def summary(r, sizes, idle):
    log("\n[summary] medians of this run; ratios are appforged / peer")
    for n in sizes:
        log(f"\n  {n} apps        {'appforged':>12} {'supervisord':>12} {'pm2':>12}"
            f" {'/ supervisord':>14} {'/ pm2':>8}")
        rows = [("PSS MiB", "pss", 1 / 1024, "{:12.2f}"),
                (f"idle CPU ms/min", "cpu", 1, "{:12.1f}"),
                ("status cmd ms", "status", 1, "{:12.2f}"),
                ("kill->200 ms", "kill", 1, "{:12.1f}")]
        for label, key, scale, form in rows:
            vals = [r.get(s, {}).get(n, {}).get(key) for s in ("appforged", "supervisord", "pm2")]
            cells = [form.format(v * scale) if v is not None else f"{'-':>12}" for v in vals]
            ratios = []
            for peer in vals[1:]:
                if vals[0] is not None and peer:
                    ratios.append(f"{vals[0] / peer:.2f}x")
                else:
                    ratios.append("-")
            log(f"  {label:16}{' '.join(cells)} {ratios[0]:>14} {ratios[1]:>8}")
        af = r.get("appforged", {}).get(n)
        if af and af["per_app"] is not None:
            log(f"  appforged per app (shim + init), median PSS: {af['per_app']:.0f} KiB")
    log("\n  targets (printed, not asserted):")

    def verdict(ok):
        return "n/a " if ok is None else ("PASS" if ok else "MISS")

    for n in sizes:
        af = r.get("appforged", {}).get(n)
        sv = r.get("supervisord", {}).get(n)
        pm = r.get("pm2", {}).get(n)
        if not af:
            log(f"  n/a   {n} apps: appforged not measured")
            continue
        ok = af["pss"] <= sv["pss"] if sv else None
        log(f"  {verdict(ok)}  {n} apps: appforged total PSS <= supervisord's: "
            f"{af['pss'] / 1024:.2f} vs {sv['pss'] / 1024 if sv else float('nan'):.2f} MiB")
        ok = af["per_app"] <= PER_APP_TARGET_KIB if af["per_app"] is not None else None
        log(f"  {verdict(ok)}  {n} apps: per-app shim + init PSS <= {PER_APP_TARGET_KIB} KiB: "
            f"{af['per_app']:.0f} KiB")
        ok = af["kill"] <= pm["kill"] if pm else None
        log(f"  {verdict(ok)}  {n} apps: kill -9 -> 200 <= pm2's: {af['kill']:.1f} vs "
            f"{pm['kill'] if pm else float('nan'):.1f} ms")
        peers = [x["cpu"] for x in (sv, pm) if x]
        ok = af["cpu"] <= min(peers) if peers else None
        log(f"  {verdict(ok)}  {n} apps: idle CPU <= lowest peer's: {af['cpu']:.1f} vs "
            f"{min(peers) if peers else float('nan'):.1f} ms/min (over {idle:.0f} s)")


# ---------------------------------------------------------------- main

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="20,100",
                        help="numbers of apps, ascending, comma-separated (default 20,100)")
    parser.add_argument("--idle", type=float, default=60.0,
                        help="idle window for the CPU figure, seconds (default 60)")
    parser.add_argument("--calls", type=int, default=20, help="status command runs (default 20)")
    parser.add_argument("--kills", type=int, default=7, help="apps killed per size (default 7)")
    parser.add_argument("--only", default="appforged,supervisord,pm2",
                        help="supervisors to measure, comma-separated")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    sizes = sorted({int(x) for x in args.sizes.split(",")})
    only = set(args.only.split(","))
    peers = only & {"supervisord", "pm2"}

    for b in ("appforged", "appforge"):
        if not os.access(os.path.join(BIN, b), os.X_OK):
            sys.exit(f"{os.path.join(BIN, b)} is missing: run `make release`")
    if peers and not (os.access(SUPERVISORD, os.X_OK) and os.access(PM2, os.X_OK)):
        sys.exit(f"supervisord or pm2 is missing from {BENCH_TOOLS}: run `make bench-tools`")

    def interrupted(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)

    work = tempfile.mkdtemp(prefix="appforge-bench-sup-")
    cleanup = Cleanup()
    started = time.time()
    results = {}
    try:
        log(f"machine: {machine()}")
        log(f"sizes: {sizes}, idle window {args.idle:.0f} s, {args.calls} status calls, "
            f"{args.kills} kills per size, work folder {work}")
        if peers:
            sv = subprocess.run([SUPERVISORD, "--version"], capture_output=True, text=True)
            pm = json.load(open(os.path.join(BENCH_TOOLS, "node_modules", "pm2", "package.json")))
            node = subprocess.run(["node", "--version"], capture_output=True, text=True)
            log(f"supervisord {sv.stdout.strip()}, pm2 {pm['version']} (node "
                f"{node.stdout.strip()})")
        most = sizes[-1]
        ports = free_block(most + 10)
        # The apps' environment is kept between runs: made once, from PyPI.
        env_dir = os.path.join(BENCH_TOOLS, "appforge-envs")
        af = Appforged(os.path.join(work, "appforge"),
                       ["--env-dir", env_dir, "--port-range", f"{ports[0]}-{ports[-1]}",
                        "--health-interval", str(HEALTH_INTERVAL),
                        # The dashboard on, as by default, on a port of its own.
                        "--web-addr", "127.0.0.1:0"], cleanup)
        af.call("signup", "bench@example.com", "--password-stdin", input=b"bench-password\n")
        t0 = time.time()
        names = make_projects(af, most)
        log(f"made {most} projects with the template provider (the first checked, the rest "
            f"--no-check, 2 at a time) in {time.time() - t0:.1f} s")
        t0 = time.time()
        af.call("run", names[0], timeout=900)
        log(f"first `appforge run` (its environment made or reused): {time.time() - t0:.1f} s")
        project_id = af.json("ps")[0]["project_id"]
        app_src = os.path.join(af.folder, "data", "projects", f"project_{project_id}")
        # The Python the daemon runs the app with: its environment's.
        wait_all_200([af.json("ps")[0]["port"]])
        first = next(iter(Supervision(af.pid).apps.values()), None)
        if first is None:
            raise RuntimeError(f"no app process below appforged (pid {af.pid})")
        python = cmdline(first)[0]
        if not os.path.isabs(python):
            python = os.readlink(f"/proc/{first}/exe")
        log(f"app: {app_src}; Python: {python}")
        if "appforged" in only:
            results["appforged"] = run_appforge(af, names, sizes, args)
        else:
            af.call("stop", "--all", timeout=600)
        copies = copy_apps(app_src, os.path.join(work, "copies"), most)
        for name, run in (("supervisord", run_supervisord), ("pm2", run_pm2)):
            if name not in only:
                continue
            results[name] = {}
            for n in sizes:
                try:
                    results[name][n] = run(work, python, copies[:n], ports[:n], args, cleanup)
                except Exception as e:
                    log(f"  {name} with {n} apps failed: {e}")
        summary(results, sizes, args.idle)
    except KeyboardInterrupt as e:
        log(f"\ninterrupted ({str(e) or 'Ctrl-C'}); cleaning up")
        raise SystemExit(130)
    finally:
        finish(cleanup, work, args.keep, started)


if __name__ == "__main__":
    main()
