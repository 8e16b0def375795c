//! Engine calls do not slow down with the kernel's history: `cat /proc/cmdline` (host-driven
//! syscalls), one export call (`sys_close(-1)`) and a 4-byte `Engine::read`, on a fresh kernel
//! and after 5,000 insmod/rmmod cycles of `hello`. The loops run in the host: the host's own
//! call into the guest is what is measured. Then what the kernel's move to a fresh store (which
//! frees dead instances) costs with 0, 10 and 100 live modules.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use klp_benches::{boot, insmod, test_mode};
use klp_core::engine::{Callee, Engine};
use klp_wasmtime::WasmtimeEngine;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// What `sys_close(-1)` returns: `-EBADF`.
const EBADF: i32 = 9;

/// insmod/rmmod cycles between the two measurements (a few in `--test` mode).
fn cycles() -> u32 {
    if test_mode() { 20 } else { 5_000 }
}

/// Measures both operations on the kernel as it is now, under the parameter `when`.
fn measure(c: &mut Criterion, e: &mut WasmtimeEngine, when: &str) {
    let mut g = c.benchmark_group("engine_history");
    let expected = klp_core::fs::read_file(e, "/proc/cmdline").expect("/proc/cmdline");
    g.bench_function(BenchmarkId::new("cat_proc_cmdline", when), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let text = klp_core::fs::read_file(e, black_box("/proc/cmdline"));
                assert_eq!(text.as_deref().ok(), Some(expected.as_slice()));
            }
            start.elapsed()
        });
    });
    g.bench_function(BenchmarkId::new("call_sys_close", when), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let ret = e.call(Callee::Export(black_box("sys_close")), &[black_box(-1)]);
                assert_eq!(ret, Ok(Some(-EBADF)));
            }
            start.elapsed()
        });
    });
    let addr = e.with_state(|s| s.user_buffer);
    g.bench_function(BenchmarkId::new("read_4_bytes", when), |b| {
        b.iter_custom(|iters| {
            let mut buf = [0u8; 4];
            let start = Instant::now();
            for _ in 0..iters {
                e.read(black_box(addr), &mut buf).expect("in memory");
                black_box(&buf);
            }
            start.elapsed()
        });
    });
    g.finish();
}

/// Loads and unloads `hello` `n` times; returns the time it took.
fn insmod_rmmod_cycles(e: &mut WasmtimeEngine, n: u32) -> Duration {
    let hello = klp_artifacts::module("hello").expect("hello built");
    let start = Instant::now();
    for cycle in 0..n {
        klp_core::loader::load_module(e, "hello", hello, &[])
            .unwrap_or_else(|err| panic!("insmod hello, cycle {cycle}: {err}"));
        klp_core::loader::unload_module(e, "hello")
            .unwrap_or_else(|err| panic!("rmmod hello, cycle {cycle}: {err}"));
    }
    start.elapsed()
}

fn engine_history(c: &mut Criterion) {
    let mut e = boot(true);
    measure(c, &mut e, "fresh");
    let n = cycles();
    let took = insmod_rmmod_cycles(&mut e, n);
    eprintln!("{n} insmod/rmmod cycles of hello: {took:.2?}");
    measure(c, &mut e, &format!("after_{n}_cycles"));
}

/// One move of the kernel to a fresh store (`WasmtimeEngine::move_now`) with `n` live copies of
/// `hello` to re-instantiate.
fn store_move(c: &mut Criterion) {
    let mut g = c.benchmark_group("store_move");
    for n in [0, 10, 100] {
        let mut e = boot(true);
        for i in 0..n {
            insmod(&mut e, &format!("hello_{i}"), "hello", &[]);
        }
        let live = e.store_stats().live;
        g.bench_function(BenchmarkId::new("live_modules", n), |b| {
            b.iter(|| e.move_now().expect("the kernel moves"));
        });
        let text = klp_core::fs::read_file(&mut e, "/proc/modules").expect("/proc/modules");
        assert_eq!(
            text.split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .count(),
            n
        );
        assert_eq!(e.store_stats().live, live, "the live modules moved along");
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = klp_benches::criterion();
    targets = engine_history, store_move
}
criterion_main!(benches);
