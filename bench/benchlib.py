"""What the benchmarks share: /proc readers, figures, the machine's
description, and a clean-up that stops everything a benchmark started,
also when it fails or is interrupted."""

import glob
import http.client
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import time


def log(msg=""):
    print(msg, flush=True)


# ---------------------------------------------------------------- /proc

def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def start_ticks(pid):
    """When the process started, in clock ticks since boot (None if gone):
    with the pid, it names one process even after the pid is reused."""
    raw = read(f"/proc/{pid}/stat")
    return int(raw.rsplit(b")", 1)[1].split()[19]) if raw else None


def alive(pid):
    return os.path.exists(f"/proc/{pid}")


def children(pid):
    """Direct children of a process (all its threads)."""
    kids = set()
    for path in glob.glob(f"/proc/{pid}/task/*/children"):
        raw = read(path)
        if raw:
            kids.update(int(x) for x in raw.split())
    return kids


def descendants(pid):
    seen, todo = set(), [pid]
    while todo:
        for kid in children(todo.pop()):
            if kid not in seen:
                seen.add(kid)
                todo.append(kid)
    return seen


def cmdline(pid):
    raw = read(f"/proc/{pid}/cmdline") or b""
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def app_port(pid):
    """The port of a Flask app's Python process, or None for any other process."""
    args = cmdline(pid)
    if "flask" not in args or "--port" not in args:
        return None
    i = args.index("--port")
    return int(args[i + 1]) if i + 1 < len(args) else None


def kib_field(raw, name):
    """A `Name:  123 kB` field of a /proc file, in KiB."""
    for line in (raw or b"").decode(errors="replace").splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return None


# ---------------------------------------------------------------- HTTP

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



# ---------------------------------------------------------------- figures

def med_p95(samples):
    """The median and the nearest-rank 95th percentile."""
    s = sorted(samples)
    return statistics.median(s), s[max(0, math.ceil(len(s) * 0.95) - 1)]


def loadavg():
    return " ".join((read("/proc/loadavg") or b"? ? ?").decode().split()[:3])


def machine():
    model = "?"
    for line in (read("/proc/cpuinfo") or b"").decode(errors="replace").splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = (kib_field(read("/proc/meminfo"), "MemTotal") or 0) / 1024 / 1024
    return (f"nproc {os.cpu_count()} ({model}), {mem:.1f} GiB RAM, Linux {platform.release()}, "
            f"Python {platform.python_version()}; load average {loadavg()}")


# ---------------------------------------------------------------- clean-up

def stop_popen(proc, grace=30):
    """SIGTERM to the process's group (or the process), SIGKILL after `grace` s."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except OSError:
        proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            proc.kill()
        proc.wait(timeout=10)


class Cleanup:
    """Steps run in reverse order at exit; processes tracked by (pid, start
    time) get SIGKILL (their group, when they lead one) if still alive."""

    def __init__(self):
        self.steps = []
        self.tracked = {}

    def add(self, what, fn):
        self.steps.append((what, fn))

    def track(self, pids):
        for pid in pids:
            st = start_ticks(pid)
            if st is not None:
                self.tracked.setdefault(pid, st)

    def kill_tracked(self):
        own_group = os.getpgid(0)
        for pid, st in list(self.tracked.items()):
            if start_ticks(pid) != st:
                continue
            try:
                if os.getpgid(pid) == pid and pid != own_group:
                    os.killpg(pid, signal.SIGKILL)
                else:
                    os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def run(self):
        for what, fn in reversed(self.steps):
            try:
                fn()
            except Exception as e:  # keep cleaning up
                log(f"clean-up: {what}: {e}")
        self.steps = []
        self.kill_tracked()
        left = [pid for pid, st in self.tracked.items() if alive(pid) and start_ticks(pid) == st]
        if left:
            log(f"clean-up: processes still alive: {left}")


def finish(cleanup, work, keep, started):
    """The end of every benchmark, however it ends: no more signals, then
    the clean-up, then the temporary folder."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    cleanup.run()
    if keep:
        log(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    log(f"\ntotal time {time.time() - started:.0f} s; load average at the end {loadavg()}")


# ---------------------------------------------------------------- appforged

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("APPFORGE_BIN_DIR", os.path.join(ROOT, "target", "release"))

# What the person running a benchmark may have set that would change the
# daemon under test: keys, a provider, other addresses, another store.
SCRUBBED = ("GROQ_API_KEY", "OPENAI_API_KEY", "APPFORGE_API_KEY", "APPFORGE_PROVIDER",
            "APPFORGE_BASE_URL", "APPFORGE_MODEL", "APPFORGE_ENV_DIR", "APPFORGE_WEB_ADDR",
            "APPFORGE_METRICS_ADDR", "APPFORGE_DATABASE_URL", "APPFORGE_DATABASE_PASSWORD")


class Appforged:
    """A release appforged in `folder` (socket, data, the client's config and
    its log), with the offline provider and `args`, and its client. It is
    stopped, with every app it started, by `stop` or by the clean-up."""

    def __init__(self, folder, args, cleanup, env=None, name="appforged"):
        os.makedirs(folder, exist_ok=True)
        self.folder = folder
        self.env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
        self.env.update(APPFORGE_SOCKET=os.path.join(folder, "appforged.sock"),
                        APPFORGE_DATA_DIR=os.path.join(folder, "data"),
                        XDG_CONFIG_HOME=os.path.join(folder, "config"))
        self.client = os.path.join(BIN, "appforge")
        self.log_path = os.path.join(folder, "appforged.log")
        self.argv = [os.path.join(BIN, "appforged"), "--provider", "template",
                     "--stop-apps-on-exit", *args]
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(self.argv, env=dict(self.env, **(env or {})),
                                         stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                         start_new_session=True)
        cleanup.track([self.proc.pid])
        cleanup.add(name, lambda: self.stop(cleanup))
        deadline = time.time() + 30
        while self.call("ping", check=False).returncode != 0:
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"{name} did not start; see {self.log_path}")
            time.sleep(0.05)

    @property
    def pid(self):
        return self.proc.pid

    def call(self, *args, check=True, input=None, timeout=600):
        out = subprocess.run([self.client, *args], env=self.env, input=input,
                             capture_output=True, timeout=timeout)
        if check and out.returncode != 0:
            raise RuntimeError(f"appforge {' '.join(args)} exited {out.returncode}: "
                               f"{out.stderr.decode(errors='replace').strip()}"
                               f"{out.stdout.decode(errors='replace').strip()}")
        return out

    def json(self, *args, **kw):
        return json.loads(self.call("--json", *args, **kw).stdout)

    def timed(self, *args, **kw):
        """One whole `appforge` command, in ms."""
        start = time.perf_counter()
        self.call(*args, **kw)
        return (time.perf_counter() - start) * 1000

    def stop(self, cleanup):
        if self.proc.poll() is not None:
            return
        cleanup.track(descendants(self.proc.pid))
        self.call("stop", "--all", check=False, timeout=300)
        stop_popen(self.proc, grace=60)
