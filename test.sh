#!/usr/bin/env bash
# Runs every test of klp-wasm from a fresh clone: formatting, lints (host and guest crates), the
# crate graph's invariants (docs/crate-graph.py), unit, integration and transcript tests, the
# browser demo in headless Chromium, and one quick run of every benchmark.
# The guest toolchain target is installed by crates/klp-artifacts/build.rs when missing.
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n==> %s\n' "$*"; }

step "rustfmt"
cargo fmt --all --check

step "clippy (the host workspace; klp-web too, compiled for the host as rust-analyzer sees it)"
cargo clippy --release --workspace --all-targets -- -D warnings

step "crate graph: the passes and the core stay off wasmtime and the artifacts"
python3 docs/crate-graph.py --check

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
