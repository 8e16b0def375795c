//! The per-call cost of each user of the ftrace hook on `bench_target`: nothing (a direct slot),
//! the function tracer, one kprobe, one kretprobe, a live patch, and a live patch under the
//! tracer. Tracing users put a trampoline in the slot that writes each event into the ring
//! buffer in kernel memory (the caller from `__klp_caller`, no host call). The loop runs in the
//! kernel (`bench_dispatch`). The kernel runs with `--ftrace=always`, so that `off` is a
//! call through the slot (the default dynamic mode would call `bench_target` directly until a
//! hook comes, then through its slot in the full or selective variant alike).

use criterion::{Criterion, criterion_group, criterion_main};
use klp_benches::{
    TARGET_DELTA, TARGET_PATCHED_DELTA, boot_always, call, chained, guest_loop, insmod, kind,
};
use klp_core::engine::Callee;
use klp_core::fs;
use klp_wasmtime::WasmtimeEngine;

const TRACING: &str = "/sys/kernel/tracing";

fn write(e: &mut WasmtimeEngine, file: &str, value: &str) {
    let path = format!("{TRACING}/{file}");
    fs::write_file(e, &path, value.as_bytes(), false)
        .unwrap_or_else(|err| panic!("{path}: {err:?}"));
}

fn calls(e: &mut WasmtimeEngine, delta: i32, iters: u64) -> std::time::Duration {
    guest_loop(
        iters,
        |n, seed| call(e, Callee::Export("bench_dispatch"), &[kind::SLOT, n, seed]),
        |n, seed| chained(seed, n, delta),
    )
}

fn tracing(c: &mut Criterion) {
    let mut g = c.benchmark_group("tracing");
    let mut e = boot_always();
    g.bench_function("off", |b| {
        b.iter_custom(|iters| calls(&mut e, TARGET_DELTA, iters))
    });

    write(&mut e, "set_ftrace_filter", "bench_target\n");
    write(&mut e, "current_tracer", "function\n");
    g.bench_function("function_tracer", |b| {
        b.iter_custom(|iters| calls(&mut e, TARGET_DELTA, iters))
    });
    write(&mut e, "current_tracer", "nop\n");

    write(&mut e, "kprobe_events", "p:bench bench_target $arg1\n");
    write(&mut e, "events/kprobes/bench/enable", "1\n");
    g.bench_function("kprobe", |b| {
        b.iter_custom(|iters| calls(&mut e, TARGET_DELTA, iters))
    });
    write(&mut e, "events/kprobes/bench/enable", "0\n");

    write(
        &mut e,
        "kprobe_events",
        "r:benchret bench_target ret=$retval\n",
    );
    write(&mut e, "events/kprobes/benchret/enable", "1\n");
    g.bench_function("kretprobe", |b| {
        b.iter_custom(|iters| calls(&mut e, TARGET_DELTA, iters))
    });
    write(&mut e, "events/kprobes/benchret/enable", "0\n");

    insmod(
        &mut e,
        "test_klp_bench",
        "test_klp_bench",
        &["funcs=0", "vmlinux=1"],
    );
    g.bench_function("livepatch", |b| {
        b.iter_custom(|iters| calls(&mut e, TARGET_PATCHED_DELTA, iters))
    });
    write(&mut e, "current_tracer", "function\n");
    g.bench_function("livepatch_and_tracer", |b| {
        b.iter_custom(|iters| calls(&mut e, TARGET_PATCHED_DELTA, iters))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = klp_benches::criterion();
    targets = tracing
}
criterion_main!(benches);
