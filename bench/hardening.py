#!/usr/bin/env python3
"""Benchmark of the daemon under the attacks of an unauthenticated local
client (not a test: figures, no assertions).

Prints, each against the idle daemon measured in the same run:
- idle RSS (median of 5 starts; target <= 8 MiB);
- 200 concurrent sign-ins with unknown emails, each its own client process:
  peak RSS while they run (target <= idle + 40 MiB) and RSS 5 s after the
  last one ended (target <= idle + 4 MiB), with the sign-ins' median time;
- 250 connections that each announce a 16 MiB frame and send nothing
  (run with --max-connections-per-client 300, so the frame limit, not the
  per-client limit, is what is measured): peak RSS;
- one process holding every connection it can, reconnecting as they are
  dropped, while `appforge ping` runs 50 times: pings answered;
- the dashboard: 40 connections without a session each sending a 15 MB
  body: peak RSS (target <= idle + 4 MiB);
- the dashboard: 130 connections without a session each sending a full head
  and then a byte of body a second, reconnecting when dropped, while a
  signed-in browser calls `Whoami` 100 times: calls answered (target >= 99 %).
- 64 signed-in connections each sending one 15 MB frame at once: peak RSS
  (target: within the 64 MiB budget of frames in flight);
- 16 processes x 16 silent connections, re-opened when dropped, while
  `appforge ping` runs 100 times: pings answered (target >= 99 %).
Run with `make bench` (builds release binaries first).
"""
import json
import sys
import re
import os
import socket
import statistics
import struct
import shutil
import subprocess
import tempfile
import threading
import time

from benchlib import BIN, Appforged, Cleanup  # same folder
from ipc import rss_kib  # same folder: one reading of VmRSS for both benches

CLIENT = os.path.join(BIN, "appforge")


class Daemon(Appforged):
    """A release appforged in a temporary folder of its own, which `close`
    stops and removes."""

    def __init__(self, *args):
        self.cleanup = Cleanup()
        self.work = tempfile.mkdtemp(prefix="appforge-bench-hardening-")
        super().__init__(self.work, list(args), self.cleanup)
        self.socket = self.env["APPFORGE_SOCKET"]
        time.sleep(0.5)

    def rss(self):
        return rss_kib(self.pid) / 1024

    def close(self):
        self.cleanup.run()
        shutil.rmtree(self.work, ignore_errors=True)


def sample_peak(daemon, running):
    peak = daemon.rss()
    while running():
        peak = max(peak, daemon.rss())
        time.sleep(0.005)
    return peak


def idle_rss():
    figures = []
    for _ in range(5):
        d = Daemon()
        figures.append(d.rss())
        d.close()
    return statistics.median(figures)


def signin_storm():
    d = Daemon()
    idle = d.rss()
    procs = []
    started = time.perf_counter()
    times = []
    for i in range(200):
        procs.append((time.perf_counter(), subprocess.Popen(
            [CLIENT, "login", f"nobody-{i}@example.com", "--password-stdin"],
            env=d.env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )))
    for _, p in procs:
        p.stdin.write(b"wrong-password-123\n")
        p.stdin.close()
    peak_box = []
    waiter = threading.Thread(target=lambda: peak_box.append(
        sample_peak(d, lambda: any(p.poll() is None for _, p in procs))))
    waiter.start()
    for start, p in procs:
        p.wait()
        times.append((time.perf_counter() - start) * 1000)
    waiter.join()
    took = time.perf_counter() - started
    time.sleep(5)
    after = d.rss()
    d.close()
    return idle, peak_box[0], after, statistics.median(times), took


def frame_storm():
    d = Daemon("--max-connections-per-client", "300", "--max-connections", "300")
    idle = d.rss()
    conns = []
    refused = 0
    for _ in range(250):
        s = socket.socket(socket.AF_UNIX)
        s.connect(d.socket)
        s.sendall(struct.pack("<I", 16 * 1024 * 1024))
        conns.append(s)
    peak = d.rss()
    for s in conns:
        s.settimeout(10)
        try:
            if b"over the 8192-byte limit" in s.recv(4096):
                refused += 1
        except OSError:
            pass
        peak = max(peak, d.rss())
        s.close()
    d.close()
    return idle, peak, refused


def hogging():
    d = Daemon()
    stop = threading.Event()
    held = []
    most = [0]

    def hog():
        while not stop.is_set():
            held[:] = [s for s in held if s.fileno() != -1]
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(d.socket)
                held.append(s)
                most[0] = max(most[0], len(held))
            except OSError:
                time.sleep(0.01)
            if len(held) >= 256:
                for s in held[:32]:
                    s.close()
                del held[:32]

    t = threading.Thread(target=hog)
    t.start()
    time.sleep(0.5)
    answered = sum(
        subprocess.run([CLIENT, "ping"], env=d.env, capture_output=True).returncode == 0
        for _ in range(50)
    )
    stop.set()
    t.join()
    for s in held:
        s.close()
    d.close()
    return answered, most[0]


def dashboard_daemon():
    """A daemon with its dashboard on a free port, and that port's address."""
    d = Daemon("--web-addr", "127.0.0.1:0")
    url = json.loads(d.call("--json", "status").stdout)["web_url"]
    host, port = url[len("http://"):].rstrip("/").rsplit(":", 1)
    return d, (host, int(port))


def dashboard_sign_in(d, addr):
    """Signs a browser in by link: its session cookie, CSRF token and the
    API's call path (`/api/KEY/call`, from the redirect's `#csrf=…&api=…`)."""
    d.call("signup", "bench@example.com", "--password-stdin", input=b"bench-password-123\n")
    link = json.loads(d.call("--json", "dashboard", "--no-open").stdout)["url"]
    s = socket.create_connection(addr, timeout=10)
    s.sendall(f"GET {link[link.index('/login'):]} HTTP/1.1\r\nHost: {addr[0]}:{addr[1]}\r\n"
              "Connection: close\r\n\r\n".encode())
    head = s.recv(65536).decode()
    s.close()
    cookie = next(l.split(":", 1)[1].split(";")[0].strip() for l in head.split("\r\n")
                  if l.lower().startswith("set-cookie:"))
    fragment = next(l.split("#", 1)[1].strip() for l in head.split("\r\n")
                    if l.lower().startswith("location:"))
    fields = dict(pair.split("=", 1) for pair in fragment.split("&"))
    return cookie, fields["csrf"], f"/api/{fields['api']}/call"


def http_head(addr, method, path, headers, length):
    lines = [f"{method} {path} HTTP/1.1", f"Host: {addr[0]}:{addr[1]}",
             f"Origin: http://{addr[0]}:{addr[1]}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def dashboard_big_bodies():
    d, addr = dashboard_daemon()
    # The API's path, as if known: the session check is what is measured.
    _, _, call = dashboard_sign_in(d, addr)
    idle = d.rss()
    body = 15 * 1024 * 1024
    answered = [0]
    lock = threading.Lock()

    def send():
        s = socket.create_connection(addr, timeout=20)
        try:
            s.sendall(http_head(addr, "POST", call,
                                {"Content-Type": "application/json"}, body))
            chunk = b" " * 65536
            sent = 0
            while sent < body:
                sent += s.send(chunk[:min(len(chunk), body - sent)])
        except OSError:
            pass
        try:
            if s.recv(64).startswith(b"HTTP/1.1 401"):
                with lock:
                    answered[0] += 1
        except OSError:
            pass
        s.close()

    threads = [threading.Thread(target=send) for _ in range(40)]
    for t in threads:
        t.start()
    peak = sample_peak(d, lambda: any(t.is_alive() for t in threads))
    for t in threads:
        t.join()
    d.close()
    return idle, peak, answered[0]


def dashboard_slow_bodies():
    d, addr = dashboard_daemon()
    cookie, csrf, call = dashboard_sign_in(d, addr)
    stop = threading.Event()

    def trickle():
        while not stop.is_set():
            try:
                s = socket.create_connection(addr, timeout=1)
                s.sendall(http_head(addr, "POST", call, {}, 100000))
                while not stop.is_set():
                    try:
                        if not s.recv(4096):
                            break
                    except socket.timeout:
                        s.sendall(b" ")
            except OSError:
                time.sleep(0.05)
            finally:
                try:
                    s.close()
                except Exception:
                    pass

    threads = [threading.Thread(target=trickle) for _ in range(130)]
    for t in threads:
        t.start()
    time.sleep(2)
    ok = 0
    request = b'"Whoami"'
    for _ in range(100):
        try:
            s = socket.create_connection(addr, timeout=5)
            s.sendall(http_head(addr, "POST", call,
                                {"Cookie": cookie, "X-CSRF-Token": csrf,
                                 "Content-Type": "application/json", "Connection": "close"},
                                len(request)) + request)
            answer = b""
            while True:
                part = s.recv(65536)
                if not part:
                    break
                answer += part
            s.close()
            ok += answer.startswith(b"HTTP/1.1 200") and b"bench@example.com" in answer
        except OSError:
            pass
    stop.set()
    for t in threads:
        t.join()
    d.close()
    return ok


def protocol_version():
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "shared", "src", "protocol.rs")) as f:
        return int(re.search(r"PROTOCOL_VERSION: u32 = (\d+)", f.read()).group(1))


def frame(payload):
    return struct.pack("<I", len(payload)) + payload


def bincode_str(text):
    # bincode 2, standard config: a varint length (short form below 251).
    data = text.encode()
    assert len(data) < 251
    return bytes([len(data)]) + data


def hello_frame():
    # ClientFrame::Hello (variant 0) { protocol, client_version }.
    return frame(bytes([0, protocol_version()]) + bincode_str("bench"))


def authenticate_frame(token):
    # ClientFrame::Authenticate (variant 2) (SessionToken).
    return frame(bytes([2]) + bincode_str(token))


def signed_up(d):
    subprocess.run([CLIENT, "signup", "bench@example.com", "--password-stdin"], env=d.env,
                   input=b"a-good-password-123\n", check=True, capture_output=True)
    config = d.env["XDG_CONFIG_HOME"]
    for root, _, files in os.walk(config):
        if "session.json" in files:
            with open(os.path.join(root, "session.json")) as f:
                return json.load(f)["token"]
    raise RuntimeError(f"no session.json under {config}")


def signed_in_frames():
    d = Daemon("--max-connections-per-client", "100")
    token = signed_up(d)
    time.sleep(2)
    idle = d.rss()
    size = 15 * 1000 * 1000
    payload = struct.pack("<I", size) + b"x" * size
    greeting = hello_frame() + authenticate_frame(token)
    refused = [0]

    def send():
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(60)
        try:
            s.connect(d.socket)
            s.sendall(greeting)
            s.sendall(payload)
        except OSError:
            pass
        try:
            if b"MiB of requests" in s.recv(1 << 16) + s.recv(1 << 16):
                refused[0] += 1
        except OSError:
            pass
        s.close()

    threads = [threading.Thread(target=send) for _ in range(64)]
    for t in threads:
        t.start()
    peak = sample_peak(d, lambda: any(t.is_alive() for t in threads))
    for t in threads:
        t.join()
    d.close()
    return idle, peak, refused[0]


SILENT_HOLDER = r'''
import select, socket, sys, time
path, hello, n, secs = sys.argv[1], bytes.fromhex(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
conns, deadline = [], time.time() + secs
while time.time() < deadline:
    while len(conns) < n:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            s.sendall(hello)
        except OSError:
            s.close()
            break
        conns.append(s)
    ready, _, _ = select.select(conns, [], [], 0.05) if conns else ([], [], time.sleep(0.05))
    for s in ready:
        try:
            data = s.recv(65536)
        except OSError:
            data = b""
        if not data:
            conns.remove(s)
            s.close()
'''


def silent_flood():
    d = Daemon()
    fds = lambda: len(os.listdir(f"/proc/{d.pid}/fd"))
    idle_fds = fds()
    holders = [subprocess.Popen([sys.executable, "-c", SILENT_HOLDER, d.socket,
                                 hello_frame().hex(), "16", "120"]) for _ in range(16)]
    deadline = time.time() + 30
    while fds() < idle_fds + 200 and time.time() < deadline:
        time.sleep(0.05)
    held = fds() - idle_fds
    answered = sum(
        subprocess.run([CLIENT, "ping"], env=d.env, capture_output=True).returncode == 0
        for _ in range(100)
    )
    for p in holders:
        p.kill()
        p.wait()
    d.close()
    return answered, held


def main():
    idle = idle_rss()
    print(f"idle RSS, median of 5 starts:       {idle:6.2f} MiB  (target <= 8 MiB)")
    base, peak, after, median_ms, took = signin_storm()
    print(f"200 concurrent failed sign-ins:    idle {base:5.2f} MiB, peak {peak:6.2f} MiB "
          f"(+{peak - base:5.2f}; target +40), 5 s after {after:5.2f} MiB "
          f"(+{after - base:4.2f}; target +4); median sign-in {median_ms:.0f} ms, "
          f"all in {took:.1f} s")
    base, peak, refused = frame_storm()
    print(f"250 x 16 MiB frame prefixes:       idle {base:5.2f} MiB, peak {peak:6.2f} MiB "
          f"(+{peak - base:5.2f}); {refused}/250 refused at once")
    answered, most = hogging()
    print(f"idle-connection hog ({most} held):   {answered}/50 pings answered")
    base, peak, answered = dashboard_big_bodies()
    print(f"40 x 15 MB bodies, no session:     idle {base:5.2f} MiB, peak {peak:6.2f} MiB "
          f"(+{peak - base:5.2f}; target +4); {answered}/40 refused from their heads")
    ok = dashboard_slow_bodies()
    print(f"130 slow bodies, no session:       {ok}/100 signed-in calls answered (target >= 99)")

    base, peak, refused = signed_in_frames()
    print(f"64 signed-in 15 MB frames:         idle {base:5.2f} MiB, peak {peak:6.2f} MiB "
          f"(+{peak - base:5.2f}; target within the 64 MiB budget); "
          f"{refused}/64 refused for the budget")
    answered, held = silent_flood()
    print(f"16 x 16 silent connections ({held} held): {answered}/100 pings answered "
          f"(target >= 99 %)")


if __name__ == "__main__":
    main()
