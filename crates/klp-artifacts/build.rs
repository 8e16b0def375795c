//! Builds the guest kernel and modules for wasm32 with a nested cargo, and embeds them.
//!
//! Every guest crate (`guest-kernel`, `guest-kernel/modules/*`, `patches/*`: the guest
//! workspace, rooted at `guest-kernel/Cargo.toml`) is compiled with `cargo rustc --release
//! --manifest-path guest-kernel/Cargo.toml --target wasm32-unknown-unknown --target-dir
//! target/guest -p CRATE -- <link args>` as `docs/ABI.md` prescribes, in a clean environment
//! (nothing of the outer build's flags, wrappers or target leaks in; its only flags keep the
//! embedded source paths relative to the repository root). `$OUT_DIR/artifacts.rs`, included by
//! `src/lib.rs`, then embeds the kernel and every module with `include_bytes!`. The command line
//! is `src/guest_build.rs`'s, which `klp build` uses too.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[path = "src/guest_build.rs"]
mod guest_build;

use guest_build::{TARGET, package_name, remap_flags};

/// A guest crate to build.
struct Guest {
    /// The package name, also the file stem of its module (`livepatch-sample`).
    package: String,
    /// Whether it is the kernel (otherwise a module or livepatch module).
    kernel: bool,
}

fn main() {
    let crate_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = crate_dir
        .ancestors()
        .nth(2)
        .expect("crates/klp-artifacts is two levels below the repository root")
        .to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target_dir = root.join("target").join("guest");

    // The guest workspace (its manifest and lock file are in guest-kernel/), klp-abi, the root
    // manifest klp-abi inherits its package fields from, and the toolchain.
    for path in [
        "abi",
        "guest-kernel",
        "patches",
        "Cargo.toml",
        "rust-toolchain.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }

    let guests = discover(&root).expect("scanning guest crates");
    let rustflags = remap_flags(&root).expect("listing guest-kernel/");
    ensure_wasm_target();
    for guest in &guests {
        build(&root, &target_dir, &rustflags, guest);
    }
    fs::write(
        out_dir.join("artifacts.rs"),
        artifacts_rs(&root, &target_dir, &guests),
    )
    .expect("writing artifacts.rs");
}

/// The kernel, then every crate directory under `guest-kernel/modules` and `patches`: the
/// members of the guest workspace (`guest-kernel/Cargo.toml`).
fn discover(root: &Path) -> io::Result<Vec<Guest>> {
    let mut guests = vec![Guest {
        package: package_name(&root.join("guest-kernel/Cargo.toml"))?,
        kernel: true,
    }];
    for dir in ["guest-kernel/modules", "patches"] {
        let Ok(entries) = fs::read_dir(root.join(dir)) else {
            continue;
        };
        let mut manifests: Vec<PathBuf> = entries
            .map(|e| e.map(|e| e.path().join("Cargo.toml")))
            .collect::<io::Result<_>>()?;
        manifests.retain(|m| m.is_file());
        manifests.sort();
        for manifest in manifests {
            guests.push(Guest {
                package: package_name(&manifest)?,
                kernel: false,
            });
        }
    }
    Ok(guests)
}

fn rustc() -> Command {
    Command::new(env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
}

/// Adds the wasm32 target with rustup when its std is missing (rustup does not add a
/// rust-toolchain.toml target to a toolchain that is already installed).
fn ensure_wasm_target() {
    let output = rustc()
        .args(["--print", "sysroot"])
        .output()
        .expect("running rustc --print sysroot");
    let sysroot = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if sysroot
        .join("lib/rustlib")
        .join(TARGET)
        .join("lib")
        .is_dir()
    {
        return;
    }
    println!("cargo:warning=installing the {TARGET} target with rustup (its std is missing)");
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .stdout(Stdio::from(io::stderr()))
        .status()
        .expect(
            "running rustup (install the target with `rustup target add wasm32-unknown-unknown`)",
        );
    assert!(status.success(), "rustup target add {TARGET} failed");
}

/// Runs the nested cargo for one guest crate.
fn build(root: &Path, target_dir: &Path, rustflags: &str, guest: &Guest) {
    let status =
        guest_build::cargo_rustc(root, target_dir, rustflags, &guest.package, guest.kernel)
            .stdout(Stdio::from(io::stderr()))
            .status()
            .expect("running the nested cargo");
    assert!(
        status.success(),
        "building guest crate {} for {TARGET} failed",
        guest.package
    );
}

/// `$OUT_DIR/artifacts.rs`: `SOURCE_ROOT`, and `KERNEL` and `MODULES` as `include_bytes!` of
/// the built files.
fn artifacts_rs(root: &Path, target_dir: &Path, guests: &[Guest]) -> String {
    let wasm = |guest: &Guest| guest_build::output(target_dir, &guest.package);
    let mut out = String::from("// Generated by build.rs.\n\n");
    let root = root.to_str().expect("the repository's path is UTF-8");
    writeln!(
        out,
        "/// The repository the guests were built from (it holds `guest-kernel/`, `abi/`, \
         `patches/`):\n/// `klp build` copies its `guest-kernel/` unless told another tree.\n\
         pub const SOURCE_ROOT: &str = {root:?};\n"
    )
    .unwrap();
    for guest in guests.iter().filter(|g| g.kernel) {
        writeln!(out, "/// The guest kernel, uninstrumented.").unwrap();
        writeln!(
            out,
            "pub const KERNEL: &[u8] = include_bytes!({:?});",
            wasm(guest)
        )
        .unwrap();
    }
    writeln!(
        out,
        "\n/// Every kernel module and livepatch module: (file stem, wasm), sorted by stem."
    )
    .unwrap();
    writeln!(out, "pub const MODULES: &[(&str, &[u8])] = &[").unwrap();
    let mut modules: Vec<&Guest> = guests.iter().filter(|g| !g.kernel).collect();
    modules.sort_by(|a, b| a.package.cmp(&b.package));
    for guest in modules {
        writeln!(
            out,
            "    ({:?}, include_bytes!({:?})),",
            guest.package,
            wasm(guest)
        )
        .unwrap();
    }
    writeln!(out, "];").unwrap();
    out
}
