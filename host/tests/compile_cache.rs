//! wasmtime's compilation cache through `klp run`: the first boot fills it, the next compiles nothing.

mod klp_bin;
use klp_bin::klp;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// A fresh directory under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir =
            std::env::temp_dir().join(format!("klp-cache-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The compiled artifacts under a cache directory, as (path, size, modification time): every
/// file below `modules/` but wasmtime's `.stats` usage counters. A module compiled again would
/// be written anew (new time) or under a new name.
fn artifacts(cache: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, u64, SystemTime)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let meta = std::fs::metadata(&path).unwrap();
            if meta.is_dir() {
                walk(&path, out);
            } else if path.extension().is_none_or(|ext| ext != "stats") {
                out.push((path, meta.len(), meta.modified().unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(&cache.join("modules"), &mut out);
    out.sort();
    out
}

/// Boots, loads a module (compiled on the kernel's engine too) and reads what both print.
const SCRIPT: &str = "cat /proc/version; insmod livepatch-sample; cat /proc/cmdline";

#[test]
fn a_second_boot_finds_the_kernel_and_its_modules_compiled_in_the_cache() {
    let cache = TempDir::new("warm");
    let (status, first, err) = klp(&["run", "--cache-dir", cache.path(), "-c", SCRIPT]);
    assert_eq!(status, 0, "{err}");
    assert!(first.contains("Linux version") && first.contains("this has been live patched"));
    let filled = artifacts(&cache.0);
    // The kernel and livepatch-sample at least.
    assert!(filled.len() >= 2, "{filled:?}");

    let (status, second, err) = klp(&["run", "--cache-dir", cache.path(), "-c", SCRIPT]);
    assert_eq!(status, 0, "{err}");
    assert_eq!(second, first);
    assert_eq!(
        artifacts(&cache.0),
        filled,
        "the second boot compiled again"
    );
}

#[test]
fn the_default_cache_is_under_xdg_cache_home() {
    let xdg = TempDir::new("xdg");
    let out = Command::new(env!("CARGO_BIN_EXE_klp"))
        .args(["run", "-c", "true"])
        .env("XDG_CACHE_HOME", xdg.path())
        .output()
        .expect("klp runs");
    assert!(out.status.success(), "{out:?}");
    assert!(!artifacts(&xdg.0.join("klp-wasm")).is_empty());
}

#[test]
fn no_cache_and_an_unusable_cache_dir_leave_the_boot_compiling() {
    let dir = TempDir::new("unusable");
    let (status, out, err) = klp(&["run", "--no-cache", "-c", "echo booted"]);
    assert_eq!((status, out.as_str(), err.as_str()), (0, "booted\n", ""));

    // A cache directory below a regular file cannot be created: one warning, then the boot.
    let file = dir.0.join("file");
    std::fs::write(&file, b"").unwrap();
    let below = file.join("cache");
    let (status, out, err) = klp(&["run", "--cache-dir", below.to_str().unwrap(), "-c", SCRIPT]);
    assert_eq!(status, 0, "{err}");
    assert!(out.contains("this has been live patched"), "{out}");
    assert_eq!(
        err.matches("warning: compilation cache").count(),
        1,
        "{err}"
    );
}
