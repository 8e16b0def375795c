//! Per-call dispatch of the same small function, in one run: a direct `call` (to a notrace
//! twin), through the ftrace slot unpatched, through the slot patched to a function of a patch
//! module (another instance), and through a hand-made entry stub. The loop runs in the kernel
//! (`bench_dispatch`); one criterion iteration is one call. The instrumented kernels run with
//! `--ftrace=always`: in the default dynamic mode the unhooked kernel calls `bench_target`
//! directly (benches/kernel.rs and benches/variants.rs measure that mode).

use criterion::{Criterion, criterion_group, criterion_main};
use klp_benches::{
    TARGET_DELTA, TARGET_PATCHED_DELTA, always, boot, boot_always, boot_with, call, chained,
    guest_loop, insmod, kind,
};
use klp_core::engine::Callee;
use klp_wasmtime::{Options, WasmtimeEngine};

/// Times `iters` calls of `bench_dispatch(kind)`; every chunk's result is checked.
fn calls(e: &mut WasmtimeEngine, kind: i32, delta: i32, iters: u64) -> std::time::Duration {
    guest_loop(
        iters,
        |n, seed| call(e, Callee::Export("bench_dispatch"), &[kind, n, seed]),
        |n, seed| chained(seed, n, delta),
    )
}

fn dispatch(c: &mut Criterion) {
    let mut g = c.benchmark_group("dispatch");

    // The kernel as built, before the pass: `bench_target` is called directly.
    let mut raw = boot(false);
    g.bench_function("uninstrumented", |b| {
        b.iter_custom(|iters| calls(&mut raw, kind::SLOT, TARGET_DELTA, iters));
    });
    drop(raw);

    let mut e = boot_always();
    g.bench_function("direct", |b| {
        b.iter_custom(|iters| calls(&mut e, kind::DIRECT, TARGET_DELTA, iters));
    });
    g.bench_function("slot", |b| {
        b.iter_custom(|iters| calls(&mut e, kind::SLOT, TARGET_DELTA, iters));
    });
    g.bench_function("stub", |b| {
        b.iter_custom(|iters| calls(&mut e, kind::STUB, TARGET_DELTA, iters));
    });
    // Patch `bench_target` with a function of another instance (the patch module).
    insmod(
        &mut e,
        "test_klp_bench",
        "test_klp_bench",
        &["funcs=0", "vmlinux=1"],
    );
    g.bench_function("slot_patched", |b| {
        b.iter_custom(|iters| calls(&mut e, kind::SLOT, TARGET_PATCHED_DELTA, iters));
    });
    drop(e);

    // With Cranelift's inliner on, the direct call inlines; the slot call cannot. Only a
    // kernel without tasks can be inlined (wasmtime cannot inline with stack switching).
    let mut inl = boot_with(
        true,
        Options {
            inlining: true,
            no_tasks: true,
            ..always()
        },
    );
    g.bench_function("direct_inlining", |b| {
        b.iter_custom(|iters| calls(&mut inl, kind::DIRECT, TARGET_DELTA, iters));
    });
    g.bench_function("slot_inlining", |b| {
        b.iter_custom(|iters| calls(&mut inl, kind::SLOT, TARGET_DELTA, iters));
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = klp_benches::criterion();
    targets = dispatch
}
criterion_main!(benches);
