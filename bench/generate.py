#!/usr/bin/env python3
"""Benchmark of appforge's own time for one generation (not a test).

A local OpenAI-compatible server answers at once with a 20-file app
(streamed). Measured in one run, medians:
 - baseline: the same streamed answer fetched straight from the server;
 - the provider round trip inside the daemon, as `generate` reports it
   (`duration_ms`: the request and its streamed reply read to the end,
   continuations included; no parsing, no checks);
 - the whole `appforge generate --save --no-check` command (RUNS times): the
   client's start, the round trip, parsing the reply into files, the path
   checks, the Python syntax check of every .py file, and saving; and that
   minus the round trip, appforge's own time (target: at most 100 ms);
 - the whole `appforge generate --save` command with its checks by running
   (RUNS_CHECKED times): the above, plus installing the requirements into
   the shared environment (kept in .tools/bench/appforge-envs, so warm after
   the first run), `import app`, starting the app and asking for `/`.
Run with `make bench` (builds release binaries first).
"""
import http.server
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("APPFORGE_BIN_DIR", os.path.join(ROOT, "target", "release"))
RUNS = int(os.environ.get("RUNS", "50"))
RUNS_CHECKED = int(os.environ.get("RUNS_CHECKED", "10"))
ENV_DIR = os.path.join(ROOT, ".tools", "bench", "appforge-envs")


def twenty_files():
    files = ["### app.py\n```python\nfrom flask import Flask, render_template\n\napp = Flask(__name__)\n\n\n"
             "@app.get('/')\ndef index():\n    return render_template('index.html')\n```\n"]
    for i in range(15):
        body = "".join(f"def handler_{i}_{j}(x):\n    return x * {j} + {i}\n\n" for j in range(40))
        files.append(f"### app/module_{i}.py\n```python\n{body}```\n")
    files.append("### templates/index.html\n```html\n" + "<p>hello</p>\n" * 200 + "```\n")
    files.append("### static/app.js\n```js\n" + "console.log('x');\n" * 200 + "```\n")
    files.append("### static/style.css\n```css\n" + "p { color: red; }\n" * 100 + "```\n")
    files.append("### requirements.txt\n```\nflask\n```\n")
    return "\n".join(files)


REPLY = twenty_files()


def sse_body():
    chunks = [REPLY[i:i + 400] for i in range(0, len(REPLY), 400)]
    events = [{"choices": [{"index": 0, "delta": {"content": c}, "finish_reason": None}]} for c in chunks]
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                   "x_groq": {"usage": {"prompt_tokens": 100, "completion_tokens": 2000, "total_tokens": 2100}}})
    return "".join(f"data: {json.dumps(e)}\n\n" for e in events).encode() + b"data: [DONE]\n\n"


BODY = sse_body()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args):
        pass


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}/v1"
    work = tempfile.mkdtemp(prefix="appforge-bench-gen-")
    env = dict(os.environ, APPFORGE_SOCKET=os.path.join(work, "s.sock"),
               APPFORGE_DATA_DIR=os.path.join(work, "data"), XDG_CONFIG_HOME=os.path.join(work, "cfg"))
    env.pop("GROQ_API_KEY", None)
    daemon = subprocess.Popen([os.path.join(BIN, "appforged"), "--provider", "openai", "--base-url", base,
                               "--env-dir", ENV_DIR, "--web-addr", "off"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = os.path.join(BIN, "appforge")
    try:
        deadline = time.time() + 30
        while subprocess.run([client, "ping"], env=env, capture_output=True).returncode != 0:
            if time.time() > deadline or daemon.poll() is not None:
                sys.exit("appforged did not start")
            time.sleep(0.05)
        subprocess.run([client, "signup", "bench@example.com", "--password-stdin"], env=env,
                       input=b"bench-password\n", check=True, capture_output=True)
        fetch = []
        for _ in range(RUNS):
            start = time.perf_counter()
            req = urllib.request.Request(base + "/chat/completions", data=b"{}", method="POST")
            urllib.request.urlopen(req).read()
            fetch.append((time.perf_counter() - start) * 1000)
        def generate(*flags):
            start = time.perf_counter()
            out = subprocess.run([client, "--json", "generate", "bench app", "--save", *flags],
                                 env=env, capture_output=True)
            took = (time.perf_counter() - start) * 1000
            if out.returncode != 0:
                sys.exit(f"appforge generate {' '.join(flags)} failed: {out.stderr.decode()[-500:]}")
            doc = json.loads(out.stdout)
            assert len(doc["files"]) == 20, doc
            return doc["duration_ms"], took

        trip, unchecked = zip(*[generate("--no-check") for _ in range(RUNS)])
        generate()  # the first checked run may make the environment: not counted
        checked = [generate()[1] for _ in range(RUNS_CHECKED)]
        f, t = statistics.median(fetch), statistics.median(trip)
        u, c = statistics.median(unchecked), statistics.median(checked)
        own = statistics.median(w - r for w, r in zip(unchecked, trip))
        print(f"runs: {RUNS} (checked: {RUNS_CHECKED}), files per generation: 20, reply bytes: {len(REPLY)}")
        rows = [
            ("baseline: fetch of the streamed answer", f, ""),
            ("provider round trip in the daemon (duration_ms, whole ms)", t, ""),
            ("whole `generate --save --no-check` (parse, syntax check, save)", u, ""),
            ("  minus its round trip: appforge's own time", own, "  (target <= 100 ms)"),
            ("whole `generate --save` (also checks by running the app)", c, ""),
        ]
        for label, ms, note in rows:
            print(f"{label:64} median {ms:8.2f} ms{note}")
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
        server.shutdown()


if __name__ == "__main__":
    main()
