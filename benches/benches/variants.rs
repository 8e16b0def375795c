//! Dynamic ftrace's code swaps (issue 14), timed from the host on the real kernel with tasks.
//!
//! * `first-hook`: a freshly booted dynamic kernel runs plain, its full variant already
//!   compiled (the boot starts that compile in the background; the bench waits for it outside
//!   the timing). One iteration is `echo 1 > events/kprobes/klpbench/enable` for a kprobe on
//!   `cmdline_proc_show` defined beforehand: the kprobe's trampoline, the selective variant's
//!   instrumentation pass and the start of its compile on a worker thread, the swap to the full
//!   variant (instantiated over the kernel's state) and every redirected slot written again.
//!   `first-hook-always` is the same write on a `--ftrace=always` kernel, which swaps nothing:
//!   the hook's own cost.
//! * `swap`: with that kprobe enabled and the selective variant running, one iteration is one
//!   `Engine::swap_code` (to the full variant, then back, alternately; both instantiated before)
//!   followed by `klp_core::ftrace::sync_all`.
//! * `selective-pass`: the part of the first hook that builds the selective variant's code
//!   module for that kprobe: the instrumentation pass (`instrument_variant`) and `split`.
//! * `selective-ready`: on a fresh kernel as for `first-hook`, one iteration is from that first
//!   write until the selective variant runs: the write, waiting for its compile (Cranelift, no
//!   cache), and the swap the scheduler makes once it is compiled (`code::poll`).
//!
//! Every fresh kernel boots, and waits for its background compiles before it is dropped,
//! outside the timing. Criterion sizes its runs by the time reported, so the fresh-kernel
//! benchmarks set their own warm-up and measurement times (overriding the command line's),
//! short enough that each of their 10 samples is one kernel (criterion warns that they do not
//! fit, and runs one iteration per sample); `swap` and `selective-pass` keep criterion's.

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use klp_artifacts::KERNEL;
use klp_benches::{always, boot, boot_with, settle, swap_in, variant, write};
use klp_core::engine::Engine;
use klp_core::ftrace::code::code_key;
use klp_passes::instrument::{self, Variant, tasks::Switching};
use klp_wasmtime::{Options, WasmtimeEngine};
use std::time::{Duration, Instant};

const EVENTS: &str = "/sys/kernel/tracing/kprobe_events";
const PROBE: &str = "p:klpbench cmdline_proc_show\n";
const ENABLE: &str = "/sys/kernel/tracing/events/kprobes/klpbench/enable";

/// A fresh kernel with the kprobe defined but not enabled, its background compiles done.
fn fresh(options: Options) -> WasmtimeEngine {
    let mut e = boot_with(true, options);
    write(&mut e, EVENTS, PROBE);
    settle(&mut e);
    e
}

/// Times `run` on `iters` fresh kernels booted with `options`; each must run `variant` after.
fn on_fresh_kernels(
    iters: u64,
    options: &Options,
    after: &str,
    mut run: impl FnMut(&mut WasmtimeEngine),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let mut e = fresh(options.clone());
        let start = Instant::now();
        run(&mut e);
        total += start.elapsed();
        assert_eq!(variant(&mut e), after);
        e.wait_for_code();
    }
    total
}

fn variants(c: &mut Criterion) {
    let mut g = c.benchmark_group("variants");
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(1));
    // A few ms per hook: one kernel per sample.
    g.measurement_time(Duration::from_millis(10));

    let dynamic = Options::default();
    assert_eq!(variant(&mut fresh(dynamic.clone())), "plain");
    g.bench_function("first-hook", |b| {
        b.iter_custom(|iters| {
            on_fresh_kernels(iters, &dynamic, "full", |e| write(e, ENABLE, "1\n"))
        });
    });
    g.bench_function("first-hook-always", |b| {
        b.iter_custom(|iters| {
            on_fresh_kernels(iters, &always(), "full", |e| write(e, ENABLE, "1\n"))
        });
    });

    // Over 100 ms per iteration: one kernel per sample.
    g.measurement_time(Duration::from_millis(500));
    g.bench_function("selective-ready", |b| {
        b.iter_custom(|iters| {
            on_fresh_kernels(iters, &dynamic, "selective", |e| {
                write(e, ENABLE, "1\n");
                assert_eq!(swap_in(e), "selective");
            })
        });
    });
    g.finish();
}

fn swap(c: &mut Criterion) {
    let mut e = boot(true);
    write(&mut e, EVENTS, PROBE);
    write(&mut e, ENABLE, "1\n");
    assert_eq!(settle(&mut e), "selective");
    let (selective, v) = e
        .with_state(|s| {
            s.code
                .as_ref()
                .map(|c| (c.current_key(), c.current().clone()))
        })
        .expect("a dynamic kernel");
    let keys = [code_key(&Variant::Full), selective];
    let swap = |e: &mut WasmtimeEngine, key| {
        e.swap_code(key).expect("swap");
        klp_core::ftrace::sync_all(e).expect("slots written again");
    };
    // Both instantiated before the timing.
    swap(&mut e, keys[0]);
    swap(&mut e, keys[1]);
    let mut g = c.benchmark_group("variants");
    g.bench_function("swap", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for i in 0..iters {
                swap(&mut e, keys[(i % 2) as usize]);
            }
            let elapsed = start.elapsed();
            swap(&mut e, selective);
            elapsed
        });
    });
    assert_eq!(variant(&mut e), "selective");
    g.bench_function("selective-pass", |b| {
        b.iter(|| {
            let out = instrument::instrument_variant(KERNEL, &[], Some(Switching::Stacks), &v);
            instrument::split(&out.expect("instrumented").wasm).expect("split")
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = klp_benches::criterion();
    targets = variants, swap
}
criterion_main!(benches);
