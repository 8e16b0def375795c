#!/usr/bin/env bash
# Builds the browser demo into web/dist/: klp-web for wasm32 through wasm-bindgen (--target web),
# the page (web/www/), the very guest kernel the klp command embeds (as
# crates/klp-artifacts/build.rs leaves it in target/guest), and a modules.json that names it and
# describes every module. The modules themselves are not copied: klp-web embeds them
# (klp-artifacts), as klp does, at /lib/modules/<release>.
# Installs wasm-bindgen-cli at exactly the version of the wasm-bindgen crate in Cargo.lock.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
dist=web/dist
target=wasm32-unknown-unknown

# The wasm32 std (rust-toolchain.toml names the target, but rustup does not add it to a toolchain
# that is already installed).
sysroot=$(rustc --print sysroot)
if [ ! -d "$sysroot/lib/rustlib/$target/lib" ]; then
  rustup target add "$target"
fi

# wasm-bindgen-cli must match the wasm-bindgen crate in Cargo.lock exactly; when the one on PATH
# does not, it is installed under target/tools, so no other copy changes.
# (cargo metadata resolves the lock file first if it lacks the crate.)
version=$(cargo metadata --format-version 1 | python3 -c '
import json, sys
print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "wasm-bindgen"))')
bindgen=wasm-bindgen
if [ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $version" ]; then
  tools="$root/target/tools/wasm-bindgen-$version"
  bindgen="$tools/bin/wasm-bindgen"
  if [ "$("$bindgen" --version 2>/dev/null || true)" != "wasm-bindgen $version" ]; then
    echo "==> installing wasm-bindgen-cli $version into $tools"
    # --locked first; when a locked dependency is not to be had from the registry, resolve anew.
    cargo install wasm-bindgen-cli --version "$version" --locked --root "$tools" \
      || cargo install wasm-bindgen-cli --version "$version" --root "$tools"
  fi
fi

echo "==> cargo build -p klp-web --release --target $target"
cargo build -p klp-web --release --target "$target"

echo "==> wasm-bindgen --target web"
rm -rf "$dist"
mkdir -p "$dist/wasm"
"$bindgen" --target web --no-typescript --out-dir "$dist" "target/$target/release/klp_web.wasm"

cp web/www/* "$dist/"

# The guest kernel, and each module's description: every crate of the guest workspace under
# guest-kernel/modules and patches, as crates/klp-artifacts/build.rs finds them (the stem is the
# package name, the module file's stem).
guest=target/guest/$target/release
cp "$guest/guest_kernel.wasm" "$dist/wasm/"
cargo metadata --no-deps --format-version 1 --manifest-path guest-kernel/Cargo.toml | python3 -c '
import json, sys
dist = sys.argv[1]
mods = []
for p in json.load(sys.stdin)["packages"]:
    path = p["manifest_path"]
    if "/guest-kernel/modules/" not in path and "/patches/" not in path:
        continue
    mods.append({"stem": p["name"], "description": p.get("description") or ""})
mods.sort(key=lambda m: m["stem"])
json.dump({"kernel": "wasm/guest_kernel.wasm", "modules": mods}, open(f"{dist}/modules.json", "w"), indent=1)
print(f"==> {dist}: kernel, and descriptions of {len(mods)} modules")
' "$dist"
ls -l "$dist" "$dist/wasm" | awk 'NF > 5 { print $5, $NF }'
