//! Builds the guest kernel and modules for wasm32 with a nested cargo, and embeds them.
//!
//! Every guest crate (`guest-kernel`, `guest-kernel/modules/*`, `patches/*`: the guest
//! workspace, rooted at `guest-kernel/Cargo.toml`) is compiled with `cargo rustc --release
//! --manifest-path guest-kernel/Cargo.toml --target wasm32-unknown-unknown --target-dir
//! target/guest -p CRATE -- <link args>` as `docs/ABI.md` prescribes, in a clean environment
//! (nothing of the outer build's flags, wrappers or target leaks in; its only flags keep the
//! embedded source paths relative to the repository root). `$OUT_DIR/artifacts.rs`, included by
//! `src/lib.rs`, then embeds the kernel and every module with `include_bytes!`.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const TARGET: &str = "wasm32-unknown-unknown";

/// Arguments of the kernel: keep the symbol table and relocations for kallsyms and the
/// instrumentation pass, export the function table and let it grow into the ftrace table.
/// All guests drop the std's DWARF (the name and linking sections stay) and use one codegen
/// unit, so that `static` functions and variables stay local symbols with their own names
/// (several units promote them to hidden globals named `….llvm.NNNN`).
const KERNEL_ARGS: &[&str] = &[
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
const MODULE_ARGS: &[&str] = &[
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
const LEAKING_ENV: &[&str] = &[
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
    let release = target_dir.join(TARGET).join("release");
    fs::write(
        out_dir.join("artifacts.rs"),
        artifacts_rs(&release, &guests),
    )
    .expect("writing artifacts.rs");
}

/// The package name in a crate's Cargo.toml (`name = "..."` of `[package]`).
fn package_name(manifest: &Path) -> io::Result<String> {
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

/// The nested cargo's `CARGO_ENCODED_RUSTFLAGS`: `--remap-path-prefix` flags that make every
/// source path a guest embeds (panic locations) relative to the repository root, wherever the
/// checkout is. Cargo hands rustc the paths of crates below the guest workspace root relative to
/// it (`src/init.rs`, `modules/hello/src/lib.rs`) and the others absolute (`/…/patches/…`,
/// `/…/abi/…`): the first become `guest-kernel/src/init.rs`, the others `patches/…`, as they
/// were when the guests belonged to the root workspace. No prefix matches both kinds of path.
fn remap_flags(root: &Path) -> io::Result<String> {
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

/// Runs the nested cargo for one guest crate.
fn build(root: &Path, target_dir: &Path, rustflags: &str, guest: &Guest) {
    let mut cargo = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
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
        .args(["-p", &guest.package, "--"])
        .args(if guest.kernel {
            KERNEL_ARGS
        } else {
            MODULE_ARGS
        })
        .stdout(Stdio::from(io::stderr()));
    let status = cargo.status().expect("running the nested cargo");
    assert!(
        status.success(),
        "building guest crate {} for {TARGET} failed",
        guest.package
    );
}

/// `$OUT_DIR/artifacts.rs`: `KERNEL` and `MODULES` as `include_bytes!` of the built files.
fn artifacts_rs(release: &Path, guests: &[Guest]) -> String {
    let wasm = |guest: &Guest| release.join(format!("{}.wasm", guest.package.replace('-', "_")));
    let mut out = String::from("// Generated by build.rs.\n\n");
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
