//! Garbage into every writable sysfs (livepatch, module parameters), tracefs and sysctl file: the host never panics, a refused
//! write changes nothing that any of those files shows, and the kernel goes on working.
//!
//! Not written: `hostname`, `domainname` and `sched_rr_timeslice_ms`, whose overflows are the
//! kernel's deliberate bugs (docs/livepatch.md §8), and `trace`'s contents are not compared (a
//! write clears the buffer, as in Linux). Opening `kprobe_events` or `set_ftrace_filter` for
//! writing without append clears it before the write is parsed, as in Linux: the comparison
//! starts after that truncation.

use klp_artifacts as artifacts;
use klp_core::fs;
use klp_shell as shell;
use klp_wasmtime::{self as rt, Options, WasmtimeEngine};

mod common;
use common::Recorder;

/// The trees written and watched.
const ROOTS: [&str; 4] = [
    "/sys/kernel/livepatch",
    "/sys/kernel/tracing",
    "/sys/module",
    "/proc/sys",
];

/// The deliberate bugs (see the module comment).
const SPARED: [&str; 3] = ["hostname", "domainname", "sched_rr_timeslice_ms"];

fn boot() -> WasmtimeEngine {
    rt::boot(artifacts::KERNEL, "console=hvc0", true, Options::default()).expect("kernel boots")
}

fn sh(e: &mut WasmtimeEngine, script: &str) -> (i32, String) {
    let mut host = Recorder::default();
    let status = shell::run_script(e, &mut host, script, shell::Options::default());
    (status, host.text)
}

/// Every regular file below `dir`, with its mode (the listing's own stat).
fn files(e: &mut WasmtimeEngine, dir: &str, out: &mut Vec<(String, u32)>) {
    let Ok(entries) = fs::list_dir(e, dir) else {
        return;
    };
    for entry in entries {
        let path = format!("{dir}/{}", entry.name);
        if fs::is_dir(&entry.stat) {
            files(e, &path, out);
        } else {
            out.push((path, entry.stat.mode));
        }
    }
}

fn all_files(e: &mut WasmtimeEngine) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for root in ROOTS {
        files(e, root, &mut out);
    }
    out
}

/// What every watched file reads now (an error reads as its errno).
fn snapshot(e: &mut WasmtimeEngine) -> Vec<(String, Result<Vec<u8>, String>)> {
    all_files(e)
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| !p.ends_with("/trace"))
        .map(|p| {
            let content = fs::read_file(e, &p).map_err(|err| err.to_string());
            (p, content)
        })
        .collect()
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// The payloads of one round: edge values every parser must take or refuse, then random ones.
fn payloads(rng: &mut Rng) -> Vec<Vec<u8>> {
    let fixed: [&[u8]; 24] = [
        b"",
        b"\n",
        b"0",
        b"1",
        b"-1",
        b"2",
        b"61",
        b"4294967296",
        b"-2147483648",
        b"99999999999999999999999",
        b"y",
        b"N",
        b"abc",
        b" 1 ",
        b"1\n0\n",
        b"\0",
        b"0x10",
        b"1e3",
        b"+1",
        b"function",
        b"nop",
        b"p:x cmdline_proc_show",
        b"-:x",
        b"\xff\xfe",
    ];
    let mut all: Vec<Vec<u8>> = fixed.iter().map(|p| p.to_vec()).collect();
    all.push(vec![b'1'; 4096]);
    all.push(vec![b'a'; 70_000]);
    for _ in 0..8 {
        let n = (rng.next() % 80) as usize;
        all.push(rng.bytes(n));
    }
    all
}

#[test]
fn garbage_into_every_writable_file_is_refused_cleanly_or_taken() {
    let mut e = boot();
    let (status, out) = sh(
        &mut e,
        "insmod livepatch-sample; insmod test_klp_mod_target; insmod test_klp_mod_patch; \
         insmod test_klp_lockup",
    );
    assert_eq!(status, 0, "{out}");
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let (mut writes, mut refused) = (0, 0);
    for round in 0..6 {
        let targets: Vec<String> = all_files(&mut e)
            .into_iter()
            .filter(|(p, mode)| {
                mode & 0o222 != 0 && !SPARED.iter().any(|s| p.ends_with(&format!("/{s}")))
            })
            .map(|(p, _)| p)
            .collect();
        assert!(targets.len() >= 10, "round {round}: {targets:?}");
        for path in &targets {
            for payload in payloads(&mut rng) {
                // Opening for writing truncates first: in kprobe_events, set_ftrace_filter and
                // trace that alone is a change (as in Linux), made even if the write fails.
                let _ = fs::write_file(&mut e, path, b"", false);
                let before = snapshot(&mut e);
                writes += 1;
                if fs::write_file(&mut e, path, &payload, false).is_err() {
                    refused += 1;
                    assert!(
                        snapshot(&mut e) == before,
                        "a refused write of {:?} to {path} changed what the files show",
                        String::from_utf8_lossy(&payload[..payload.len().min(40)])
                    );
                }
            }
        }
    }
    eprintln!("{writes} writes, {refused} refused");
    // The kernel still runs, loads and unloads.
    let (status, out) = sh(
        &mut e,
        "echo nop > /sys/kernel/tracing/current_tracer; echo 1 > /proc/sys/kernel/ftrace_enabled; \
         cat /proc/version; insmod hello; rmmod hello",
    );
    assert_eq!(status, 0, "{out}");
    assert!(out.starts_with("Linux version"), "{out}");
}
