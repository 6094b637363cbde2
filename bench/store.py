#!/usr/bin/env python3
"""Benchmark of the two stores, SQLite and PostgreSQL (not a test).

Measured, in one run, with two release daemons side by side (one per
store, the offline template provider, three apps running on each) and the
commands interleaved round by round:
  - `appforge generate --save --no-check`, `appforge list` (20+ projects)
    and `appforge ps` whole-command latency on each store: medians, p95 and
    the PostgreSQL/SQLite ratio;
  - `appforge ping` on each, which touches no store: the baseline;
  - what one PostgreSQL round trip costs: pgbench running `SELECT 1`
    (prepared, one client) against the same server.

The PostgreSQL server is started here from the system's initdb and pg_ctl
(as the `postgres` user when run as root), on a temporary folder and a free
port, with its default durability settings (fsync on).

Run from the repository root after `cargo build --release --workspace --bins`:
`python3 bench/store.py [--rounds 30]`.
"""
import argparse
import glob
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import BIN, ROOT, Appforged, Cleanup, finish, log, machine, med_p95  # noqa: E402

PROMPT = "a todo app with title and done flag"


def pg_bin():
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(os.path.realpath(found))
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not dirs:
        sys.exit("PostgreSQL is missing: `make postgres` installs it")
    return dirs[-1]


def as_server_user(argv):
    return (["runuser", "-u", "postgres", "--"] + argv) if os.geteuid() == 0 else argv


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_postgres(work, cleanup):
    pgdir, bindir = os.path.join(work, "pg"), pg_bin()
    os.makedirs(pgdir)
    password = secrets.token_hex(16)
    with open(os.path.join(pgdir, "pwfile"), "w") as f:
        f.write(password)
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", "postgres:postgres", pgdir], check=True)
    subprocess.run(as_server_user([os.path.join(bindir, "initdb"), "-D", os.path.join(pgdir, "data"),
                                   "-U", "appforge", "--auth=scram-sha-256",
                                   f"--pwfile={pgdir}/pwfile", "--locale=C.UTF-8"]),
                   check=True, capture_output=True)
    port = free_port()
    ctl = [os.path.join(bindir, "pg_ctl"), "-D", os.path.join(pgdir, "data")]
    subprocess.run(as_server_user(ctl + ["-l", os.path.join(pgdir, "log"), "-w", "-o",
                                         f"-p {port} -k {pgdir} -c listen_addresses=127.0.0.1",
                                         "start"]), check=True, capture_output=True)
    cleanup.add("stop PostgreSQL", lambda: subprocess.run(
        as_server_user(ctl + ["-m", "fast", "stop"]), capture_output=True))
    env = dict(os.environ, PGPASSWORD=password)
    subprocess.run([os.path.join(bindir, "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "appforge",
                    "-d", "postgres", "-c", "CREATE DATABASE bench"], env=env, check=True,
                   capture_output=True)
    return port, password, bindir


def round_trip_ms(bindir, port, password, work):
    script = os.path.join(work, "select1.sql")
    with open(script, "w") as f:
        f.write("SELECT 1;\n")
    out = subprocess.run([os.path.join(bindir, "pgbench"), "-n", "-M", "prepared", "-c", "1", "-T", "5",
                          "-f", script, "-h", "127.0.0.1", "-p", str(port), "-U", "appforge", "bench"],
                         env=dict(os.environ, PGPASSWORD=password), capture_output=True, text=True,
                         check=True)
    found = re.search(r"latency average = ([0-9.]+) ms", out.stdout)
    return float(found.group(1)) if found else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    for name in ("appforged", "appforge-shim", "appforge"):
        if not os.path.exists(os.path.join(BIN, name)):
            sys.exit(f"build first: cargo build --release --workspace --bins ({name} missing)")
    started = time.time()
    work = tempfile.mkdtemp(prefix="appforge-bench-store-")
    os.chmod(work, 0o755)
    cleanup = Cleanup()
    try:
        log(f"machine: {machine()}")
        port, password, bindir = start_postgres(work, cleanup)
        env_dir = os.path.join(work, "envs")
        python = os.path.join(ROOT, ".venv", "bin", "python")
        common = ["--env-dir", env_dir, "--web-addr", "off"]
        if os.path.exists(python):
            common += ["--python", python]
        sqlite = Appforged(os.path.join(work, "sqlite"), common + ["--port-range", "8700-8749"],
                           cleanup, name="the SQLite daemon")
        pg = Appforged(os.path.join(work, "postgres"),
                       common + ["--port-range", "8750-8799", "--database-url",
                                 f"postgres://appforge@127.0.0.1:{port}/bench"],
                       cleanup, env={"APPFORGE_DATABASE_PASSWORD": password},
                       name="the PostgreSQL daemon")
        sqlite.name, pg.name = "sqlite", "postgres"
        stores = [sqlite, pg]
        for s in stores:
            s.call("signup", "bench@example.com", "--password-stdin", input=b"bench-password\n")
            for i in range(20):
                s.call("generate", PROMPT, "--save", "--no-check", "--name", f"seed{i}")
            for i in range(3):
                s.call("run", f"seed{i}")
        figures = {(s.name, what): [] for s in stores for what in ("ping", "generate --save", "list", "ps")}
        for r in range(args.rounds):
            for s in (stores if r % 2 == 0 else stores[::-1]):
                figures[(s.name, "ping")].append(s.timed("ping"))
                figures[(s.name, "generate --save")].append(
                    s.timed("generate", PROMPT, "--save", "--no-check", "--name", f"r{r}"))
                figures[(s.name, "list")].append(s.timed("list"))
                figures[(s.name, "ps")].append(s.timed("ps"))
        rt = round_trip_ms(bindir, port, password, work)
        log(f"\n{args.rounds} interleaved rounds; whole-command times in ms (median / p95); "
            f"{20 + args.rounds}+ projects and 3 running apps on each store\n")
        log("| command | SQLite | PostgreSQL | PostgreSQL / SQLite | PostgreSQL − SQLite |")
        log("| --- | --- | --- | --- | --- |")
        result = {}
        for what in ("ping", "generate --save", "list", "ps"):
            (sm, sp), (pm, pp) = med_p95(figures[("sqlite", what)]), med_p95(figures[("postgres", what)])
            result[what] = {"sqlite_ms": sm, "postgres_ms": pm}
            log(f"| `{what}` | {sm:.2f} / {sp:.2f} | {pm:.2f} / {pp:.2f} | {pm / sm:.2f}× | {pm - sm:+.2f} |")
        log(f"\none PostgreSQL round trip (pgbench, prepared `SELECT 1`, one client, 5 s): {rt:.3f} ms")
        result["round_trip_ms"] = rt
        print(json.dumps(result))
    finally:
        finish(cleanup, work, args.keep, started)


if __name__ == "__main__":
    main()
