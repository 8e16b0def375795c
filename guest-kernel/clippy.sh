#!/bin/sh
# Lints every guest crate for wasm32: the guest workspace (guest-kernel/Cargo.toml: the kernel,
# klp-guest, the modules and the patches), and klp-abi, a member of the host workspace whose
# wasm32-only layout checks the host's `cargo clippy` does not compile.
# Usage: guest-kernel/clippy.sh [extra clippy args]
set -eu
cd "$(dirname "$0")/.."
cargo clippy --release --target wasm32-unknown-unknown --target-dir target/guest \
    --manifest-path guest-kernel/Cargo.toml --workspace "$@" -- -D warnings
exec cargo clippy --release --target wasm32-unknown-unknown --target-dir target/guest \
    -p klp-abi "$@" -- -D warnings
