//! Dynamic ftrace on the real kernel: it boots plain, swaps its code as hooks come and go
//! without losing any state, keeps the plain code free of slot calls, and never lets a task
//! that switched call a patched function's old code directly.

use klp_artifacts as artifacts;
use klp_core::engine::Engine;
use klp_core::fs;
use klp_core::ftrace::code::Mode;
use klp_passes::instrument::{self, Variant};
use klp_shell as shell;
use klp_wasmtime::{self as rt, Options, WasmtimeEngine};
use wasmparser::{Operator, Parser, Payload};

mod common;
use common::Recorder;

fn boot(mode: Mode) -> WasmtimeEngine {
    let options = Options {
        ftrace: mode,
        ..Options::default()
    };
    rt::boot(artifacts::KERNEL, "console=hvc0", true, options).expect("kernel boots")
}

fn sh(e: &mut WasmtimeEngine, script: &str) -> String {
    let mut host = Recorder::default();
    let status = shell::run_script(e, &mut host, script, shell::Options { errexit: true });
    assert_eq!(status, 0, "{script}: {}", host.text);
    host.text
}

fn read(e: &mut WasmtimeEngine, path: &str) -> String {
    String::from_utf8(fs::read_file(e, path).expect("readable")).expect("utf-8")
}

/// Lets the kernel settle at safe points, waiting for each background compile: it builds the
/// selective variant its hooks want and swaps to it, then, once it ran for a second of kernel
/// time, builds that variant's boot code and moves to it (so the running code defines the
/// state).
fn settle(e: &mut WasmtimeEngine) {
    for _ in 0..4 {
        sh(e, "sleep 2");
        e.wait_for_code();
    }
    sh(e, "cat /proc/version");
}

/// The variant whose boot code defines the kernel's state.
fn boot_code(e: &mut WasmtimeEngine) -> String {
    let info = read(e, "/sys/kernel/tracing/dyn_ftrace_total_info");
    let line = info.lines().find_map(|l| l.strip_prefix("boot code: "));
    line.expect("a boot code line").to_string()
}

/// The variant `dyn_ftrace_total_info` says runs.
fn variant(e: &mut WasmtimeEngine) -> String {
    let info = read(e, "/sys/kernel/tracing/dyn_ftrace_total_info");
    let line = info.lines().find_map(|l| l.strip_prefix("variant: "));
    let word = line.and_then(|l| l.split_whitespace().next());
    word.expect("a variant line").to_string()
}

/// Everything a swap must leave as it was: a ramfs file, the module list, a module's sysfs
/// directory, the kernel's own memory as a syscall sees it, and the printk log's first 11
/// lines (boot and the module's load; the swaps' own lines left out).
fn snapshot(e: &mut WasmtimeEngine) -> (String, String, String, String, String) {
    (
        read(e, "/tmp/kept"),
        read(e, "/proc/modules"),
        sh(e, "ls /sys/module/hello"),
        read(e, "/proc/cmdline"),
        sh(e, "dmesg | grep -v ftrace: | head -n 11"),
    )
}

#[test]
fn swaps_keep_memory_table_globals_log_files_modules_and_sysfs() {
    let mut e = boot(Mode::Dynamic);
    sh(&mut e, "echo kept across swaps > /tmp/kept\ninsmod hello");
    assert_eq!(variant(&mut e), "plain");
    let before = snapshot(&mut e);

    // The tracer hooks every function: the full variant, at once.
    let tracer = "/sys/kernel/tracing/current_tracer";
    sh(&mut e, &format!("echo function > {tracer}"));
    assert_eq!(variant(&mut e), "full");
    assert_eq!(snapshot(&mut e), before);
    assert!(read(&mut e, "/sys/kernel/tracing/trace").contains("cmdline_proc_show <-"));
    // A move to a fresh store carries the full code over the boot code's state.
    e.move_now().expect("the kernel moves");
    assert_eq!(variant(&mut e), "full");
    assert_eq!(snapshot(&mut e), before);
    sh(
        &mut e,
        "echo > /sys/kernel/tracing/trace\ncat /proc/cmdline",
    );
    assert!(read(&mut e, "/sys/kernel/tracing/trace").contains("cmdline_proc_show <-"));
    sh(&mut e, &format!("echo nop > {tracer}"));
    assert_eq!(variant(&mut e), "plain");
    assert_eq!(snapshot(&mut e), before);

    // A kprobe on one function: full at once, selective once compiled.
    let events = "/sys/kernel/tracing/kprobe_events";
    sh(
        &mut e,
        &format!(
            "echo 'p:kept cmdline_proc_show' > {events}\n\
             echo 1 > /sys/kernel/tracing/events/kprobes/kept/enable"
        ),
    );
    settle(&mut e);
    assert_eq!(variant(&mut e), "selective");
    // No task holds frames: the kernel moved to the selective variant's boot code.
    assert_eq!(boot_code(&mut e), "selective");
    assert_eq!(snapshot(&mut e), before);
    let trace = read(&mut e, "/sys/kernel/tracing/trace");
    assert!(
        trace.contains("kept: (cmdline_proc_show+0x0/0x0)"),
        "{trace}"
    );

    // A live patch on top: still selective, for both slots once compiled.
    sh(&mut e, "insmod livepatch-sample");
    settle(&mut e);
    assert_eq!(
        read(&mut e, "/proc/cmdline"),
        "this has been live patched\n"
    );
    assert_eq!(variant(&mut e), "selective");
    sh(
        &mut e,
        &format!(
            "echo 0 > /sys/kernel/tracing/events/kprobes/kept/enable\necho > {events}\n\
             echo 0 > /sys/kernel/livepatch/livepatch_sample/enabled\nsleep 1\n\
             rmmod livepatch_sample"
        ),
    );
    assert_eq!(variant(&mut e), "plain");
    assert_eq!(snapshot(&mut e), before);

    // A move to a fresh store carries the plain code and every state.
    e.move_now().expect("the kernel moves");
    assert_eq!(snapshot(&mut e), before);
    sh(
        &mut e,
        &format!("echo function > {tracer}\necho nop > {tracer}"),
    );
    assert_eq!(snapshot(&mut e), before);
    let log = sh(&mut e, "dmesg | grep ftrace:");
    assert_eq!(
        log.matches("hooks in use").count(),
        log.matches("no hook in use").count(),
        "{log}"
    );
}

#[test]
fn always_mode_calls_through_every_slot_and_never_swaps() {
    let mut e = boot(Mode::Always);
    assert_eq!(variant(&mut e), "full");
    sh(
        &mut e,
        "echo function > /sys/kernel/tracing/current_tracer\n\
         echo nop > /sys/kernel/tracing/current_tracer",
    );
    assert_eq!(variant(&mut e), "full");
    assert!(!sh(&mut e, "dmesg").contains("ftrace: "));
}

/// Calls and indirect calls per function body of `wasm`'s first `n` bodies.
fn call_counts(wasm: &[u8], n: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        if let Payload::CodeSectionEntry(body) = payload.expect("valid wasm") {
            if out.len() == n {
                break;
            }
            let mut ops = body.get_operators_reader().expect("code");
            let (mut direct, mut indirect) = (0, 0);
            while !ops.eof() {
                match ops.read().expect("operator") {
                    Operator::Call { .. } | Operator::ReturnCall { .. } => direct += 1,
                    Operator::CallIndirect { .. } | Operator::ReturnCallIndirect { .. } => {
                        indirect += 1
                    }
                    _ => {}
                }
            }
            out.push((direct, indirect));
        }
    }
    out
}

#[test]
fn the_plain_kernel_has_no_slot_call_where_the_kernel_calls_directly() {
    let kernel = artifacts::KERNEL;
    let bodies = call_counts(kernel, usize::MAX).len();
    let plain = instrument::instrument_variant(kernel, &[], None, &Variant::Plain).unwrap();
    let full = instrument::instrument_variant(kernel, &[], None, &Variant::Full).unwrap();
    // The kernel's own bodies (the thunks come after them): plain calls exactly as built.
    assert_eq!(
        call_counts(&plain.wasm, bodies),
        call_counts(kernel, bodies)
    );
    let slotted: usize = call_counts(&full.wasm, bodies).iter().map(|c| c.1).sum();
    let built: usize = call_counts(kernel, bodies).iter().map(|c| c.1).sum();
    assert!(
        slotted > built + 100,
        "full: {slotted} slot calls, built: {built}"
    );
}

/// test_klp_timer_patch replaces `del_timer_sync`, which `schedule_timeout()` calls directly
/// once its task wakes. The sleeper's kthread sleeps in `schedule_timeout()` of the plain
/// kernel when the patch comes: in plain code it would call the old function directly, so it
/// must not switch until it has left that frame (the transition waits for it, and signals it
/// after 15 s). Once switched, its call reaches the new function: the patch says who called.
/// With every call through its slot the task switches at once, as it is not inside the
/// function.
#[test]
fn a_task_asleep_in_plain_code_switches_only_once_it_cannot_call_old_code_directly() {
    let script = "insmod test_klp_sleeper\nsleep 1\ninsmod test_klp_timer_patch\n\
                  cat /sys/kernel/livepatch/test_klp_timer_patch/transition\nsleep 20\n\
                  cat /sys/kernel/livepatch/test_klp_timer_patch/transition\n\
                  rmmod test_klp_sleeper\ndmesg";
    for (mode, waited) in [(Mode::Dynamic, true), (Mode::Always, false)] {
        let mut e = boot(mode);
        let out = sh(&mut e, script);
        let transition: Vec<&str> = out.lines().filter(|l| *l == "0" || *l == "1").collect();
        let expected = if waited { ["1", "0"] } else { ["0", "0"] };
        assert_eq!(transition, expected, "{mode:?}: {out}");
        assert_eq!(
            out.contains("livepatch: signaling remaining tasks"),
            waited,
            "{mode:?}: {out}"
        );
        let sleeper = e.with_state(|s| {
            s.tasks
                .iter()
                .find(|t| t.comm().starts_with("klp_sleeper"))
                .map(|t| t.pid().get())
        });
        // The kthread is gone after rmmod; its pid is the one the patch named.
        assert!(sleeper.is_none(), "{mode:?}: the sleeper stopped");
        assert!(
            out.contains("test_klp_timer_patch: livepatch_del_timer_sync: called by pid 5"),
            "{mode:?}: the woken sleeper reached the new function: {out}"
        );
    }
}
