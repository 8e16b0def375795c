//! Transition dispatchers (klp_ftrace_handler during a transition): a call through a slot in transition vs a plain slot call, in one run.
//!
//! The kernel's `bench_target`, patched by `test_klp_bench` (`vmlinux=1`), called in a loop
//! inside the kernel (`bench_dispatch`, through its slot): before the patch (`slot`), patched
//! (`slot_patched`), in transition with the fake task's `patch_state` PATCHED
//! (`dispatcher_patched`: dispatcher → replacement) and UNPATCHED (`dispatcher_unpatched`:
//! dispatcher → original), and after the transition (`slot_after_transition`: direct again).
//! `current` is a kmalloc'd word pointing at a kmalloc'd fake task. The kernel runs with
//! `--ftrace=always`, so that `slot` is a call through the slot before any hook.

use criterion::{Criterion, criterion_group, criterion_main};
use klp_benches::{
    TARGET_DELTA, TARGET_PATCHED_DELTA, boot_always, call, chained, guest_loop, insmod, kind,
};
use klp_core::engine::{Callee, Engine};
use klp_core::ftrace::{self, Slot};
use klp_wasmtime::WasmtimeEngine;

/// Offset of `patch_state` in the fake task.
const PATCH_STATE_OFFSET: u32 = 20;

/// Times `iters` calls of `bench_target` through its slot; every chunk's result is checked.
fn calls(e: &mut WasmtimeEngine, delta: i32, iters: u64) -> std::time::Duration {
    guest_loop(
        iters,
        |n, seed| call(e, Callee::Export("bench_dispatch"), &[kind::SLOT, n, seed]),
        |n, seed| chained(seed, n, delta),
    )
}

/// Sets up a fake `current`; returns the address of its `patch_state`.
fn fake_current(e: &mut WasmtimeEngine) -> u32 {
    let task = call(e, Callee::Export("kmalloc"), &[64, 0]) as u32;
    let current = call(e, Callee::Export("kmalloc"), &[4, 0]) as u32;
    assert!(task != 0 && current != 0, "kmalloc");
    e.write(current, &task.to_le_bytes())
        .expect("write current");
    e.with_state(|s| s.ftrace.set_current(current, PATCH_STATE_OFFSET));
    task + PATCH_STATE_OFFSET
}

fn transition(c: &mut Criterion) {
    let mut g = c.benchmark_group("transition");
    let mut e = boot_always();
    g.bench_function("slot", |b| {
        b.iter_custom(|iters| calls(&mut e, TARGET_DELTA, iters));
    });
    insmod(
        &mut e,
        "test_klp_bench",
        "test_klp_bench",
        &["funcs=0", "vmlinux=1"],
    );
    g.bench_function("slot_patched", |b| {
        b.iter_custom(|iters| calls(&mut e, TARGET_PATCHED_DELTA, iters));
    });
    let slot = e
        .with_state(|s| {
            s.kallsyms
                .lookup(None, "bench_target", 0)
                .map(|sym| sym.addr)
        })
        .map(Slot::new)
        .expect("bench_target");
    let state = fake_current(&mut e);
    e.with_state(|s| s.ftrace.set_transition(slot, None))
        .expect("bench_target is patched");
    ftrace::sync(&mut e, [slot]).expect("dispatcher installed");
    for (name, patch_state, delta) in [
        ("dispatcher_patched", 1i32, TARGET_PATCHED_DELTA),
        ("dispatcher_unpatched", 0, TARGET_DELTA),
    ] {
        e.write(state, &patch_state.to_le_bytes())
            .expect("patch_state");
        g.bench_function(name, |b| {
            b.iter_custom(|iters| calls(&mut e, delta, iters));
        });
    }
    e.with_state(|s| s.ftrace.clear_transition(slot));
    ftrace::sync(&mut e, [slot]).expect("slot direct again");
    g.bench_function("slot_after_transition", |b| {
        b.iter_custom(|iters| calls(&mut e, TARGET_PATCHED_DELTA, iters));
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = klp_benches::criterion();
    targets = transition
}
criterion_main!(benches);
