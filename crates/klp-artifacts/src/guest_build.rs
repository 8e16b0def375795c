//! How a guest crate is built: the nested cargo's command line, flags and environment.
//!
//! `build.rs` includes this file (`#[path]`) to build the embedded guests, and `klp build`
//! uses it through [`crate::guest_build`] to build a copy of the tree the same way, so that
//! both builds of a source change compile exactly as the running kernel did. Every guest crate
//! is compiled with `cargo rustc --release --manifest-path <guest-kernel>/Cargo.toml --target
//! wasm32-unknown-unknown --target-dir DIR -p CRATE -- <link args>` (docs/ABI.md), in an
//! environment cleared of the outer build's flags, wrappers and target.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The guests' target triple.
pub const TARGET: &str = "wasm32-unknown-unknown";

/// Arguments of the kernel: keep the symbol table and relocations for kallsyms and the
/// instrumentation pass, export the function table and let it grow into the ftrace table.
/// All guests drop the std's DWARF (the name and linking sections stay) and use one codegen
/// unit, so that `static` functions and variables stay local symbols with their own names
/// (several units promote them to hidden globals named `….llvm.NNNN`).
pub const KERNEL_ARGS: &[&str] = &[
    "-C",
    "link-arg=--emit-relocs",
    "-C",
    "link-arg=--export-table",
    "-C",
    "link-arg=--growable-table",
    "-C",
    "strip=debuginfo",
    "-C",
    "codegen-units=1",
];

/// Arguments of modules: relocatable objects that use the kernel's memory and leave
/// kernel symbols undefined for the loader.
pub const MODULE_ARGS: &[&str] = &[
    "-C",
    "link-arg=--import-memory",
    "-C",
    "link-arg=--emit-relocs",
    "-C",
    "link-arg=--unresolved-symbols=ignore-all",
    "-C",
    "strip=debuginfo",
    "-C",
    "codegen-units=1",
];

/// Variables of the outer build that must not reach the nested one.
pub const LEAKING_ENV: &[&str] = &[
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_ENCODED_RUSTDOCFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_BUILD_RUSTC_WRAPPER",
    "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_INCREMENTAL",
    "__CARGO_FIX_PLZ",
];

/// The nested cargo's `CARGO_ENCODED_RUSTFLAGS` for the tree at `root` (the directory holding
/// `guest-kernel/`): `--remap-path-prefix` flags that make every source path a guest embeds
/// (panic locations) relative to `root`, wherever the checkout is. Cargo hands rustc the paths
/// of crates below the guest workspace root relative to it (`src/init.rs`,
/// `modules/hello/src/lib.rs`) and the others absolute (`/…/patches/…`, `/…/abi/…`): the first
/// become `guest-kernel/src/init.rs`, the others `patches/…`, as they were when the guests
/// belonged to the root workspace. No prefix matches both kinds of path.
///
/// # Errors
///
/// When `root/guest-kernel` cannot be listed.
pub fn remap_flags(root: &Path) -> io::Result<String> {
    let mut dirs = Vec::new();
    for entry in fs::read_dir(root.join("guest-kernel"))? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            dirs.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    // Sorted: the flags are part of the guests' fingerprints.
    dirs.sort();
    let mut flags = vec![format!("--remap-path-prefix={}=", root.display())];
    flags.extend(
        dirs.iter()
            .map(|dir| format!("--remap-path-prefix={dir}=guest-kernel/{dir}")),
    );
    Ok(flags.join("\x1f"))
}

/// The nested cargo that builds guest crate `package` of the tree at `root` into
/// `target_dir`, with [`KERNEL_ARGS`] if `kernel`, else [`MODULE_ARGS`], and `rustflags`
/// (from [`remap_flags`]). Runs `$CARGO` (the cargo of the build or test that runs it), else
/// `cargo`, in `root`, so that `root/rust-toolchain.toml` picks the toolchain. Standard
/// output and error are the caller's to set.
pub fn cargo_rustc(
    root: &Path,
    target_dir: &Path,
    rustflags: &str,
    package: &str,
    kernel: bool,
) -> Command {
    let mut cargo =
        Command::new(std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo")));
    for var in LEAKING_ENV {
        cargo.env_remove(var);
    }
    cargo
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags)
        .current_dir(root)
        .args(["rustc", "--release", "--manifest-path"])
        .arg(root.join("guest-kernel/Cargo.toml"))
        .args(["--target", TARGET, "--target-dir"])
        .arg(target_dir)
        .args(["-p", package, "--"])
        .args(if kernel { KERNEL_ARGS } else { MODULE_ARGS });
    cargo
}

/// Where the build of `package` into `target_dir` leaves its wasm:
/// `target_dir/wasm32-unknown-unknown/release/<package, `-` as `_`>.wasm`.
pub fn output(target_dir: &Path, package: &str) -> PathBuf {
    target_dir
        .join(TARGET)
        .join("release")
        .join(format!("{}.wasm", package.replace('-', "_")))
}

/// The package name in a crate's Cargo.toml (`name = "..."` of `[package]`).
///
/// # Errors
///
/// When the manifest cannot be read or has no `[package]` name.
pub fn package_name(manifest: &Path) -> io::Result<String> {
    let text = fs::read_to_string(manifest)?;
    let mut in_package = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package && let Some(value) = line.strip_prefix("name") {
            let value = value.trim_start().trim_start_matches('=').trim();
            return Ok(value.trim_matches('"').to_string());
        }
    }
    Err(io::Error::other(format!(
        "{}: no [package] name",
        manifest.display()
    )))
}
