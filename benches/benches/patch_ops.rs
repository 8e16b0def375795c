//! Patch operations: enabling and disabling patches of 1, 10, 100 and 1,000 functions (through
//! sysfs, as `echo 1 > enabled`), insmod of modules of different sizes, the instrumentation
//! pass and the kallsyms build over the real kernel; then, outside criterion, the host
//! process's memory growth over insmod/rmmod cycles (wasmtime keeps every instance of a Store
//! until the Store drops).

use criterion::{BenchmarkId, Criterion, Throughput};
use klp::engine::{Callee, Engine};
use klp::kallsyms::Kallsyms;
use klp::runtime::wasmtime::WasmtimeEngine;
use klp_benches::{
    FN0_PATCHED_DELTA, boot, call, insmod, module_slot, rmmod, rss_bytes, set_enabled, test_mode,
};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const SIZES: [u32; 4] = [1, 10, 100, 1000];

/// A kernel with `klp_bench_target` and one disabled `test_klp_bench` patch per size.
fn patched_kernel() -> WasmtimeEngine {
    let mut e = boot(true);
    insmod(&mut e, "klp_bench_target", "klp_bench_target", &[]);
    let check = module_slot(&mut e, "klp_bench_target", "klp_bench_check");
    for n in SIZES {
        let name = format!("klp_bench_p{n}");
        insmod(&mut e, &name, "test_klp_bench", &[&format!("funcs={n}")]);
        let patched = e.with_state(|s| s.livepatch.func_stacks.len());
        assert_eq!(patched, n as usize, "{name} patches {n} functions");
        let bad = call(&mut e, Callee::Slot(check), &[100, FN0_PATCHED_DELTA]);
        assert_eq!(bad, 0, "{name} redirects bench_fn_000");
        set_enabled(&mut e, &name, false);
    }
    e
}

fn enable_disable(c: &mut Criterion) {
    let mut g = c.benchmark_group("patch_ops");
    let mut e = patched_kernel();
    for n in SIZES {
        let name = format!("klp_bench_p{n}");
        g.bench_with_input(BenchmarkId::new("enable", n), &name, |b, name| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    set_enabled(&mut e, name, true);
                    total += start.elapsed();
                    set_enabled(&mut e, name, false);
                }
                total
            });
        });
        g.bench_with_input(BenchmarkId::new("disable", n), &name, |b, name| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    set_enabled(&mut e, name, true);
                    let start = Instant::now();
                    set_enabled(&mut e, name, false);
                    total += start.elapsed();
                }
                total
            });
        });
    }
    g.finish();
}

/// Modules for the insmod benchmark, with their parameters.
const MODULES: [(&str, &[&str]); 5] = [
    ("hello", &[]),
    ("livepatch-sample", &[]),
    ("test_klp_mod_target", &[]),
    ("klp_bench_target", &[]),
    ("test_klp_bench", &["funcs=1", "vmlinux=1"]),
];

fn module_bytes(name: &str) -> &'static [u8] {
    klp::artifacts::module(name).expect("built module")
}

fn insmod_latency(c: &mut Criterion) {
    let mut g = c.benchmark_group("insmod");
    g.sample_size(10);
    for (name, params) in MODULES {
        let size = module_bytes(name).len();
        // A fresh kernel per module: every load leaves its instance in the Store.
        let mut e = boot(true);
        if name == "test_klp_bench" {
            insmod(&mut e, "klp_bench_target", "klp_bench_target", &[]);
        }
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(BenchmarkId::new(name, size), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    insmod(&mut e, name, name, params);
                    total += start.elapsed();
                    rmmod(&mut e, &klp::loader::module_name(name));
                }
                total
            });
        });
    }
    g.finish();
}

fn kernel_passes(c: &mut Criterion) {
    let kernel = klp::artifacts::KERNEL;
    let instrumented = klp::instrument::instrument(kernel, &[]).expect("instrument");
    let mut g = c.benchmark_group("kernel_passes");
    g.throughput(Throughput::Bytes(kernel.len() as u64));
    g.bench_function("instrument", |b| {
        b.iter(|| klp::instrument::instrument(black_box(kernel), &[]).expect("instrument"));
    });
    g.bench_function("kallsyms_raw", |b| {
        b.iter(|| Kallsyms::from_kernel(black_box(kernel)).expect("kallsyms"));
    });
    g.throughput(Throughput::Bytes(instrumented.wasm.len() as u64));
    g.bench_function("kallsyms_instrumented", |b| {
        b.iter(|| Kallsyms::from_kernel(black_box(&instrumented.wasm)).expect("kallsyms"));
    });
    g.finish();
}

/// Where criterion writes (`$CARGO_TARGET_DIR/criterion`, else the workspace's target/).
fn criterion_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("criterion")
}

/// RSS growth of this process per insmod/rmmod cycle, written next to criterion's results.
fn memory_growth() {
    let cycles: u32 = if test_mode() { 3 } else { 200 };
    let mut json = String::from("{\n");
    for (i, (name, params)) in MODULES.iter().enumerate() {
        let mut e = boot(true);
        if *name == "test_klp_bench" {
            insmod(&mut e, "klp_bench_target", "klp_bench_target", &[]);
        }
        // One cycle first, so one-time allocations are not counted.
        insmod(&mut e, name, name, params);
        rmmod(&mut e, &klp::loader::module_name(name));
        let before = rss_bytes();
        for _ in 0..cycles {
            insmod(&mut e, name, name, params);
            rmmod(&mut e, &klp::loader::module_name(name));
        }
        let grown = rss_bytes().saturating_sub(before);
        let per_cycle = grown / u64::from(cycles);
        println!(
            "insmod/rmmod memory: {name} ({} bytes): RSS +{grown} bytes over {cycles} cycles, {per_cycle} bytes per cycle",
            module_bytes(name).len()
        );
        let sep = if i + 1 < MODULES.len() { "," } else { "" };
        json.push_str(&format!(
            "  \"{name}\": {{\"module_bytes\": {}, \"cycles\": {cycles}, \"rss_growth_bytes\": {grown}, \"bytes_per_cycle\": {per_cycle}}}{sep}\n",
            module_bytes(name).len()
        ));
    }
    json.push_str("}\n");
    if !test_mode() {
        let dir = criterion_dir();
        if std::fs::create_dir_all(&dir).is_ok() {
            let _ = std::fs::write(dir.join("klp_memory.json"), json);
        }
    }
}

fn main() {
    let mut c = klp_benches::criterion();
    enable_disable(&mut c);
    insmod_latency(&mut c);
    kernel_passes(&mut c);
    c.final_summary();
    memory_growth();
}
