//! Data-driven shell tests: every `tests/transcripts/*.sh` runs on a freshly booted kernel and
//! its output must equal the `.out` file beside it (timestamps masked). `KLP_BLESS=1` rewrites
//! the `.out` files. Scripts under `tests/transcripts/foundation/` also run on the kernel
//! without instrumentation and must give the same output: the hook changes nothing visible.

use klp_artifacts as artifacts;
use klp_core::ftrace::code::Mode;

mod common;
mod transcript;
use std::path::{Path, PathBuf};
use transcript::mask_timestamps;

/// Runs a script line by line, echoing each command line as `# line`.
fn run_script(path: &Path, hook: bool) -> String {
    run_script_moving(path, hook, false, Mode::Dynamic)
}

/// [`run_script`], moving the kernel to a fresh store before each line if `moving`, with
/// ftrace in `mode`.
fn run_script_moving(path: &Path, hook: bool, moving: bool, mode: Mode) -> String {
    transcript::run(
        path,
        &transcript::Run {
            hook,
            moving,
            mode,
            modules: None,
        },
    )
}

fn scripts(dir: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all.extend(scripts(&path));
        } else if path.extension().is_some_and(|e| e == "sh") {
            all.push(path);
        }
    }
    all.sort();
    all
}

fn check(path: &Path, actual: &str, failures: &mut Vec<String>) {
    let expected_path = path.with_extension("out");
    if std::env::var_os("KLP_BLESS").is_some() {
        std::fs::write(&expected_path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b);
        let line = first.unwrap_or(expected.lines().count().min(actual.lines().count()));
        failures.push(format!(
            "{}: differs at line {}\n  expected: {:?}\n  actual:   {:?}\n--- actual output ---\n{actual}",
            path.display(),
            line + 1,
            expected.lines().nth(line),
            actual.lines().nth(line)
        ));
    }
}

#[test]
fn every_transcript_matches_its_expected_output() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/transcripts");
    let mut failures = Vec::new();
    let all = scripts(&root);
    assert!(!all.is_empty(), "no transcripts under {}", root.display());
    for path in &all {
        check(path, &run_script(path, true), &mut failures);
    }
    assert!(
        failures.is_empty(),
        "{} of {} transcripts differ:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

/// The move that frees dead instances (klp-wasmtime's migrate) changes nothing visible:
/// modules, patches, tracers and kprobes go on as before.
#[test]
fn every_transcript_is_the_same_when_the_kernel_moves_before_each_command() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/transcripts");
    for path in scripts(&root) {
        let expected = std::fs::read_to_string(path.with_extension("out")).unwrap_or_default();
        let actual = run_script_moving(&path, true, true, Mode::Dynamic);
        assert_eq!(actual, expected, "{} differs when moving", path.display());
    }
}

/// The log lines dynamic ftrace writes when the kernel's code changes (hooks come or go).
fn is_code_swap_line(line: &str) -> bool {
    line.contains("] ftrace: hooks in use: ") || line.contains("] ftrace: no hook in use: ")
}

/// With every call through its slot all the time (`--ftrace=always`), every transcript prints
/// what it prints with dynamic ftrace, but for the log lines of the code swaps (no transcript
/// reads `dyn_ftrace_total_info`, whose selective variant comes when its compile ends:
/// host/tests/dynamic_ftrace.rs reads it after waiting for the compile).
#[test]
fn every_transcript_is_the_same_with_every_call_through_its_slot() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/transcripts");
    let mut failures = Vec::new();
    for path in scripts(&root) {
        let dynamic = std::fs::read_to_string(path.with_extension("out")).unwrap_or_default();
        let expected: String = dynamic
            .split_inclusive('\n')
            .filter(|l| !is_code_swap_line(l))
            .collect();
        let actual = run_script_moving(&path, true, false, Mode::Always);
        if actual != expected {
            failures.push(format!("{}:\n{actual}", path.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "differ with --ftrace=always:\n{}",
        failures.join("\n")
    );
}

#[test]
fn foundation_transcripts_are_the_same_without_instrumentation() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/transcripts/foundation");
    for path in scripts(&root) {
        let expected = std::fs::read_to_string(path.with_extension("out")).unwrap_or_default();
        let actual = run_script(&path, false);
        assert_eq!(
            actual,
            expected,
            "{} differs without instrumentation",
            path.display()
        );
    }
}

/// A file in the host's `/tmp` that the refusals transcript also names inside the kernel; created
/// by this test (holding a valid module, so that reading the host's file would change the
/// outcome) and removed afterwards, unless it was there before.
struct HostTmpFile(Option<PathBuf>);

impl HostTmpFile {
    fn plant(path: &str) -> HostTmpFile {
        let path = PathBuf::from(path);
        if path.exists() {
            return HostTmpFile(None);
        }
        std::fs::write(&path, artifacts::module("test_klp_livepatch").unwrap()).unwrap();
        HostTmpFile(Some(path))
    }
}

impl Drop for HostTmpFile {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[test]
fn the_refusals_transcript_ignores_what_the_hosts_tmp_holds() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/transcripts/livepatch/refusals.sh");
    let expected = std::fs::read_to_string(path.with_extension("out")).unwrap();
    let script = std::fs::read_to_string(&path).unwrap();
    assert!(
        script.contains("insmod /tmp/garbage.wasm") && script.contains("insmod /tmp/nope.wasm")
    );
    let planted = [
        HostTmpFile::plant("/tmp/garbage.wasm"),
        HostTmpFile::plant("/tmp/nope.wasm"),
    ];
    assert_eq!(run_script(&path, true), expected);
    drop(planted);
}

#[test]
fn timestamps_are_masked_but_other_brackets_stay() {
    assert_eq!(
        mask_timestamps("[    0.000123] a [x] [12.1]"),
        "[    T] a [x] [12.1]"
    );
    assert_eq!(mask_timestamps("[12345.123456] b"), "[    T] b");
    assert_eq!(
        mask_timestamps("  cat-1       [000] .....     0.001864: f <-g\n6.12.0: x\n"),
        "  cat-1       [000] .....     T: f <-g\n6.12.0: x\n"
    );
}
