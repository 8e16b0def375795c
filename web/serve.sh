#!/usr/bin/env bash
# Serves web/dist/ (built by web/build.sh) on http://127.0.0.1:PORT/ (default 8000): a static
# page, no server-side logic.
set -euo pipefail
cd "$(dirname "$0")"
port=${1:-${PORT:-8000}}
if [ ! -f dist/index.html ]; then
  echo "serve.sh: web/dist is not built; run web/build.sh first" >&2
  exit 1
fi
echo "serving web/dist on http://127.0.0.1:$port/"
exec python3 -m http.server "$port" --bind 127.0.0.1 --directory dist
