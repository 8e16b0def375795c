//! Calls while flipping: a patch of `bench_fn_000` is enabled and disabled continuously, at the
//! only safe points there are (between two guest calls), while the guest calls the function in
//! a loop (`klp_bench_check`) that checks every result against what the slot should hold now.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use klp_benches::{
    FN0_DELTA, FN0_PATCHED_DELTA, boot, call, guest_loop, insmod, module_slot, set_enabled,
};
use klp_core::engine::Callee;
use std::time::Instant;

/// Checked calls between two flips.
const CALLS_PER_FLIP: [i32; 2] = [1, 1000];

fn flipping(c: &mut Criterion) {
    let mut g = c.benchmark_group("flipping");
    let mut e = boot(true);
    insmod(&mut e, "klp_bench_target", "klp_bench_target", &[]);
    insmod(&mut e, "test_klp_bench", "test_klp_bench", &["funcs=1"]);
    let check = module_slot(&mut e, "klp_bench_target", "klp_bench_check");

    // Baseline: checked calls with the patch enabled, no flipping; per call.
    g.throughput(Throughput::Elements(1));
    g.bench_function("no_flip", |b| {
        b.iter_custom(|iters| {
            guest_loop(
                iters,
                |n, _| call(&mut e, Callee::Slot(check), &[n, FN0_PATCHED_DELTA]),
                |_, _| 0,
            )
        });
    });

    let mut enabled = true;
    for calls in CALLS_PER_FLIP {
        g.throughput(Throughput::Elements(calls as u64));
        g.bench_function(format!("flip_every_{calls}"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let delta = if enabled {
                        FN0_PATCHED_DELTA
                    } else {
                        FN0_DELTA
                    };
                    let bad = call(&mut e, Callee::Slot(check), &[calls, delta]);
                    assert_eq!(bad, 0, "a call saw the wrong function");
                    enabled = !enabled;
                    set_enabled(&mut e, "test_klp_bench", enabled);
                }
                start.elapsed()
            });
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = klp_benches::criterion();
    targets = flipping
}
criterion_main!(benches);
