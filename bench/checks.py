#!/usr/bin/env python3
"""Benchmark of the checks every new version gets (not a test).

Measured, in one run, with the offline scaffolder and a warm Python
environment (made by a first, unmeasured generation):
  - `appforge generate --save` whole-command time with the checks, and the
    baseline: the same command with `--no-check`, interleaved;
  - what the checks add (the difference of the medians), against the
    target of at most 2 s;
  - each step's time (install, import, start, tests) as the daemon reports it.

Run from the repository root after `cargo build --release --workspace --bins`:
`python3 bench/checks.py [--rounds 20]`. Needs Python 3 with venv and Flask
and pytest reachable for the first environment (or an --env-dir that has it).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")
PROMPT = "a todo app with title and done flag"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--env-dir", help="Python environments to reuse")
    args = parser.parse_args()
    for name in ("appforged", "appforge-shim", "appforge"):
        if not os.path.exists(os.path.join(BIN, name)):
            sys.exit(f"build first: cargo build --release --workspace --bins ({name} missing)")
    with tempfile.TemporaryDirectory(prefix="appforge-bench-checks-") as work:
        env = dict(os.environ)
        for key in ("GROQ_API_KEY", "OPENAI_API_KEY", "APPFORGE_API_KEY", "APPFORGE_PROVIDER"):
            env.pop(key, None)
        env.update(APPFORGE_SOCKET=os.path.join(work, "s.sock"),
                   APPFORGE_DATA_DIR=os.path.join(work, "data"),
                   XDG_CONFIG_HOME=os.path.join(work, "config"))
        env_dir = args.env_dir or os.path.join(work, "envs")
        python = os.path.join(ROOT, ".venv", "bin", "python")
        argv = [os.path.join(BIN, "appforged"), "--provider", "template", "--env-dir", env_dir]
        if os.path.exists(python):
            argv += ["--python", python]
        log = open(os.path.join(work, "appforged.log"), "ab")
        daemon = subprocess.Popen(argv, env=env, stdout=log, stderr=log, start_new_session=True)
        client = os.path.join(BIN, "appforge")

        def call(*a, stdin=None):
            out = subprocess.run([client, *a], env=env, input=stdin, capture_output=True)
            if out.returncode != 0:
                raise RuntimeError(f"appforge {' '.join(a)}: {out.stderr.decode()}")
            return out.stdout

        try:
            deadline = time.time() + 30
            while subprocess.run([client, "ping"], env=env, capture_output=True).returncode:
                if time.time() > deadline:
                    sys.exit("appforged did not start")
                time.sleep(0.05)
            call("signup", "bench@example.com", "--password-stdin", stdin=b"bench-password\n")
            t0 = time.time()
            call("generate", PROMPT, "--save")
            print(f"first generation (environment made or reused): {time.time() - t0:.1f} s")
            checked, unchecked, steps = [], [], {}
            for i in range(args.rounds):
                for flag, into in ((None, checked), ("--no-check", unchecked)):
                    a = ["--json", "generate", PROMPT, "--save", "--name", f"p{i}{flag or ''}"]
                    if flag:
                        a.append(flag)
                    start = time.perf_counter()
                    doc = json.loads(call(*a))
                    into.append((time.perf_counter() - start) * 1000)
                    for s in doc.get("checks", []):
                        steps.setdefault(s["step"], []).append(s["ms"])
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)

    def med(xs):
        return statistics.median(xs)

    print(f"\n`appforge generate --save`, template app, warm environment ({args.rounds} rounds each, interleaved)")
    print(f"  with the checks:        median {med(checked):8.1f} ms  (min {min(checked):.1f}, max {max(checked):.1f})")
    print(f"  with --no-check:        median {med(unchecked):8.1f} ms  (min {min(unchecked):.1f}, max {max(unchecked):.1f})")
    added = med(checked) - med(unchecked)
    verdict = "PASS" if added <= 2000 else "FAIL"
    print(f"  the checks add:         {added:8.1f} ms  ({med(checked) / med(unchecked):.1f}x the baseline; target <= 2000 ms)  {verdict}")
    print("  by step (as the daemon times them, medians):")
    for step in ("install", "import", "start", "tests"):
        if step in steps:
            print(f"    {step:8} {med(steps[step]):8.1f} ms")


if __name__ == "__main__":
    main()
