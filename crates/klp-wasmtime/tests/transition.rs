//! Transition dispatchers on the real engine: `current->patch_state` picks, per call, the patched or the unpatched function.

use klp_core::engine::{Callee, Engine};
use klp_core::errno::Errno;
use klp_core::fs;
use klp_core::ftrace::{self, Slot};
use klp_core::sys::SysError;
use klp_wasmtime::{self as rt, Options, WasmtimeEngine};

/// What `bench_target` adds, and what `test_klp_bench`'s replacement adds.
const ORIG_DELTA: i32 = 3;
const PATCHED_DELTA: i32 = 5;
/// `task_struct::patch_state` in the fake task (any offset: the builder takes it).
const PATCH_STATE_OFFSET: u32 = 20;
const UNPATCHED: i32 = 0;
const PATCHED: i32 = 1;
const IDLE: i32 = -1;

/// A booted kernel whose `bench_target` is patched by `test_klp_bench`, with a fake `current`
/// (a kmalloc'd word pointing at a kmalloc'd task) set as ftrace's; returns the engine, the
/// slot, and the address of the fake task's `patch_state`.
fn patched_kernel() -> (WasmtimeEngine, Slot, u32) {
    let mut e = rt::boot(
        klp_artifacts::KERNEL,
        "console=hvc0",
        true,
        Options::default(),
    )
    .expect("kernel boots");
    let module = klp_artifacts::module("test_klp_bench").expect("built");
    klp_core::loader::load_module(&mut e, "test_klp_bench", module, &["funcs=0", "vmlinux=1"])
        .expect("insmod test_klp_bench");
    let slot = e
        .with_state(|s| {
            s.kallsyms
                .lookup(None, "bench_target", 0)
                .map(|sym| sym.addr)
        })
        .map(Slot::new)
        .expect("bench_target");
    let kmalloc = |e: &mut WasmtimeEngine, size| {
        let addr = e.call(Callee::Export("kmalloc"), &[size, 0]).unwrap();
        addr.filter(|&a| a != 0).expect("kmalloc") as u32
    };
    let task = kmalloc(&mut e, 64);
    let current = kmalloc(&mut e, 4);
    e.write(current, &task.to_le_bytes()).unwrap();
    e.with_state(|s| s.ftrace.set_current(current, PATCH_STATE_OFFSET));
    let state = task + PATCH_STATE_OFFSET;
    (e, slot, state)
}

fn set_state(e: &mut WasmtimeEngine, addr: u32, state: i32) {
    e.write(addr, &state.to_le_bytes()).unwrap();
}

/// What one call of `bench_target` through its slot (from inside the kernel) adds.
fn delta(e: &mut WasmtimeEngine) -> i32 {
    let kind_slot = 1;
    let got = e.call(Callee::Export("bench_dispatch"), &[kind_slot, 1, 0]);
    got.unwrap().unwrap()
}

fn transition(e: &mut WasmtimeEngine, slot: Slot, alt: Option<Slot>) {
    e.with_state(|s| s.ftrace.set_transition(slot, alt))
        .unwrap();
    ftrace::sync(e, [slot]).unwrap();
}

fn end_transition(e: &mut WasmtimeEngine, slot: Slot) {
    assert!(e.with_state(|s| s.ftrace.clear_transition(slot)));
    ftrace::sync(e, [slot]).unwrap();
}

#[test]
fn writing_patch_state_flips_the_function_a_call_reaches() {
    let (mut e, slot, state) = patched_kernel();
    assert_eq!(delta(&mut e), PATCHED_DELTA);
    transition(&mut e, slot, None);
    assert!(e.with_state(|s| s.ftrace.dispatcher(slot).is_some()));
    for (patch_state, want) in [
        (UNPATCHED, ORIG_DELTA),
        (PATCHED, PATCHED_DELTA),
        (UNPATCHED, ORIG_DELTA),
        (IDLE, PATCHED_DELTA),
    ] {
        set_state(&mut e, state, patch_state);
        assert_eq!(delta(&mut e), want, "patch_state {patch_state}");
        // The host's calls through the slot take the same dispatcher.
        assert_eq!(
            e.call(Callee::Slot(slot.index()), &[100]).unwrap(),
            Some(100 + want)
        );
    }
    // The kernel moves to a fresh store: the dispatcher and its targets move with it.
    set_state(&mut e, state, UNPATCHED);
    e.move_now().expect("the kernel moves");
    assert_eq!(delta(&mut e), ORIG_DELTA);
    set_state(&mut e, state, PATCHED);
    assert_eq!(delta(&mut e), PATCHED_DELTA);
    // The transition completes: the slot is direct again, whatever patch_state says.
    end_transition(&mut e, slot);
    set_state(&mut e, state, UNPATCHED);
    assert_eq!(delta(&mut e), PATCHED_DELTA);
    assert_eq!(e.with_state(|s| s.ftrace.dispatchers()), 0);
}

#[test]
fn the_alternative_is_the_previous_func_stack_entry() {
    let (mut e, slot, state) = patched_kernel();
    // `bench_target_notrace` stands in for an older patch's new_func (same type, adds 3).
    let older = e
        .with_state(|s| {
            let sym = s.kallsyms.lookup(None, "bench_target_notrace", 0);
            sym.map(|sym| sym.addr)
        })
        .map(Slot::new)
        .unwrap();
    transition(&mut e, slot, Some(older));
    set_state(&mut e, state, UNPATCHED);
    assert_eq!(delta(&mut e), ORIG_DELTA);
    let host = e.call(Callee::Slot(slot.index()), &[0]).unwrap();
    assert_eq!(host, Some(ORIG_DELTA));
    set_state(&mut e, state, PATCHED);
    assert_eq!(delta(&mut e), PATCHED_DELTA);
}

fn write(e: &mut WasmtimeEngine, path: &str, value: &str) {
    fs::write_file(e, path, value.as_bytes(), false)
        .unwrap_or_else(|err| panic!("{path}: {err:?}"));
}

fn trace_hits(e: &mut WasmtimeEngine) -> usize {
    let trace = fs::read_file(e, "/sys/kernel/tracing/trace").unwrap();
    let trace = String::from_utf8(trace).unwrap();
    trace.matches(": bench_target <-").count()
}

#[test]
fn the_tracer_and_a_transition_on_one_slot_chain() {
    let (mut e, slot, state) = patched_kernel();
    write(
        &mut e,
        "/sys/kernel/tracing/set_ftrace_filter",
        "bench_target\n",
    );
    write(&mut e, "/sys/kernel/tracing/current_tracer", "function\n");
    transition(&mut e, slot, None);
    let (t, d) = e.with_state(|s| {
        let f = &s.ftrace;
        (f.trampoline(slot).cloned(), f.dispatcher(slot).copied())
    });
    let (t, d) = (t.expect("a trampoline"), d.expect("a dispatcher"));
    assert_ne!(t.instance, d.instance);
    let mut hits = trace_hits(&mut e);
    for (patch_state, want) in [(UNPATCHED, ORIG_DELTA), (PATCHED, PATCHED_DELTA)] {
        set_state(&mut e, state, patch_state);
        assert_eq!(delta(&mut e), want, "patch_state {patch_state}");
        let now = trace_hits(&mut e);
        assert_eq!(now, hits + 1, "the tracer saw the call");
        hits = now;
    }
    // The tracer goes first: the slot holds the dispatcher itself.
    write(&mut e, "/sys/kernel/tracing/current_tracer", "nop\n");
    assert_eq!(e.with_state(|s| s.ftrace.trampolines()), 0);
    set_state(&mut e, state, UNPATCHED);
    assert_eq!(delta(&mut e), ORIG_DELTA);
    // Then the transition: direct to the patched function; only the dispatcher, parked for the
    // function's next transition, is left.
    end_transition(&mut e, slot);
    assert_eq!(delta(&mut e), PATCHED_DELTA);
    assert_eq!(e.with_state(|s| s.ftrace.instances()), 1);
}

#[test]
fn a_transition_without_current_is_refused_by_sync() {
    // A kernel run without tasks (as the browser runs it) never tells ftrace where `current`
    // is: no dispatcher can be built for it.
    let image = klp_core::kernel::prepare_for(klp_artifacts::KERNEL, "console=hvc0", true, None)
        .expect("kernel prepares");
    let mut e = rt::instantiate_kernel(&image.wasm, image.state, Options::default())
        .expect("kernel instantiates");
    klp_core::kernel::boot(
        &mut e,
        klp_core::fs::modules::ModuleFiles::embedded(klp_artifacts::MODULES),
    )
    .expect("kernel boots");
    assert!(e.with_state(|s| s.ftrace.current().is_none()));
    let module = klp_artifacts::module("test_klp_bench").expect("built");
    klp_core::loader::load_module(&mut e, "test_klp_bench", module, &["funcs=0", "vmlinux=1"])
        .unwrap();
    let slot = e
        .with_state(|s| {
            s.kallsyms
                .lookup(None, "bench_target", 0)
                .map(|sym| sym.addr)
        })
        .map(Slot::new)
        .unwrap();
    e.with_state(|s| s.ftrace.set_transition(slot, None))
        .unwrap();
    let err = ftrace::sync(&mut e, [slot]).unwrap_err();
    assert!(matches!(err, SysError::Errno(Errno::EINVAL)), "{err:?}");
    assert_eq!(delta(&mut e), PATCHED_DELTA);
}
