#!/usr/bin/env bash
# Runs every test of klp-wasm from a fresh clone: formatting, lints (host and guest crates),
# unit, integration and transcript tests, the browser demo in headless Chromium, and one quick
# run of every benchmark.
# The guest toolchain target is installed by host/build.rs when missing.
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n==> %s\n' "$*"; }

step "rustfmt"
cargo fmt --all --check

step "clippy (host, benches)"
cargo clippy --release --all-targets -- -D warnings

step "clippy (guest crates, wasm32)"
guest-kernel/clippy.sh

step "clippy (web, wasm32)"
cargo clippy --release --target wasm32-unknown-unknown -p klp-web -- -D warnings

step "tests"
mkdir -p target
cargo test --release 2>&1 | tee target/test.log

step "browser demo (headless chromium)"
# The klp binary the integration tests just built; the browser test compares with it.
KLP_BIN=target/release/klp web/test.sh

step "benchmarks (one quick pass each, no timing asserted)"
cargo bench -- --test

# A closing line with the cargo tests' totals (the browser test printed its own count above).
python3 - <<'PY'
import re
passed = failed = 0
for line in open("target/test.log", encoding="utf-8", errors="replace"):
    m = re.match(r"test result: \w+\. (\d+) passed; (\d+) failed", line)
    if m:
        passed += int(m.group(1))
        failed += int(m.group(2))
print(f"\ntests: {passed} passed, {failed} failed")
PY
