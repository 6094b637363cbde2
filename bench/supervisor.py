#!/usr/bin/env python3
"""Benchmark of appforge's process supervisor against supervisord and pm2 (not a test).

Measured, all in one run on 127.0.0.1 only:
 1. `appforge run` to the first HTTP 200 with a warm Python environment,
    interleaved with a baseline: a bare spawn of the same Flask app with the
    same Python in the same folder, polled every 3 ms until its first 200.
 2. kill -9 of an app to its restarted process: to the new pid appearing
    (a new child of the supervisor in /proc) and to it serving HTTP 200.
    `appforge restart` between rounds, so every kill is a first restart
    (restarts are immediate only for the first failure of a streak).
 3. With N supervised Flask apps (default 100): `appforge ps` whole-process
    latency, the daemon's VmRSS and CPU time over 30 idle seconds (health probes on, every 30 s), and kill -9
    to restarted with N apps running (a different app each round).
 4. The same for supervisord (`supervisorctl status`) and pm2 (`pm2 jlist`),
    installed into a temporary folder, each running N copies of the same app.
 5. A table against the targets.

Run from the repository root: `python3 bench/supervisor.py` (`--quick` for a
fast check: 5 rounds, 20 apps). Needs release binaries
(`cargo build --release --workspace --bins`), Python 3 with venv, network
access to PyPI (Flask, supervisor) and npm (pm2). Everything it starts is
stopped at the end, on error and on Ctrl-C too.
"""
import argparse
import glob
import http.client
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

from benchlib import BIN, Appforged, Cleanup, alive, children, descendants, finish, kib_field, log, machine, med_p95, read, start_ticks, stop_popen

PROMPT = "a todo app with title and done flag"
POLL = 0.003          # seconds between polls while timing HTTP
PID_POLL = 0.0005     # seconds between polls of /proc for a new child
START_TIMEOUT = 60    # seconds for one app to come up
SETTLE = 5            # seconds of quiet before latency and RSS figures
IDLE_SECONDS = 30     # CPU time of each supervisor measured over this long


# ---------------------------------------------------------------- /proc helpers


def proc_stat(pid):
    """(state, start_ticks, utime+stime) of a process, or None when it is gone."""
    raw = read(f"/proc/{pid}/stat")
    if raw is None:
        return None
    fields = raw.rsplit(b")", 1)[1].split()
    return fields[0].decode(), int(fields[19]), int(fields[11]) + int(fields[12])


def cpu_ticks(pid):
    st = proc_stat(pid)
    return st[2] if st else 0


def rss_kib(pid):
    raw = read(f"/proc/{pid}/status") or b""
    for line in raw.decode(errors="replace").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cmdline(pid):
    raw = read(f"/proc/{pid}/cmdline") or b""
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def serves_port(pid, port):
    """Whether `pid`, or a process below it (an appforge app runs under its
    shim and the shim's init), is the app started on `port`."""
    for p in [pid, *descendants(pid)]:
        args = cmdline(p)
        if any(a == "--port" and i + 1 < len(args) and args[i + 1] == str(port)
               for i, a in enumerate(args)):
            return True
    return False


def child_on_port(parent, port):
    for kid in children(parent):
        if serves_port(kid, port):
            return kid
    return None


# ---------------------------------------------------------------- HTTP and ports

def http_status(port, timeout=1.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def wait_200(port, timeout=START_TIMEOUT, interval=POLL):
    """perf_counter() at the first HTTP 200 from 127.0.0.1:port."""
    deadline = time.perf_counter() + timeout
    while True:
        if http_status(port) == 200:
            return time.perf_counter()
        if time.perf_counter() > deadline:
            raise TimeoutError(f"127.0.0.1:{port} did not answer 200 within {timeout} s")
        time.sleep(interval)


def port_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class Ports:
    """Hands out blocks of free ports below the kernel's ephemeral range."""

    def __init__(self):
        try:
            low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
        except (OSError, ValueError, IndexError):
            low = 32768
        self.next, self.limit = 20000, max(low, 20000 + 4000)

    def block(self, n):
        start = self.next
        while start + n <= self.limit:
            bad = next((p for p in range(start, start + n) if not port_free(p)), None)
            if bad is None:
                self.next = start + n
                return start, start + n - 1
            start = bad + 1
        raise RuntimeError(f"no block of {n} free ports below {self.limit}")


# ---------------------------------------------------------------- figures


def fmt(samples):
    if not samples:
        return "no samples"
    med, p95 = med_p95(samples)
    return f"median {med:8.2f} ms  p95 {p95:8.2f} ms  (n={len(samples)})"


def timed_calls(argv, env, runs, warmup=3):
    """Whole-process wall time of `argv`, in ms. The wait blocks in waitpid:
    `subprocess.run(timeout=…)` polls with sleeps of 0.5, 1, 2, 4 ms and so
    would round every figure up to the next sum of those. A timer kills a
    call that hangs."""
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
        if i >= warmup:
            samples.append((end - start) * 1000)
    return samples


def thread_cpu_ns(pid):
    """CPU time of each of the process's live threads in nanoseconds, from
    schedstat (clock ticks are 10 ms, too coarse for an idle daemon)."""
    times = {}
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        raw = read(path)
        if raw:
            times[path] = int(raw.split()[0])
    return times


def idle_cpu_ms(pid, seconds=IDLE_SECONDS):
    """CPU time over `seconds` of quiet. Threads that end meanwhile (a
    runtime's idle worker threads retire after 10 s) would take their time
    with them, so the measure starts after 12 s of quiet, and a thread that
    ends counts what it had used when the measure began."""
    time.sleep(12)
    before = thread_cpu_ns(pid)
    time.sleep(seconds)
    after = thread_cpu_ns(pid)
    used = sum(ns - before.get(t, 0) for t, ns in after.items())
    return used / 1e6


def kill_and_time(old_pid, port, parent, timeout=30):
    """kill -9 `old_pid` (a child of `parent` serving `port`) and time until a
    new child of `parent` appears and until the port answers 200 again.
    Returns (ms to new pid, ms to serving, new pid)."""
    before = children(parent)
    t0 = time.perf_counter()
    os.kill(old_pid, signal.SIGKILL)
    deadline = t0 + timeout
    t_pid = t_serve = new_pid = None
    old_gone = False
    # The new pid first, polled alone (no HTTP in between) for a fine figure.
    while new_pid is None and time.perf_counter() < deadline:
        fresh = children(parent) - before - {old_pid}
        if fresh:
            t_pid, new_pid = time.perf_counter(), min(fresh)
        else:
            time.sleep(PID_POLL)
    while time.perf_counter() < deadline:
        if not old_gone:
            old_gone = not alive(old_pid)
        # A 200 counts only once the killed process is really gone.
        if old_gone and http_status(port, timeout=2) == 200:
            t_serve = time.perf_counter()
            break
        time.sleep(POLL)
    if t_serve is None:
        raise TimeoutError(f"port {port} did not serve again within {timeout} s of kill -9")
    if new_pid is None:  # exec'd and served between two polls: take it now
        new_pid, t_pid = child_on_port(parent, port), t_serve
    if new_pid is None or not serves_port(new_pid, port):
        raise RuntimeError(f"the process serving port {port} after kill -9 is not a new child")
    return (t_pid - t0) * 1000, (t_serve - t0) * 1000, new_pid


def kill_rounds(name, targets, parent, rounds, gap=1.0):
    """`targets(i)` gives (pid, port) to kill in round i, `gap` seconds after the last."""
    to_pid, to_serve = [], []
    for i in range(rounds):
        time.sleep(gap)
        pid, port = targets(i)
        a, b, _ = kill_and_time(pid, port, parent)
        to_pid.append(a)
        to_serve.append(b)
    log(f"  {name}: kill -9 -> new pid    {fmt(to_pid)}")
    log(f"  {name}: kill -9 -> HTTP 200   {fmt(to_serve)}")
    return to_pid, to_serve


# ---------------------------------------------------------------- clean-up


def app_env(python, port):
    """The environment appforged gives an app (see daemon/src/supervisor/app.rs)."""
    venv = os.path.dirname(os.path.dirname(python))
    return {
        "PATH": f"{os.path.dirname(python)}:/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/"),
        "LANG": "C.UTF-8",
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "VIRTUAL_ENV": venv,
        "PYTHONUNBUFFERED": "1",
    }


def flask_argv(python, port):
    return [python, "-m", "flask", "--app", "app", "run", "--host", "127.0.0.1", "--port", str(port)]


def copy_app(src, dst):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(
        "__pycache__", "*.db", "*.db-*", ".appforge-files"))


def wait_all_200(ports, timeout):
    deadline = time.time() + timeout
    pending = set(ports)
    while pending:
        pending = {p for p in pending if http_status(p) != 200}
        if not pending:
            break
        if time.time() > deadline:
            raise TimeoutError(f"{len(pending)} of {len(ports)} apps not serving after {timeout} s")
        time.sleep(0.25)


# ---------------------------------------------------------------- appforge

class Appforge(Appforged):
    """The daemon under test, with one user signed up."""

    def __init__(self, work, env_dir, port_range, health_interval, cleanup):
        self.env_dir = env_dir
        super().__init__(work, ["--env-dir", env_dir,
                                "--port-range", f"{port_range[0]}-{port_range[1]}",
                                "--health-interval", str(health_interval)], cleanup)
        self.call("signup", "bench@example.com", "--password-stdin", input=b"bench-password\n")

    def ps(self):
        return {p["name"]: p for p in self.json("ps")}


# ---------------------------------------------------------------- phases

def phase_run(af, rounds, baseline_port):
    """1. `appforge run` to first 200, interleaved with a bare spawn of the same app."""
    log(f"\n[1] run -> first HTTP 200, warm environment ({rounds} rounds each, interleaved, "
        f"polling every {POLL * 1000:.0f} ms)")
    info = af.ps()["todo"]
    port, project_id = info["port"], info["project_id"]
    folder = os.path.join(af.folder, "data", "projects", f"project_{project_id}")
    pythons = [p for p in glob.glob(os.path.join(af.env_dir, "*", "bin", "python"))
               if ".building" not in p]
    if len(pythons) != 1:
        raise RuntimeError(f"expected one environment in {af.env_dir}, found {pythons}")
    python = pythons[0]
    log(f"  app: {folder}  env python: {python}")
    log(f"  appforge: `appforge stop todo`, then from launching `appforge run todo` "
        f"to our own first GET / == 200 on port {port}")
    log(f"  baseline: `{' '.join(flask_argv('<env python>', baseline_port))}` in the same folder")

    def one_run():
        af.call("stop", "todo")
        t0 = time.perf_counter()
        af.call("run", "todo")
        t_cmd = time.perf_counter()
        t1 = wait_200(port)
        return (t1 - t0) * 1000, (t_cmd - t0) * 1000

    def one_bare():
        t0 = time.perf_counter()
        proc = subprocess.Popen(flask_argv(python, baseline_port), cwd=folder,
                                env=app_env(python, baseline_port), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            t1 = wait_200(baseline_port)
        finally:
            stop_popen(proc, grace=10)
        return (t1 - t0) * 1000

    # Warm-up of both, not counted.
    one_run()
    af.call("stop", "todo")
    one_bare()
    runs, cmds, bares = [], [], []
    for i in range(rounds):
        if i % 2 == 0:
            af.call("stop", "todo")
            bares.append(one_bare())
            r, c = one_run()
        else:
            r, c = one_run()
            af.call("stop", "todo")
            bares.append(one_bare())
        runs.append(r)
        cmds.append(c)
    af.call("run", "todo")
    ratio = statistics.median(runs) / statistics.median(bares)
    log(f"  bare spawn -> first 200:              {fmt(bares)}")
    log(f"  appforge run -> first 200:            {fmt(runs)}")
    log(f"  (the `appforge run` command itself:   {fmt(cmds)})")
    log(f"  ratio run / bare spawn (medians):     {ratio:.2f}x  (target <= 1.3)")
    log(f"  samples, sorted (ms): bare {' '.join(f'{x:.0f}' for x in sorted(bares))}")
    log(f"                        run  {' '.join(f'{x:.0f}' for x in sorted(runs))}")
    return {"run_ms": statistics.median(runs), "bare_ms": statistics.median(bares),
            "ratio": ratio, "python": python, "folder": folder}


def phase_kill(af, rounds):
    """2. kill -9 to restarted, one app, `appforge restart` between rounds."""
    log(f"\n[2] kill -9 -> restarted, one app ({rounds} rounds; `appforge restart todo` "
        f"before each, so each kill is a first restart)")
    anomalies = []
    to_pid, to_serve = [], []
    for i in range(rounds):
        af.call("restart", "todo")
        time.sleep(1.0)
        p = af.ps()["todo"]
        if p["status"] != "running" or p["restarts"] != 0:
            anomalies.append(f"round {i}: before kill: {p['status']}, restarts {p['restarts']}")
        a, b, new = kill_and_time(p["pid"], p["port"], af.pid)
        to_pid.append(a)
        to_serve.append(b)
        after = af.ps()["todo"]
        if after["pid"] != new or after["restarts"] != 1:
            anomalies.append(f"round {i}: after kill ps says pid {after['pid']} "
                             f"(new child {new}), restarts {after['restarts']}, {after['status']}")
    log(f"  appforge: kill -9 -> new pid    {fmt(to_pid)}")
    log(f"  appforge: kill -9 -> HTTP 200   {fmt(to_serve)}")
    for a in anomalies:
        log(f"  ANOMALY {a}")
    return {"pid_ms": statistics.median(to_pid), "serve_ms": statistics.median(to_serve)}


def phase_many(af, n, calls, rounds, health_interval, ps_only=False):
    """3. N apps under appforged; with `ps_only`, only the `ps` and `ping` figures."""
    log(f"\n[3] appforged with {n} supervised apps (health probes every {health_interval} s, "
        f"the default)")
    af.call("stop", "todo")
    ps_none = timed_calls([af.client, "ps"], af.env, calls)
    t0 = time.time()
    names = [f"app-{i:03d}" for i in range(n)]
    for name in names:
        af.call("generate", PROMPT, "--save", "--name", name, "--json")
    log(f"  generated {n} projects with the template provider in {time.time() - t0:.1f} s")
    t0 = time.time()
    failures = []

    def start(name):
        out = af.call("run", name, check=False, timeout=300)
        if out.returncode != 0:
            failures.append(f"{name}: {out.stderr.decode(errors='replace').strip()[:300]}")

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(start, names))
    log(f"  started {n} apps (`appforge run`, 4 at a time) in {time.time() - t0:.1f} s")
    for f in failures[:5]:
        log(f"  ANOMALY run failed: {f}")
    ps = af.ps()
    not_running = [k for k in names if ps.get(k, {}).get("status") != "running"]
    if not_running:
        raise RuntimeError(f"{len(not_running)} apps not running, e.g. {not_running[:3]}: "
                           f"{[ps.get(k) for k in not_running[:2]]}")
    wait_all_200([ps[k]["port"] for k in names], timeout=120)
    time.sleep(SETTLE)
    ps_plain = timed_calls([af.client, "ps"], af.env, calls)
    ps_json = timed_calls([af.client, "--json", "ps"], af.env, calls)
    ping = timed_calls([af.client, "ping"], af.env, calls)
    rss = rss_kib(af.pid)
    cpu = None if ps_only else idle_cpu_ms(af.pid)
    log(f"  `appforge ps`:          {fmt(ps_plain)}")
    log(f"  `appforge --json ps`:   {fmt(ps_json)}")
    log(f"  (`appforge ps` with no app running, before: {fmt(ps_none)};")
    log(f"   `appforge ping` with {n} apps: {fmt(ping)})")
    if ps_only:
        return {"ps_ms": statistics.median(ps_plain), "ps_p95": med_p95(ps_plain)[1],
                "names": names}
    log(f"  appforged VmRSS:        {rss / 1024:8.2f} MiB")
    # Each app's shim (the daemon's child) and its init (the shim's): PSS,
    # so the pages they share with each other and the other apps' count once.
    def pss(pid):
        return kib_field(read(f"/proc/{pid}/smaps_rollup"), "Pss") or 0
    shims = sorted(children(af.pid))
    per_app = sum(pss(s) + sum(pss(i) for i in children(s)) for s in shims)
    daemon_pss = pss(af.pid)
    log(f"  shim + init PSS per app: {per_app / max(1, len(shims)):7.0f} KiB ({len(shims)} apps; "
        f"target <= 256 from 20 apps, as the shim's code is shared among them); "
        f"with appforged's {daemon_pss / 1024:.2f} MiB: {(per_app + daemon_pss) / 1024:.2f} MiB")
    log(f"  appforged CPU over {IDLE_SECONDS} s: {cpu:6.1f} ms")
    ports = {k: ps[k]["port"] for k in names}
    to_pid, to_serve = kill_rounds(
        f"appforge ({n} apps)",
        lambda i: (af.ps()[names[i % n]]["pid"], ports[names[i % n]]),
        af.pid, min(rounds, n))
    return {"ps_ms": statistics.median(ps_plain), "ps_p95": med_p95(ps_plain)[1],
            "rss_kib": rss, "cpu_ms": cpu,
            "pid_ms": statistics.median(to_pid), "serve_ms": statistics.median(to_serve),
            "names": names}


def install_supervisor(tools):
    venv = os.path.join(tools, "supervisor-venv")
    svd = os.path.join(venv, "bin", "supervisord")
    if not os.path.exists(svd):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True, capture_output=True,
                       timeout=300)
        out = subprocess.run([os.path.join(venv, "bin", "pip"), "install", "--quiet",
                              "supervisor"], capture_output=True, timeout=600)
        if out.returncode != 0:
            raise RuntimeError("pip install supervisor failed: "
                               + out.stderr.decode(errors="replace").strip()[-300:])
    ver = subprocess.run([svd, "--version"], capture_output=True, text=True, timeout=60)
    return venv, ver.stdout.strip()


def install_pm2(tools):
    prefix = os.path.join(tools, "pm2")
    pm2 = os.path.join(prefix, "node_modules", ".bin", "pm2")
    if not os.path.exists(pm2):
        if not shutil.which("npm"):
            raise RuntimeError("npm is not on the PATH")
        out = subprocess.run(["npm", "install", "--prefix", prefix, "--no-audit", "--no-fund",
                              "pm2"], capture_output=True, timeout=900)
        if out.returncode != 0:
            raise RuntimeError("npm install pm2 failed: "
                               + out.stderr.decode(errors="replace").strip()[-300:])
    pkg = json.load(open(os.path.join(prefix, "node_modules", "pm2", "package.json")))
    return pm2, pkg["version"]


def phase_supervisord(venv, work, python, app_src, n, port_range, calls, rounds, cleanup):
    log(f"\n[4a] supervisord with {n} copies of the same Flask app (autorestart=true, "
        f"startsecs=0)")
    base = os.path.join(work, "supervisord")
    os.makedirs(os.path.join(base, "logs"))
    conf_path = os.path.join(base, "supervisord.conf")
    sock = os.path.join(base, "supervisor.sock")
    ports = list(range(port_range[0], port_range[0] + n))
    lines = [
        "[unix_http_server]", f"file={sock}", "",
        "[supervisord]", f"logfile={base}/supervisord.log", f"pidfile={base}/supervisord.pid",
        f"childlogdir={base}/logs", "nodaemon=true", "minfds=4096", "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
        "[supervisorctl]", f"serverurl=unix://{sock}", "",
    ]
    for i, port in enumerate(ports):
        folder = os.path.join(base, "apps", f"app-{i:03d}")
        copy_app(app_src, folder)
        env = ",".join(f'{k}="{v}"' for k, v in app_env(python, port).items())
        lines += [f"[program:app-{i:03d}]", f"command={' '.join(flask_argv(python, port))}",
                  f"directory={folder}", "autostart=true", "autorestart=true", "startsecs=0",
                  "stopasgroup=true", "killasgroup=true", "redirect_stderr=true",
                  f"stdout_logfile={base}/logs/app-{i:03d}.log", f"environment={env}", ""]
    with open(conf_path, "w") as f:
        f.write("\n".join(lines))
    ctl = [os.path.join(venv, "bin", "supervisorctl"), "-c", conf_path]
    with open(os.path.join(base, "stdout.log"), "ab") as logf:
        proc = subprocess.Popen([os.path.join(venv, "bin", "supervisord"), "-c", conf_path],
                                stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                start_new_session=True)
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

    cleanup.add("supervisord", shutdown)
    t0 = time.time()
    wait_all_200(ports, timeout=300)
    log(f"  all {n} serving {time.time() - t0:.1f} s after supervisord started")
    cleanup.track(descendants(proc.pid))
    time.sleep(SETTLE)
    status = timed_calls([*ctl, "status"], None, calls)
    rss = rss_kib(proc.pid)
    cpu = idle_cpu_ms(proc.pid)
    log(f"  `supervisorctl status`: {fmt(status)}")
    log(f"  supervisord VmRSS:      {rss / 1024:8.2f} MiB  (supervisord's own process)")
    log(f"  supervisord CPU over {IDLE_SECONDS} s: {cpu:6.1f} ms")
    to_pid, to_serve = kill_rounds(
        f"supervisord ({n} apps)",
        lambda i: (child_on_port(proc.pid, ports[i % n]), ports[i % n]),
        proc.pid, min(rounds, n))
    shutdown()
    return {"status_ms": statistics.median(status), "status_p95": med_p95(status)[1],
            "rss_kib": rss, "cpu_ms": cpu,
            "pid_ms": statistics.median(to_pid), "serve_ms": statistics.median(to_serve)}


def phase_pm2(pm2, work, python, app_src, n, port_range, calls, rounds, cleanup):
    log(f"\n[4b] pm2 with {n} copies of the same Flask app (interpreter none, "
        f"restart_delay 0, i.e. --restart-delay 0)")
    base = os.path.join(work, "pm2")
    home = os.path.join(base, "home")
    os.makedirs(home)
    env = dict(os.environ, PM2_HOME=home)
    ports = list(range(port_range[0], port_range[0] + n))
    apps = []
    for i, port in enumerate(ports):
        folder = os.path.join(base, "apps", f"app-{i:03d}")
        copy_app(app_src, folder)
        apps.append({
            "name": f"app-{i:03d}", "script": python, "args": flask_argv(python, port)[1:],
            "interpreter": "none", "cwd": folder, "autorestart": True, "restart_delay": 0,
            "env": app_env(python, port),
            "out_file": os.path.join(base, "logs", f"app-{i:03d}.log"),
            "error_file": os.path.join(base, "logs", f"app-{i:03d}.log"),
        })
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
        subprocess.run([pm2, "kill"], env=env, capture_output=True, timeout=120)
        if pid and alive(pid) and start_ticks(pid) == cleanup.tracked.get(pid):
            os.kill(pid, signal.SIGKILL)

    cleanup.add("pm2", shutdown)
    out = subprocess.run([pm2, "start", eco], env=env, capture_output=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError("pm2 start failed: " + out.stderr.decode(errors="replace")[-300:])
    t0 = time.time()
    wait_all_200(ports, timeout=300)
    log(f"  all {n} serving {time.time() - t0:.1f} s after `pm2 start` returned")
    daemon = god()
    if not daemon:
        raise RuntimeError(f"no pm2 God Daemon pid in {pid_file}")
    cleanup.track([daemon, *descendants(daemon)])
    if child_on_port(daemon, ports[0]) is None:
        raise RuntimeError("pm2's apps are not direct children of its God Daemon")
    time.sleep(SETTLE)
    jlist = timed_calls([pm2, "jlist"], env, calls)
    rss = rss_kib(daemon)
    cpu = idle_cpu_ms(daemon)
    log(f"  `pm2 jlist`:            {fmt(jlist)}")
    log(f"  pm2 God Daemon VmRSS:   {rss / 1024:8.2f} MiB  (the God Daemon process only)")
    log(f"  pm2 God Daemon CPU over {IDLE_SECONDS} s: {cpu:6.1f} ms")
    to_pid, to_serve = kill_rounds(
        f"pm2 ({n} apps)",
        lambda i: (child_on_port(daemon, ports[i % n]), ports[i % n]),
        daemon, min(rounds, n))
    shutdown()
    return {"status_ms": statistics.median(jlist), "status_p95": med_p95(jlist)[1],
            "rss_kib": rss, "cpu_ms": cpu,
            "pid_ms": statistics.median(to_pid), "serve_ms": statistics.median(to_serve)}


# ---------------------------------------------------------------- main


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds, 20 apps, 20 calls")
    parser.add_argument("--apps", type=int, help="supervised apps in [3] and [4] (default 100)")
    parser.add_argument("--rounds", type=int, help="rounds of [1] and [2] (default 15)")
    parser.add_argument("--calls", type=int, help="ps/status/jlist calls (default 50)")
    parser.add_argument("--tools-dir", help="keep the installed supervisor, pm2 and the apps' "
                        "Python environment here and reuse them (default: a temporary folder)")
    parser.add_argument("--skip-others", action="store_true", help="skip supervisord and pm2")
    parser.add_argument("--ps-only", action="store_true",
                        help="only the `ps` and `ping` figures of [3], measured as there: "
                        "no [1], [2], idle CPU, kill rounds, other supervisors or summary")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    n = args.apps or (20 if args.quick else 100)
    rounds = args.rounds or (5 if args.quick else 15)
    calls = args.calls or (20 if args.quick else 50)
    health_interval = 30.0  # the daemon's default, as Docker's HEALTHCHECK

    for b in ("appforged", "appforge-shim", "appforge"):
        if not os.access(os.path.join(BIN, b), os.X_OK):
            sys.exit(f"{os.path.join(BIN, b)} is missing: cargo build --release --workspace --bins")

    # SIGTERM and SIGHUP end the run like Ctrl-C does, through the clean-up.
    def interrupted(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)

    work = tempfile.mkdtemp(prefix="appforge-bench-sup-")
    tools = os.path.abspath(args.tools_dir) if args.tools_dir else os.path.join(work, "tools")
    os.makedirs(tools, exist_ok=True)
    cleanup = Cleanup()
    results = {}
    started = time.time()
    try:
        log(f"machine: {machine()}")
        log(f"apps: {n}, rounds: {rounds}, calls: {calls}, work folder: {work}")
        ports = Ports()
        af_range = ports.block(n + 10)
        baseline_port = ports.block(1)[0]
        sv_range = ports.block(n)
        pm_range = ports.block(n)

        # Installs first, so that nothing else is measured while they run.
        sv_venv = pm2 = None
        if not (args.skip_others or args.ps_only):
            try:
                sv_venv, ver = install_supervisor(tools)
                log(f"supervisord {ver} in {sv_venv}")
            except Exception as e:
                log(f"supervisord skipped: {e}")
            try:
                pm2, ver = install_pm2(tools)
                node = subprocess.run(["node", "--version"], capture_output=True, text=True)
                log(f"pm2 {ver} (node {node.stdout.strip()}) in {os.path.dirname(pm2)}")
            except Exception as e:
                log(f"pm2 skipped: {e}")

        env_dir = os.path.join(tools, "appforge-envs")
        af = Appforge(os.path.join(work, "appforge"), env_dir, af_range, health_interval, cleanup)
        log(f"appforged pid {af.pid}: {' '.join(af.argv[1:])}")
        af.json("generate", PROMPT, "--save", "--name", "todo")
        t0 = time.time()
        af.call("run", "todo")  # makes (or finds) the environment: the warm-up
        log(f"first `appforge run todo` (environment made or reused): {time.time() - t0:.1f} s")

        if args.ps_only:
            phase_many(af, n, calls, rounds, health_interval, ps_only=True)
            af.call("stop", "--all", timeout=600)
            return
        results["run"] = phase_run(af, rounds, baseline_port)
        results["kill"] = phase_kill(af, rounds)
        results["many"] = phase_many(af, n, calls, rounds, health_interval)
        t0 = time.time()
        af.call("stop", "--all", timeout=600)
        log(f"  `appforge stop --all` of {n} apps: {time.time() - t0:.1f} s")
        python, app_src = results["run"]["python"], results["run"]["folder"]
        if sv_venv:
            try:
                results["sv"] = phase_supervisord(sv_venv, work, python, app_src, n, sv_range,
                                                  calls, rounds, cleanup)
            except Exception as e:
                log(f"  supervisord measurement failed: {e}")
        if pm2:
            try:
                results["pm2"] = phase_pm2(pm2, work, python, app_src, n, pm_range, calls,
                                           rounds, cleanup)
            except Exception as e:
                log(f"  pm2 measurement failed: {e}")
        summary(results, n)
    except KeyboardInterrupt as e:
        log(f"\ninterrupted ({str(e) or 'Ctrl-C'}); cleaning up")
        raise SystemExit(130)
    finally:
        finish(cleanup, work, args.keep, started)


def summary(r, n):
    log(f"\n[5] summary against the targets (medians of this run; {n} apps where it says so)")
    rows = []

    def row(what, figure, target, ok):
        rows.append((what, figure, target, "n/a" if ok is None else ("PASS" if ok else "FAIL")))

    run = r["run"]
    row("run -> first 200 vs bare spawn", f"{run['run_ms']:.0f} ms vs {run['bare_ms']:.0f} ms "
        f"= {run['ratio']:.2f}x", "<= 1.3x", run["ratio"] <= 1.3)
    many, sv, pm = r["many"], r.get("sv"), r.get("pm2")
    if sv:
        x = sv["status_ms"] / many["ps_ms"]
        row(f"`appforge ps` vs `supervisorctl status` ({n})",
            f"{many['ps_ms']:.2f} ms vs {sv['status_ms']:.1f} ms = {x:.1f}x faster",
            ">= 20x faster", x >= 20)
        row(f"appforged RSS vs supervisord RSS ({n})",
            f"{many['rss_kib'] / 1024:.1f} MiB vs {sv['rss_kib'] / 1024:.1f} MiB",
            "below", many["rss_kib"] < sv["rss_kib"])
        row(f"idle CPU over {IDLE_SECONDS} s, probes on, vs supervisord ({n})",
            f"{many['cpu_ms']:.1f} ms vs {sv['cpu_ms']:.1f} ms", "at most",
            many["cpu_ms"] <= sv["cpu_ms"])
    else:
        row("`appforge ps` vs `supervisorctl status`", "supervisord not measured", ">= 20x", None)
        row("appforged RSS vs supervisord RSS", "supervisord not measured", "below", None)
    if pm:
        row(f"kill -9 -> new pid, appforge vs pm2 ({n})",
            f"{many['pid_ms']:.1f} ms vs {pm['pid_ms']:.1f} ms", "faster",
            many["pid_ms"] < pm["pid_ms"])
        row("kill -9 -> new pid, appforge (1 app) vs pm2",
            f"{r['kill']['pid_ms']:.1f} ms vs {pm['pid_ms']:.1f} ms", "faster",
            r["kill"]["pid_ms"] < pm["pid_ms"])
    else:
        row("kill -9 -> new pid vs pm2", "pm2 not measured", "faster", None)
    widths = [max(len(x[i]) for x in rows + [("what", "measured", "target", "")])
              for i in range(4)]
    head = ("what", "measured", "target", "")
    for line in [head] + rows:
        log("  " + "  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip())

    log("\n  all supervisors side by side:")
    log(f"  {'':22} {'list cmd median/p95 ms':>24} {'RSS MiB':>8} {'CPU/30s ms':>10} "
        f"{'kill->pid ms':>12} {'kill->200 ms':>12}")
    entries = [("appforged", many["ps_ms"], many["ps_p95"], many)]
    if sv:
        entries.append(("supervisord", sv["status_ms"], sv["status_p95"], sv))
    if pm:
        entries.append(("pm2 (God Daemon)", pm["status_ms"], pm["status_p95"], pm))
    for name, med, p95, e in entries:
        log(f"  {name:22} {med:11.2f} / {p95:10.2f} {e['rss_kib'] / 1024:8.1f} {e['cpu_ms']:10.1f} "
            f"{e['pid_ms']:12.1f} {e['serve_ms']:12.1f}")
    log(f"  list cmd: `appforge ps`, `supervisorctl status`, `pm2 jlist`; kill figures with "
        f"{n} apps running; appforged with 1 app: kill->pid {r['kill']['pid_ms']:.1f} ms, "
        f"kill->200 {r['kill']['serve_ms']:.1f} ms")


if __name__ == "__main__":
    main()
