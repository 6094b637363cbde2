"""What the benchmarks share: /proc readers, figures, the machine's
description, and a clean-up that stops everything a benchmark started,
also when it fails or is interrupted."""

import glob
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


def kib_field(raw, name):
    """A `Name:  123 kB` field of a /proc file, in KiB."""
    for line in (raw or b"").decode(errors="replace").splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return None


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
