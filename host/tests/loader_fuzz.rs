//! Property test of the loader and the linker: generated and mutated modules, insmod'ed from the
//! kernel's /tmp, never panic the host, never hang past the watchdog, and leave no trace.
//!
//! Four kinds of case, each from a deterministic seed (kind, case number): a failure names its
//! case, and `KLP_FUZZ_CASE=KIND:N` replays that one alone:
//! * `module`: a kernel module object generated from `arbitrary` choices (fuzz_objects/generate.rs);
//! * `patch`: a live patch object generated the same way, with `klp_patch` metadata;
//! * `mutated`: a built-in module with its relocations, symbol table, data, code or sections
//!   mutated (fuzz_objects/mutate.rs);
//! * `mutated-patch`: a built-in live patch with its metadata (data words, data relocations)
//!   mutated.
//!
//! Each case is written to `/tmp/fz.wasm` and loaded with the shell's `insmod /tmp/fz.wasm`. A
//! module that loads is disabled (a live patch) and removed with `rmmod fz`; after the refusal or
//! the removal, the kernel's footprint (host/tests/footprint) must be what it was before the
//! insmod. A case running past [`HANG`] (the kernel's watchdog fires after 2 s) aborts the test.
//! A module whose exit traps or spins cannot be removed (as in Linux): the case is counted as
//! `stuck` and a fresh kernel is booted. A mutated built-in module whose own code ran (its init
//! or exit) may change the kernel as any module can (a /proc entry its exit no longer finds,
//! its own kmalloc blocks): it is compared on the loader's part of the footprint only, and when
//! it changed the rest, a fresh kernel is booted for the cases after it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arbitrary::Unstructured;
use klp_artifacts as artifacts;
use klp_core::engine::Engine;
use klp_core::fs;
use klp_shell as shell;
use klp_wasmtime::{self as rt, Options, WasmtimeEngine};

mod common;
mod footprint;
mod fuzz_objects;
use common::Recorder;
use footprint::{Footprint, diff, footprint};
use fuzz_objects::{generate, mutate};

/// How long one case may take before the test calls it a hang: the watchdog
/// (`watchdog_thresh=1`, a lockup after 2 s) ends any one guest call well before.
const HANG: Duration = Duration::from_secs(30);

/// Cases per kernel before a fresh boot (each insmod leaves an instance in the store).
const CASES_PER_BOOT: u32 = 250;

/// Reasons listed per kind in the report, most frequent first.
const REPORT_ROWS: usize = 15;

/// The kinds of case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Module,
    Patch,
    Mutated,
    MutatedPatch,
}

const KINDS: [Kind; 4] = [Kind::Module, Kind::Patch, Kind::Mutated, Kind::MutatedPatch];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Module => "module",
            Kind::Patch => "patch",
            Kind::Mutated => "mutated",
            Kind::MutatedPatch => "mutated-patch",
        }
    }
}

/// SplitMix64: the bytes `arbitrary` reads for one case, from its kind and number.
fn case_bytes(kind: Kind, case: u64, len: usize) -> Vec<u8> {
    let mut state = (kind as u64) << 56 ^ case.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend((z ^ (z >> 31)).to_le_bytes());
    }
    out
}

/// The built-in modules, and which of them are live patches.
fn built_in(patches: bool) -> Vec<&'static [u8]> {
    artifacts::MODULES
        .iter()
        .map(|&(_, wasm)| wasm)
        .filter(|wasm| is_patch(wasm) == patches)
        .collect()
}

fn is_patch(wasm: &[u8]) -> bool {
    wasm.windows(11).any(|w| w == b"livepatch=Y")
}

/// The object and insmod parameters of one case.
fn object(kind: Kind, case: u64) -> (Vec<u8>, String) {
    let bytes = case_bytes(kind, case, 4096);
    let mut u = Unstructured::new(&bytes);
    let built = |patches: bool, u: &mut Unstructured<'_>| {
        let all = built_in(patches);
        u.choose(&all).copied().expect("built-in modules")
    };
    let made = match kind {
        Kind::Module => generate::module(&mut u),
        Kind::Patch => generate::patch(&mut u).map(|wasm| (wasm, String::new())),
        Kind::Mutated => {
            let patches = u.ratio(1, 3).unwrap_or_default();
            let wasm = built(patches, &mut u);
            mutate::module(&mut u, wasm).map(|wasm| (wasm, String::new()))
        }
        Kind::MutatedPatch => {
            let wasm = built(true, &mut u);
            mutate::patch(&mut u, wasm).map(|wasm| (wasm, String::new()))
        }
    };
    made.expect("4 KiB of choices are enough")
}

/// What the cases of one kind did.
#[derive(Default)]
struct Tally {
    cases: u32,
    loaded: u32,
    /// Mutated built-in modules whose own code ran, compared on the loader's part only.
    own_code: u32,
    /// Those of them that changed the rest of the kernel (a fresh kernel follows each).
    own_changes: u32,
    /// Modules that loaded and could not be removed, by the same key as `refused`.
    stuck: BTreeMap<String, u32>,
    /// Refusals by insmod's error and the first line of the kernel's reason.
    refused: BTreeMap<String, u32>,
}

/// Aborts the process when a case runs past [`HANG`]: a hang the watchdog did not end.
struct Deadline(Arc<Mutex<Option<(String, Instant)>>>);

impl Deadline {
    fn new() -> Deadline {
        let current: Arc<Mutex<Option<(String, Instant)>>> = Arc::default();
        let watched = Arc::downgrade(&current);
        std::thread::spawn(move || {
            while let Some(current) = watched.upgrade() {
                if let Some((what, since)) = &*current.lock().unwrap()
                    && since.elapsed() > HANG
                {
                    eprintln!("{what} runs past {HANG:?}: the host hangs");
                    std::process::abort();
                }
                drop(current);
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        Deadline(current)
    }

    fn start(&self, what: String) {
        *self.0.lock().unwrap() = Some((what, Instant::now()));
    }

    fn stop(&self) {
        *self.0.lock().unwrap() = None;
    }
}

/// Names the case when it panics.
struct Naming(String);

impl Drop for Naming {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "failing case: {} (replay it with KLP_FUZZ_CASE=KIND:N)",
                self.0
            );
        }
    }
}

/// A booted kernel and the counts so far.
struct Fuzzer {
    e: WasmtimeEngine,
    since_boot: u32,
    boots: u32,
    tallies: BTreeMap<Kind, Tally>,
    deadline: Deadline,
}

/// What each kernel has loaded before its cases, in turn: nothing, a module that generated
/// patches name as an object (so that their functions for it are patched at once), or the
/// function tracer on every function (so that each module's functions get trampolines).
const SETUPS: [&str; 3] = [
    "true",
    "insmod test_klp_mod_target",
    "echo function > /sys/kernel/tracing/current_tracer",
];

fn boot(setup: &str) -> WasmtimeEngine {
    let mut e = rt::boot(
        artifacts::KERNEL,
        "console=hvc0 watchdog_thresh=1",
        true,
        Options::default(),
    )
    .expect("kernel boots");
    // Grow the module list's storage once, as fault_injection.rs's `prepared` does.
    let (status, text) = sh(
        &mut e,
        &format!("insmod hello; rmmod hello; {setup}; dmesg -C"),
    );
    assert_eq!(status, 0, "{text}");
    e
}

/// Runs `script` in the kernel's shell: its status and what it printed.
fn sh(e: &mut WasmtimeEngine, script: &str) -> (i32, String) {
    let mut host = Recorder::default();
    let status = shell::run_script(e, &mut host, script, shell::Options::default());
    (status, host.text)
}

/// A refusal in a few words: insmod's error, and the kernel's reason: the oops, the loader's
/// message, or livepatch's (the first that is there).
/// Also whether the loader itself gave the reason (so the module's code never ran).
fn refusal(out: &str, log: &str) -> (String, bool) {
    let last = out.trim_end().lines().last().unwrap_or_default();
    let error = last.rsplit(": ").next().unwrap_or_default();
    let lines: Vec<&str> = log
        .lines()
        .map(|l| l.split_once("] ").map_or(l, |(_, rest)| rest))
        .collect();
    let progress = [
        "'fz':",
        "enabling patch",
        "module unloaded",
        "tainting kernel",
    ];
    let reason = lines
        .iter()
        .find(|l| l.starts_with("Oops") || l.contains("BUG:"))
        .or_else(|| {
            lines
                .iter()
                .find(|l| l.starts_with("fz: ") && !progress.iter().any(|p| l.contains(p)))
        })
        .or_else(|| {
            lines
                .iter()
                .find(|l| l.starts_with("livepatch: ") && !progress.iter().any(|p| l.contains(p)))
        })
        .copied()
        .unwrap_or("(nothing logged: the init's own error)");
    let by_loader = reason.starts_with("fz: ");
    let reason = reason.trim_start_matches("fz: invalid module format: ");
    (format!("{error} | {}", normalize(reason)), by_loader)
}

/// Digits masked, file offsets, quoted names and generated or mangled symbol names left out,
/// at most 90 characters: refusals that differ only in those count together.
fn normalize(line: &str) -> String {
    let line = line.split(" (at offset ").next().unwrap_or_default();
    let words: Vec<String> = line
        .split(' ')
        .map(|w| {
            let generated = ["_ZN", ".Lanon", "fz_", ".rodata.", ".data.", ".bss."];
            let numbered = w
                .strip_prefix("sym")
                .is_some_and(|n| n.starts_with(|c: char| c.is_ascii_digit()));
            if numbered || generated.iter().any(|g| w.starts_with(g)) {
                return "<sym>".to_string();
            }
            if w.len() > 2 && w.starts_with('\'') && w.ends_with('\'') {
                return "'<name>'".to_string();
            }
            let mut out = String::new();
            for c in w.chars() {
                let c = if c.is_ascii_digit() { '#' } else { c };
                if !(c == '#' && out.ends_with('#')) {
                    out.push(c);
                }
            }
            out
        })
        .collect();
    words.join(" ").chars().take(90).collect()
}

impl Fuzzer {
    fn new() -> Fuzzer {
        Fuzzer {
            e: boot(SETUPS[0]),
            since_boot: 0,
            boots: 1,
            tallies: BTreeMap::new(),
            deadline: Deadline::new(),
        }
    }

    fn reboot(&mut self) {
        self.e = boot(SETUPS[self.boots as usize % SETUPS.len()]);
        self.since_boot = 0;
        self.boots += 1;
    }

    /// Runs case `case` of `kind`: insmod, then (when it loaded) disable and rmmod; the kernel's
    /// footprint afterwards is as before, unless the module could not be removed.
    fn case(&mut self, kind: Kind, case: u64) {
        if self.since_boot == CASES_PER_BOOT {
            self.reboot();
        }
        self.since_boot += 1;
        let what = format!("{} case {case}", kind.name());
        let _naming = Naming(what.clone());
        let (wasm, params) = object(kind, case);
        fs::write_file(&mut self.e, "/tmp/fz.wasm", &wasm, false).expect("/tmp is writable");
        let mut before = footprint(&mut self.e);
        self.deadline.start(what.clone());
        let (status, out) = sh(&mut self.e, &format!("insmod /tmp/fz.wasm {params}"));
        let loaded = self.e.with_state(|s| s.module("fz").is_some());
        assert_eq!(status == 0, loaded, "{what}: insmod's status: {out}");
        let mut transcript = out.clone();
        if loaded {
            let enabled = "/sys/kernel/livepatch/fz/enabled";
            if fs::read_file(&mut self.e, enabled).is_ok() {
                transcript += &sh(&mut self.e, &format!("echo 0 > {enabled}")).1;
            }
            transcript += &sh(&mut self.e, "rmmod fz").1;
        }
        self.deadline.stop();
        let (_, log) = sh(&mut self.e, "dmesg -c");
        let tally = self.tallies.entry(kind).or_default();
        tally.cases += 1;
        if self.e.with_state(|s| s.module("fz").is_some()) {
            // Its exit trapped or spun: Linux cannot remove such a module either.
            let after_insmod = &transcript[out.len()..];
            *tally
                .stuck
                .entry(refusal(after_insmod, &log).0)
                .or_default() += 1;
            self.reboot();
            return;
        }
        let mut by_loader = false;
        if loaded {
            tally.loaded += 1;
        } else {
            let (why, loader) = refusal(&out, &log);
            by_loader = loader;
            *tally.refused.entry(why).or_default() += 1;
        }
        let mut after = footprint(&mut self.e);
        if kind == Kind::Mutated && !by_loader {
            // A mutated built-in module's own code ran (its init, perhaps its exit): what that
            // code does to the rest of the kernel (a /proc entry its exit no longer finds, a
            // block it no longer frees) is the module's doing. The loader's part must hold.
            tally.own_code += 1;
            let changed = before != after;
            before = loader_owned(before);
            after = loader_owned(after);
            if changed {
                // What else it changed may break later cases: they get a fresh kernel.
                tally.own_changes += 1;
                check(&what, &before, &after, &transcript, &log);
                self.reboot();
                return;
            }
        }
        check(&what, &before, &after, &transcript, &log);
    }

    /// Runs cases `0..n` of each kind, interleaved.
    fn run(&mut self, n: u64) {
        for case in 0..n {
            for kind in KINDS {
                self.case(kind, case);
            }
        }
    }

    /// The counts, as a table per kind.
    fn report(&self, took: Duration) -> String {
        let mut out = format!("{} kernels booted, {took:.1?}\n", self.boots);
        for (kind, t) in &self.tallies {
            let refused: u32 = t.refused.values().sum();
            let stuck: u32 = t.stuck.values().sum();
            writeln!(
                out,
                "{}: {} cases, {} loaded and removed, {} refused, {} stuck (exit trapped or spun)",
                kind.name(),
                t.cases,
                t.loaded,
                refused,
                stuck
            )
            .unwrap();
            if t.own_code > 0 {
                writeln!(
                    out,
                    "  {} ran their own code: compared on the loader's part of the kernel \
                     ({} changed the rest)",
                    t.own_code, t.own_changes
                )
                .unwrap();
            }
            for (what, counts) in [("refused", &t.refused), ("stuck", &t.stuck)] {
                let mut rows: Vec<_> = counts.iter().collect();
                rows.sort_by(|a, b| b.1.cmp(a.1));
                for (why, n) in rows.iter().take(REPORT_ROWS) {
                    writeln!(out, "  {what} {n:6}  {why}").unwrap();
                }
                if rows.len() > REPORT_ROWS {
                    let rest = &rows[REPORT_ROWS..];
                    let n: u32 = rest.iter().map(|r| r.1).sum();
                    writeln!(out, "  {what} {n:6}  ({} other reasons)", rest.len()).unwrap();
                }
            }
        }
        out
    }
}

/// The part of a footprint the loader and the livepatch core own: without free memory, the
/// names in /proc and what /proc/cmdline prints, which a module's own code may change.
fn loader_owned(mut f: Footprint) -> Footprint {
    f.mem_free_kb = None;
    f.free_bytes = 0;
    f.proc_entries.clear();
    f.cmdline.clear();
    f
}

fn check(what: &str, before: &Footprint, after: &Footprint, transcript: &str, log: &str) {
    assert!(
        before == after,
        "{what}: the kernel changed:\n{}\n{transcript}\ndmesg:\n{log}",
        diff(before, after)
    );
}

/// Runs `n` cases of each kind and prints the counts; or, with `KLP_FUZZ_CASE=KIND:N` (as a
/// failure names it, `module:216`), only that case.
fn fuzz(n: u64) {
    let start = Instant::now();
    let mut f = Fuzzer::new();
    if let Ok(one) = std::env::var("KLP_FUZZ_CASE") {
        let (kind, case) = one.split_once(':').expect("KIND:N");
        let kind = KINDS
            .into_iter()
            .find(|k| k.name() == kind)
            .expect("module, patch, mutated or mutated-patch");
        f.case(kind, case.parse().expect("a case number"));
        eprintln!("{}", f.report(start.elapsed()));
        return;
    }
    f.run(n);
    eprintln!("{}", f.report(start.elapsed()));
    let t = &f.tallies;
    assert!(
        t.values().all(|t| t.cases as u64 == n),
        "every case ran to the end"
    );
    assert!(
        t[&Kind::Module].loaded > 0 && t[&Kind::Patch].loaded > 0,
        "some generated modules and patches get past the loader"
    );
}

#[test]
fn fuzz_generated_and_mutated_modules_never_panic_hang_or_leave_a_trace() {
    fuzz(400);
}

/// The long run: `cargo test --release -p klp --test loader_fuzz -- --ignored fuzz`.
#[test]
#[ignore = "minutes: the on-demand long run"]
fn fuzz_ten_times_as_many_modules_never_panic_hang_or_leave_a_trace() {
    fuzz(4000);
}
