#!/usr/bin/env bash
# The browser demo's end-to-end test, from a fresh clone: installs Debian's chromium and npm's
# playwright-core when missing, builds web/dist (web/build.sh) and the klp command, serves
# web/dist on a free localhost port, runs web/test/e2e.mjs, stops the server. Exits non-zero on
# failure. Screenshots and transcripts land in web/test-output/.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

chromium=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
  step "installing chromium (Debian)"
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi

want=$(python3 -c 'import json; print(json.load(open("web/package.json"))["devDependencies"]["playwright-core"])')
have=$(python3 -c 'import json; print(json.load(open("web/node_modules/playwright-core/package.json"))["version"])' 2>/dev/null || true)
if [ "$have" != "$want" ]; then
  step "npm ci (playwright-core $want)"
  (cd web && npm ci --no-audit --no-fund)
fi

step "web/build.sh"
web/build.sh

# The CLI the test compares with. ./test.sh passes the one `cargo test --release` just built
# (KLP_BIN), so the host is not built a second time.
if [ -z "${KLP_BIN:-}" ] || [ ! -x "$KLP_BIN" ]; then
  step "cargo build --release (the klp command the test compares with)"
  cargo build --release
  export KLP_BIN=target/release/klp
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
step "serving web/dist on http://127.0.0.1:$port/"
python3 -m http.server "$port" --bind 127.0.0.1 --directory web/dist >/dev/null 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/', timeout=1)" 2>/dev/null; then
    break
  fi
  sleep 0.1
done

step "web/test/e2e.mjs"
KLP_WEB_URL="http://127.0.0.1:$port/" CHROMIUM="$chromium" node web/test/e2e.mjs
