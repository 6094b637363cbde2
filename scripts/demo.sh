#!/usr/bin/env bash
# The quick start's main job: start appforged on a temporary data directory,
# sign up a demo user and show the daemon's status. The daemon keeps running
# so you can go on using it; the last lines say how to stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/debug
demo_dir=$(mktemp -d "${TMPDIR:-/tmp}/appforge-demo.XXXXXX")
export APPFORGE_SOCKET="$demo_dir/appforged.sock"
export APPFORGE_DATA_DIR="$demo_dir/data"
export XDG_CONFIG_HOME="$demo_dir/config"

"$bin/appforged" >"$demo_dir/appforged.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 1 200); do
  "$bin/appforge" ping >/dev/null 2>&1 && break
  kill -0 "$daemon_pid" 2>/dev/null || { cat "$demo_dir/appforged.log"; exit 1; }
  sleep 0.05
done
"$bin/appforge" ping

echo "demo-password-$RANDOM" | "$bin/appforge" signup demo@example.com --password-stdin
"$bin/appforge" whoami
"$bin/appforge" status

cat <<MSG

appforged is running (pid $daemon_pid), with its data in $demo_dir.
Use it from this shell with:
  export APPFORGE_SOCKET=$APPFORGE_SOCKET XDG_CONFIG_HOME=$XDG_CONFIG_HOME
  $bin/appforge --help
Stop it with:
  kill $daemon_pid
MSG
