#!/bin/sh
# Lints every guest crate for wasm32 (the workspace's `cargo clippy` only covers host crates).
# Usage: guest-kernel/clippy.sh [extra clippy args]
set -eu
cd "$(dirname "$0")/.."
packages=""
for manifest in guest-kernel/Cargo.toml abi/Cargo.toml guest-kernel/klp-guest/Cargo.toml \
    guest-kernel/modules/*/Cargo.toml patches/*/Cargo.toml; do
    name=$(sed -n 's/^name = "\(.*\)"/\1/p' "$manifest" | head -n 1)
    packages="$packages -p $name"
done
# shellcheck disable=SC2086
exec cargo clippy --release --target wasm32-unknown-unknown --target-dir target/guest $packages "$@" -- -D warnings
