//! func_stack depth: 1, 2, 4, 8 and 16 patches stacked on one function (`bench_fn_000` of the
//! module `klp_bench_target`, patched by `test_klp_bench` loaded under 16 module names). The
//! slot always holds the top entry, so a call costs the same at any depth. Depth 0 (the
//! unpatched function, in the module's own instance) is shown for reference.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use klp_benches::{
    FN0_DELTA, FN0_PATCHED_DELTA, boot, call, chained, guest_loop, insmod, module_slot,
};
use klp_core::engine::{Callee, Engine};

fn func_stack(c: &mut Criterion) {
    let mut g = c.benchmark_group("func_stack");
    let mut e = boot(true);
    insmod(&mut e, "klp_bench_target", "klp_bench_target", &[]);
    let chain = module_slot(&mut e, "klp_bench_target", "klp_bench_chain");
    let mut depth = 0;
    for target in [0, 1, 2, 4, 8, 16] {
        while depth < target {
            depth += 1;
            let name = format!("klp_bench_d{depth}");
            insmod(&mut e, &name, "test_klp_bench", &["funcs=1"]);
        }
        let stacked = e.with_state(|s| {
            let stacks = s.livepatch.func_stacks();
            stacks.iter().map(|(_, stack)| stack.len()).max()
        });
        assert_eq!(stacked.unwrap_or(0), depth, "func_stack depth");
        let delta = if depth == 0 {
            FN0_DELTA
        } else {
            FN0_PATCHED_DELTA
        };
        g.bench_with_input(BenchmarkId::from_parameter(depth), &delta, |b, &delta| {
            b.iter_custom(|iters| {
                guest_loop(
                    iters,
                    |n, seed| call(&mut e, Callee::Slot(chain), &[n, seed]),
                    |n, seed| chained(seed, n, delta),
                )
            });
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = klp_benches::criterion();
    targets = func_stack
}
criterion_main!(benches);
