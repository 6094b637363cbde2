#!/usr/bin/env python3
"""Benchmark of the daemon's IPC and idle footprint (not a test).

Prints whole-process latency of `appforge ping` and `appforge status` (median
and p95 over RUNS runs) beside a baseline spawn of `/bin/true` measured in the
same run, the daemon's RSS at idle, and its CPU time over 10 idle seconds.
Targets: ping median <= 2 ms, idle RSS <= 10 MiB, no CPU at idle.
Run with `make bench` (builds release binaries first).
"""
import os
import statistics
import subprocess
import tempfile
import time

from benchlib import Appforged, Cleanup, finish  # same folder

RUNS = int(os.environ.get("RUNS", "300"))
IDLE_SECONDS = 10


def timed_runs(argv, env, runs=RUNS):
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def main():
    started = time.time()
    work = tempfile.mkdtemp(prefix="appforge-bench-ipc-")
    cleanup = Cleanup()
    try:
        daemon = Appforged(work, [], cleanup)
        env, client = daemon.env, daemon.client
        # Warm-up, so the first page faults are not measured.
        timed_runs([client, "ping"], env, runs=20)

        base_med, base_p95 = timed_runs(["/bin/true"], env)
        ping_med, ping_p95 = timed_runs([client, "ping"], env)
        status_med, status_p95 = timed_runs([client, "status"], env)

        rss = rss_kib(daemon.pid)
        before = cpu_ticks(daemon.pid)
        time.sleep(IDLE_SECONDS)
        idle_ticks = cpu_ticks(daemon.pid) - before
        hz = os.sysconf("SC_CLK_TCK")

        print(f"runs per figure: {RUNS}")
        print(f"baseline /bin/true spawn:  median {base_med:6.2f} ms  p95 {base_p95:6.2f} ms")
        print(f"appforge ping:             median {ping_med:6.2f} ms  p95 {ping_p95:6.2f} ms"
              f"  ({ping_med / base_med:.1f}x baseline; target median <= 2 ms)")
        print(f"appforge status:           median {status_med:6.2f} ms  p95 {status_p95:6.2f} ms"
              f"  ({status_med / base_med:.1f}x baseline)")
        print(f"daemon RSS at idle:        {rss / 1024:6.2f} MiB  (target <= 10 MiB)")
        print(f"daemon CPU over {IDLE_SECONDS} s idle: {idle_ticks / hz * 1000:6.1f} ms"
              f"  ({idle_ticks} ticks; target 0)")
    finally:
        finish(cleanup, work, False, started)


if __name__ == "__main__":
    main()
