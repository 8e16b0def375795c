//! The livepatch lifecycle on the real kernel: a thousand load/enable/disable/unload cycles
//! leak nothing, flipping a patch between calls never shows a torn state, refused modules leave
//! no trace, and repeated oopses do not wear the kernel down.

use klp_artifacts as artifacts;
use klp_core::engine::Engine;
use klp_core::fs;
use klp_shell as shell;
use klp_wasmtime::{self as rt, Options, WasmtimeEngine};

mod common;
use common::Recorder;

const ORIGINAL: &str = "console=hvc0\n";
const PATCHED: &str = "this has been live patched\n";
const ENABLED: &str = "/sys/kernel/livepatch/livepatch_sample/enabled";

fn boot() -> WasmtimeEngine {
    rt::boot(artifacts::KERNEL, "console=hvc0", true, Options::default()).expect("kernel boots")
}

fn sh(e: &mut WasmtimeEngine, script: &str) -> (i32, String) {
    let mut host = Recorder::default();
    let status = shell::run_script(e, &mut host, script, shell::Options { errexit: true });
    (status, host.text)
}

fn read(e: &mut WasmtimeEngine, path: &str) -> String {
    String::from_utf8(fs::read_file(e, path).expect("readable")).unwrap()
}

/// What a module load could leave behind.
#[derive(Debug, PartialEq, Eq)]
struct Footprint {
    mem_free_kb: u64,
    table_in_use: u32,
    slots: usize,
    symbols: usize,
    modules: String,
    livepatch: String,
}

fn footprint(e: &mut WasmtimeEngine) -> Footprint {
    let meminfo = read(e, "/proc/meminfo");
    let mem_free_kb = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemFree:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("MemFree in /proc/meminfo");
    let table_len = e.table_len();
    let (free, slots, symbols) = e.with_state(|s| {
        (
            s.ftrace.free_entries(),
            s.ftrace.len(),
            s.kallsyms.iter().count(),
        )
    });
    let livepatch = fs::list_dir(e, "/sys/kernel/livepatch")
        .unwrap()
        .into_iter()
        .map(|en| en.name)
        .collect();
    Footprint {
        mem_free_kb,
        table_in_use: table_len - free,
        slots,
        symbols,
        modules: read(e, "/proc/modules"),
        livepatch,
    }
}

fn rss_kb() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(0)
        * 4
}

#[test]
fn a_thousand_load_enable_disable_unload_cycles_leak_nothing() {
    let mut e = boot();
    let before = footprint(&mut e);
    let rss_before = rss_kb();
    for cycle in 0..1000 {
        let (status, out) = sh(
            &mut e,
            &format!(
                "insmod livepatch-sample; cat /proc/cmdline; echo 0 > {ENABLED}; cat /proc/cmdline; rmmod livepatch_sample"
            ),
        );
        assert_eq!(
            (status, out.as_str()),
            (0, format!("{PATCHED}{ORIGINAL}").as_str()),
            "cycle {cycle}"
        );
    }
    let after = footprint(&mut e);
    let rss_after = rss_kb();
    eprintln!(
        "before 1000 cycles: {before:?}, host RSS {rss_before} kB, table length {}",
        e.table_len()
    );
    eprintln!(
        "after 1000 cycles:  {after:?}, host RSS {rss_after} kB, table length {}",
        e.table_len()
    );
    eprintln!(
        "host memory growth: {} kB per cycle (dead instances go when the kernel moves)",
        rss_after.saturating_sub(rss_before) / 1000
    );
    assert_eq!(
        before, after,
        "kernel memory, table slots, symbols and sysfs are as they were"
    );
}

/// Flipped through sysfs, a patch of the 2016 API (one `klp_enable_patch()` enabled is freed
/// once disabled): test_klp_split_api, which patches /proc/version.
#[test]
fn flipping_a_patch_between_calls_shows_only_the_old_or_the_new_function() {
    const SPLIT_PATCHED: &str = "test_klp_split_api: this has been live patched\n";
    const SPLIT_ENABLED: &str = "/sys/kernel/livepatch/test_klp_split_api/enabled";
    let mut e = boot();
    let original = read(&mut e, "/proc/version");
    assert_eq!(sh(&mut e, "insmod test_klp_split_api").0, 0);
    let mut patched = false;
    let mut seen = [0u32; 2];
    for flip in 0..5000u32 {
        let out = read(&mut e, "/proc/version");
        let expected = if patched { SPLIT_PATCHED } else { &original };
        assert_eq!(out, expected, "call {flip} after {} flips", flip);
        seen[usize::from(patched)] += 1;
        // Flip at a safe point between two kernel calls, through sysfs as a user would.
        let value: &[u8] = if patched { b"0\n" } else { b"1\n" };
        fs::write_file(&mut e, SPLIT_ENABLED, value, false).expect("flip");
        patched = !patched;
    }
    assert_eq!(seen, [2500, 2500]);
}

#[test]
fn refused_modules_leave_no_trace() {
    let mut e = boot();
    assert_eq!(sh(&mut e, "insmod test_klp_livepatch").0, 0);
    let before = footprint(&mut e);
    for bad in [
        "test_klp_bad_symbol",
        "test_klp_bad_import",
        "test_klp_notrace",
        "test_klp_bad_signature",
        "test_klp_init_fail",
        "test_klp_atomic_replace replace=maybe",
    ] {
        let (status, out) = sh(&mut e, &format!("insmod {bad}"));
        assert_ne!(status, 0, "{bad} is refused");
        assert!(
            out.starts_with("insmod: ERROR: could not insert module"),
            "{bad}: {out}"
        );
        assert_eq!(footprint(&mut e), before, "{bad} left something behind");
    }
    let mut garbage = artifacts::module("livepatch-sample").unwrap().to_vec();
    garbage.truncate(garbage.len() / 2);
    let err = klp_core::kernel::run_task(&mut e, "insmod", |e| {
        klp_core::loader::load_module(e, "truncated", &garbage, &[])
    });
    assert!(err.is_err());
    assert_eq!(
        footprint(&mut e),
        before,
        "a truncated module left something behind"
    );
    assert_eq!(
        read(&mut e, "/proc/cmdline"),
        "test_klp_livepatch: this has been live patched\n"
    );
}

#[test]
fn a_hundred_oopses_do_not_wear_the_kernel_down() {
    let mut e = boot();
    let sp = e.stack_pointer();
    for _ in 0..100 {
        let (status, out) = sh(
            &mut e,
            "echo 0 > /proc/sys/kernel/sched_rr_timeslice_ms; cat /proc/schedstat",
        );
        assert_eq!(status, 139, "{out}");
        assert!(out.contains("Oops: "), "{out}");
    }
    assert_eq!(e.stack_pointer(), sp, "each oops unwinds the kernel stack");
    assert_eq!(
        sh(
            &mut e,
            "echo 100 > /proc/sys/kernel/sched_rr_timeslice_ms; cat /proc/cmdline"
        ),
        (0, ORIGINAL.to_string())
    );
    let (status, out) = sh(
        &mut e,
        "insmod klp-fix-timeslice; echo 0 > /proc/sys/kernel/sched_rr_timeslice_ms",
    );
    assert_eq!(status, 1);
    assert!(out.contains("write error: Invalid argument"), "{out}");
}

#[test]
fn bad_file_descriptors_are_ebadf_and_change_nothing() {
    use klp_core::errno::Errno;
    use klp_core::sys::{self, SysError};
    let mut e = boot();
    let before = footprint(&mut e);
    for fd in [-1, 3, 99, 1 << 20] {
        assert_eq!(
            sys::read(&mut e, fd, 16),
            Err(SysError::Errno(Errno::EBADF)),
            "read({fd})"
        );
        assert_eq!(
            sys::write(&mut e, fd, b"x"),
            Err(SysError::Errno(Errno::EBADF)),
            "write({fd})"
        );
        assert_eq!(
            sys::close(&mut e, fd),
            Err(SysError::Errno(Errno::EBADF)),
            "close({fd})"
        );
    }
    let fd = sys::open(&mut e, "/proc/cmdline", sys::flags::O_RDONLY).unwrap();
    sys::close(&mut e, fd).unwrap();
    assert_eq!(
        sys::close(&mut e, fd),
        Err(SysError::Errno(Errno::EBADF)),
        "double close"
    );
    assert_eq!(
        sys::read(&mut e, fd, 16),
        Err(SysError::Errno(Errno::EBADF)),
        "read after close"
    );
    assert_eq!(footprint(&mut e), before);
}

#[test]
fn an_init_that_traps_is_an_oops_and_leaves_no_trace() {
    let mut e = boot();
    assert_eq!(sh(&mut e, "insmod livepatch-sample").0, 0);
    let before = footprint(&mut e);
    let sp = e.stack_pointer();
    let (status, out) = sh(&mut e, "insmod test_klp_init_oops");
    assert_eq!(status, 139, "{out}");
    assert!(out.starts_with("Oops: invalid opcode: 0000 [#1]"), "{out}");
    assert!(out.contains("\n init_module\n do_one_initcall\n"), "{out}");
    assert_eq!(e.stack_pointer(), sp);
    assert_eq!(
        footprint(&mut e),
        before,
        "the trapped module left something behind"
    );
    assert_eq!(read(&mut e, "/proc/cmdline"), PATCHED);
    assert_eq!(
        sh(&mut e, "insmod hello; rmmod hello").0,
        0,
        "loading still works"
    );
}

#[test]
fn corrupted_modules_never_crash_the_host_and_failed_loads_leave_no_trace() {
    let mut e = boot();
    let original = artifacts::module("livepatch-sample").unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut loaded, mut refused) = (0, 0);
    for round in 0..300 {
        let before = footprint(&mut e);
        let mut bytes = original.to_vec();
        for _ in 0..1 + next() % 4 {
            let at = (next() % bytes.len() as u64) as usize;
            bytes[at] ^= 1 << (next() % 8);
        }
        let result = klp_core::kernel::run_task(&mut e, "insmod", |e| {
            klp_core::loader::load_module(e, "fuzzed", &bytes, &[])
        });
        if result.is_ok() {
            loaded += 1;
            // Whatever it became, it can be switched off and removed again.
            let _ = fs::write_file(
                &mut e,
                "/sys/kernel/livepatch/fuzzed/enabled",
                b"0\n",
                false,
            );
            let removed = klp_core::kernel::run_task(&mut e, "rmmod", |e| {
                klp_core::loader::unload_module(e, "fuzzed")
            });
            if removed.is_ok() {
                assert_eq!(
                    footprint(&mut e),
                    before,
                    "round {round}: load and unload left something behind"
                );
            }
        } else {
            refused += 1;
            assert_eq!(
                footprint(&mut e),
                before,
                "round {round}: a refused module left something behind"
            );
        }
        assert!(
            !read(&mut e, "/proc/cmdline").is_empty(),
            "round {round}: the kernel still answers"
        );
    }
    eprintln!("corrupted modules: {loaded} loaded anyway, {refused} refused");
    assert!(refused > 0);
    assert_eq!(
        read(&mut e, "/proc/modules"),
        "",
        "every module that loaded was removed again"
    );
}
