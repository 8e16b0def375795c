//! Fault injection: insmod, rmmod, enable and disable leave the kernel as before or complete.
//!
//! Every kernel call such an operation makes is failed in turn with a trap (an oops); each time
//! the kernel is left exactly as it was before the operation, or with the operation complete.
//! [`Spy`] wraps the wasmtime engine and traps the Nth call the core makes through it. Calls
//! the guest makes back into the core (`klp.hostcall`: `klp_enable_patch` from a module's init, a
//! trampoline's handler) run with the runtime's own engine handle, not with the wrapper, so only
//! the core's top-level calls are failed: a patch enabled from a module's init is covered through
//! the init call as a whole, and through the sysfs enable and disable sweeps.

use klp_artifacts as artifacts;
use klp_core::engine::Engine;
use klp_core::fs;
use klp_core::kernel::{self, TaskError};
use klp_core::sys::SysResult;
use klp_shell as shell;
use klp_wasmtime::{self as rt, Options, WasmtimeEngine};

mod common;
mod footprint;
mod spy;
use common::Recorder;
use footprint::{diff, footprint};
use spy::{Faults, Spy};

/// One operation to sweep.
#[derive(Clone, Copy)]
enum Op {
    /// `insmod NAME PARAMS...` through the loader.
    Insmod(&'static str, &'static [&'static str]),
    /// `rmmod NAME` through the loader.
    Rmmod(&'static str),
    /// Writes a value to `/sys/kernel/livepatch/PATCH/enabled`.
    Sysfs(&'static str, &'static str),
    /// `klp_core::livepatch::disable`.
    Disable(&'static str),
}

/// What one run of an operation did.
struct Outcome {
    result: Result<(), TaskError>,
    /// Kernel calls the operation made.
    calls: u32,
    /// kmalloc blocks it took and did not free.
    outstanding: Vec<u32>,
}

/// Runs `op` as a task whose `fail_at`th kernel call traps. The task itself (the oops report,
/// closing its files) runs on the real engine: only the operation is failed.
fn run(e: &mut WasmtimeEngine, op: Op, fail_at: Option<u32>) -> Outcome {
    let comm = match op {
        Op::Insmod(..) => "insmod",
        Op::Rmmod(_) => "rmmod",
        Op::Sysfs(..) | Op::Disable(_) => "sh",
    };
    let (mut calls, mut outstanding) = (0, Vec::new());
    let result = kernel::run_task(e, comm, |e| {
        let faults = Faults {
            call: fail_at,
            ..Faults::default()
        };
        let mut faulty = Spy::new(e, faults);
        let result = operate(&mut faulty, op);
        calls = faulty.calls;
        outstanding = faulty.allocated.clone();
        outstanding.retain(|b| !faulty.freed.contains(b));
        result
    });
    Outcome {
        result,
        calls,
        outstanding,
    }
}

fn operate(e: &mut impl Engine, op: Op) -> SysResult<()> {
    match op {
        Op::Insmod(file, params) => {
            let bytes = artifacts::module(file).expect("a built module");
            klp_core::loader::load_module(e, &klp_core::loader::module_name(file), bytes, params)
        }
        Op::Rmmod(name) => klp_core::loader::unload_module(e, name),
        Op::Sysfs(patch, value) => {
            let path = format!("/sys/kernel/livepatch/{patch}/enabled");
            fs::write_file(e, &path, value.as_bytes(), false).map_err(|err| match err {
                fs::WriteError::Open(err) | fs::WriteError::Write(err) => err,
            })
        }
        Op::Disable(patch) => klp_core::livepatch::disable(e, patch),
    }
}

/// Boots a kernel and runs `setup` in its shell. Every setup first loads and removes `hello`,
/// so that the kernel's module list has grown its storage once: a failed load need not give
/// that back, as Linux's slab caches keep theirs.
fn prepared(setup: &str) -> WasmtimeEngine {
    let mut e = rt::boot(artifacts::KERNEL, "console=hvc0", true, Options::default())
        .expect("kernel boots");
    let mut host = Recorder::default();
    let script = format!("insmod hello; rmmod hello; dmesg -C; {setup}");
    let status = shell::run_script(&mut e, &mut host, &script, shell::Options { errexit: true });
    assert_eq!(status, 0, "setup `{setup}`: {}", host.text);
    e
}

/// Fails each call of `op` in turn, N = 1, 2, ... until `op` completes without reaching the Nth
/// call. After every failure the kernel is as before `op`, or as after it; the loader's own
/// kmalloc blocks are all freed again, or only the completed operation's remain; and `op` then
/// succeeds on that same kernel.
fn sweep(setup: &str, op: Op) {
    sweep_with(setup, op, true);
}

/// [`sweep`] for an operation that fails by design (its init fails, a check refuses it): the
/// faults land in its rollback too, and every time the kernel is left as before.
fn sweep_failing(setup: &str, op: Op) {
    sweep_with(setup, op, false);
}

fn sweep_with(setup: &str, op: Op, succeeds: bool) {
    let mut e = prepared(setup);
    let before = footprint(&mut e);
    let clean = run(&mut e, op, None);
    assert_eq!(
        clean.result.is_ok(),
        succeeds,
        "{}: {:?}",
        op_name(op),
        clean.result
    );
    let (total, kept) = (clean.calls, clean.outstanding);
    let done = footprint(&mut e);
    let done_table_len = e.table_len();
    assert_eq!(
        before == done,
        !succeeds,
        "{}: only a successful operation changes the kernel:\n{}",
        op_name(op),
        diff(&before, &done)
    );
    for n in 1..=total {
        let mut e = prepared(setup);
        assert_eq!(footprint(&mut e), before, "setup is deterministic");
        let Outcome {
            result,
            calls,
            outstanding: left,
        } = run(&mut e, op, Some(n));
        assert!(calls >= n, "call {n} is reached");
        let after = footprint(&mut e);
        let what = format!("{} with call {n} of {total} failing", op_name(op));
        if succeeds && after == done {
            assert_eq!(left, kept, "{what}: completed, with its kmalloc blocks");
            continue;
        }
        assert!(result.is_err(), "{what}: an error is reported");
        assert!(
            after == before,
            "{what}: neither as before nor complete ({result:?}):\n{}",
            diff(&before, &after)
        );
        assert_eq!(left, Vec::<u32>::new(), "{what}: every kmalloc block freed");
        let retry = run(&mut e, op, None).result;
        assert_eq!(retry.is_ok(), succeeds, "{what}: the retry: {retry:?}");
        assert_eq!(footprint(&mut e), done, "{what}: the retry's outcome");
        assert_eq!(
            e.table_len(),
            done_table_len,
            "{what}: the retry reuses the table range the failure gave back"
        );
    }
    eprintln!("{}: {total} faults injected", op_name(op));
}

fn op_name(op: Op) -> String {
    match op {
        Op::Insmod(file, params) => format!("insmod {file} {}", params.join(" ")),
        Op::Rmmod(name) => format!("rmmod {name}"),
        Op::Sysfs(patch, value) => format!("echo {value} > {patch}/enabled"),
        Op::Disable(patch) => format!("disable {patch}"),
    }
}

const SAMPLE_ENABLED: &str = "/sys/kernel/livepatch/livepatch_sample/enabled";

#[test]
fn insmod_of_a_kernel_module_is_complete_or_undone_under_every_fault() {
    sweep("", Op::Insmod("hello", &[]));
}

#[test]
fn insmod_of_a_livepatch_module_is_complete_or_undone_under_every_fault() {
    sweep("", Op::Insmod("livepatch-sample", &[]));
}

#[test]
fn insmod_of_a_patch_stacking_on_another_is_complete_or_undone_under_every_fault() {
    sweep(
        "insmod livepatch-sample",
        Op::Insmod("test_klp_livepatch", &[]),
    );
}

#[test]
fn insmod_of_an_atomic_replace_patch_is_complete_or_undone_under_every_fault() {
    sweep(
        "insmod livepatch-sample",
        Op::Insmod("test_klp_atomic_replace", &["replace=1"]),
    );
}

#[test]
fn insmod_of_a_module_a_patch_waits_for_is_complete_or_undone_under_every_fault() {
    sweep(
        "insmod test_klp_mod_patch",
        Op::Insmod("test_klp_mod_target", &[]),
    );
}

#[test]
fn insmod_of_a_patch_for_a_loaded_module_is_complete_or_undone_under_every_fault() {
    sweep(
        "insmod test_klp_mod_target",
        Op::Insmod("test_klp_mod_patch", &[]),
    );
}

#[test]
fn insmod_while_every_function_is_traced_is_complete_or_undone_under_every_fault() {
    sweep(
        "echo function > /sys/kernel/tracing/current_tracer",
        Op::Insmod("hello", &[]),
    );
}

#[test]
fn rmmod_of_a_kernel_module_is_complete_or_undone_under_every_fault() {
    sweep("insmod hello", Op::Rmmod("hello"));
}

#[test]
fn rmmod_of_a_disabled_livepatch_module_is_complete_or_undone_under_every_fault() {
    sweep(
        &format!("insmod livepatch-sample; echo 0 > {SAMPLE_ENABLED}"),
        Op::Rmmod("livepatch_sample"),
    );
}

#[test]
fn rmmod_of_a_patched_module_is_complete_or_undone_under_every_fault() {
    sweep(
        "insmod test_klp_mod_target; insmod test_klp_mod_patch",
        Op::Rmmod("test_klp_mod_target"),
    );
}

/// Only a patch of the 2016 API can be enabled through sysfs: one klp_enable_patch() enabled is
/// freed when disabled (the insmod sweeps above cover klp_enable_patch, atomic replace and a
/// patch for a loaded module).
#[test]
fn enabling_through_sysfs_is_complete_or_undone_under_every_fault() {
    sweep(
        "insmod test_klp_split_api",
        Op::Sysfs("test_klp_split_api", "1"),
    );
}

#[test]
fn disabling_through_sysfs_is_complete_or_undone_under_every_fault() {
    sweep(
        "insmod livepatch-sample",
        Op::Sysfs("livepatch_sample", "0"),
    );
}

#[test]
fn disabling_the_top_of_a_func_stack_is_complete_or_undone_under_every_fault() {
    sweep(
        "insmod livepatch-sample; insmod test_klp_livepatch",
        Op::Disable("test_klp_livepatch"),
    );
}

#[test]
fn a_failing_init_is_undone_under_every_fault() {
    sweep_failing("", Op::Insmod("test_klp_init_fail", &[]));
}

#[test]
fn a_trapping_init_is_undone_under_every_fault() {
    sweep_failing(
        "insmod livepatch-sample",
        Op::Insmod("test_klp_init_oops", &[]),
    );
}

#[test]
fn a_patch_refused_in_its_init_is_undone_under_every_fault() {
    sweep_failing(
        "insmod livepatch-sample",
        Op::Insmod("test_klp_notrace", &[]),
    );
}

#[test]
fn a_patch_naming_a_missing_function_is_undone_under_every_fault() {
    sweep_failing("", Op::Insmod("test_klp_bad_symbol", &[]));
}

#[test]
fn rmmod_refusals_come_before_any_kernel_call() {
    for (setup, name) in [
        ("insmod livepatch-sample", "livepatch_sample"),
        (
            "insmod hello; echo 'p:probe hello:init_module' > /sys/kernel/tracing/kprobe_events; \
             echo 1 > /sys/kernel/tracing/events/kprobes/probe/enable",
            "hello",
        ),
    ] {
        let mut e = prepared(setup);
        let before = footprint(&mut e);
        let refused = run(&mut e, Op::Rmmod(name), None);
        assert!(refused.result.is_err(), "{setup}: rmmod {name} is refused");
        assert_eq!(
            refused.calls, 0,
            "{setup}: refused before calling the kernel"
        );
        assert_eq!(footprint(&mut e), before);
    }
}
