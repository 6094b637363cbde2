#!/usr/bin/env bash
# The quick start's main job: start appforged on a temporary data directory,
# sign up a demo user, generate an app (offline, or with Groq when
# GROQ_API_KEY is set), run it, print its URL and fetch its page once, and
# print a one-time sign-in link to the dashboard. The dashboard takes a free
# port (7070, the daemon's default, may be held by another daemon). The
# daemon and the app keep running so you can go on using them; the last lines
# say how to stop them: the daemon runs with --stop-apps-on-exit, so stopping
# it stops the app too.
set -euo pipefail
cd "$(dirname "$0")/.."
# The binaries; APPFORGE_BIN_DIR names another build (the tests' own).
bin=${APPFORGE_BIN_DIR:-target/debug}
demo_dir=$(mktemp -d "${TMPDIR:-/tmp}/appforge-demo.XXXXXX")
export APPFORGE_SOCKET="$demo_dir/appforged.sock"
export APPFORGE_DATA_DIR="$demo_dir/data"
export XDG_CONFIG_HOME="$demo_dir/config"

"$bin/appforged" --web-addr 127.0.0.1:0 --stop-apps-on-exit >"$demo_dir/appforged.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 1 200); do
  "$bin/appforge" ping >/dev/null 2>&1 && break
  kill -0 "$daemon_pid" 2>/dev/null || { cat "$demo_dir/appforged.log"; exit 1; }
  sleep 0.05
done
"$bin/appforge" ping

password="demo-password-$RANDOM"
echo "$password" | "$bin/appforge" signup demo@example.com --password-stdin

prompt="a todo app with title, due date and done flag"
echo "generating: $prompt"
"$bin/appforge" generate "$prompt" --save --name demo-todo
echo "running it (the first run installs Flask into a shared environment)"
url=$("$bin/appforge" --json run demo-todo | python3 -c 'import json, sys; print(json.load(sys.stdin)["url"])')
"$bin/appforge" ps
python3 - "$url" <<'PY'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=10) as page:
    body = page.read().decode()
title = body.split("<title>", 1)[-1].split("</title>", 1)[0] if "<title>" in body else "?"
print(f"GET {sys.argv[1]} -> {page.status}, {len(body)} bytes, title: {title}")
PY

# Last, so that its 60 seconds start when the rest is done. `status` says
# why when there is no dashboard.
if ! dashboard=$("$bin/appforge" --json dashboard --no-open | python3 -c 'import json, sys; print(json.load(sys.stdin)["url"])'); then
  dashboard="(none: $("$bin/appforge" --json status | python3 -c 'import json, sys; print(json.load(sys.stdin)["web_off"])'))"
fi

cat <<MSG

The app is running at $url
The dashboard, signed in as demo@example.com (a one-time link, valid 60 s):
  $dashboard
  later: $bin/appforge dashboard (with the exports below) opens a new one
appforged is running (pid $daemon_pid), with its data in $demo_dir.
Use it from this shell with:
  export APPFORGE_SOCKET=$APPFORGE_SOCKET XDG_CONFIG_HOME=$XDG_CONFIG_HOME
  $bin/appforge ps; $bin/appforge logs demo-todo -f; $bin/appforge --help
Stop the daemon and the app (it was started with --stop-apps-on-exit) with:
  kill $daemon_pid
MSG
