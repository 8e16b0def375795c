//! Patch operations: enabling and disabling patches of 1, 10, 100 and 1,000 functions (through
//! sysfs, as `echo 1 > enabled`), insmod of modules of different sizes, the instrumentation
//! pass and the kallsyms build over the real kernel and over synthetic kernels of 50 KB to 4 MB
//! (generated here, see [`synthetic`]); then, outside criterion, the host process's memory
//! growth over insmod/rmmod cycles (wasmtime keeps every instance of a Store until the Store
//! drops).

use criterion::{BenchmarkId, Criterion, Throughput};
use klp_benches::{
    FN0_PATCHED_DELTA, boot, call, insmod, module_slot, rmmod, rss_bytes, set_enabled, test_mode,
};
use klp_core::engine::{Callee, Engine};
use klp_passes::kallsyms::Kallsyms;
use klp_wasmtime::WasmtimeEngine;
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
        let patched = e.with_state(|s| s.livepatch.func_stacks().len());
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
    klp_artifacts::module(name).expect("built module")
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
                    rmmod(&mut e, &klp_core::loader::module_name(name));
                }
                total
            });
        });
    }
    g.finish();
}

fn kernel_passes(c: &mut Criterion) {
    let kernel = klp_artifacts::KERNEL;
    let instrumented = klp_passes::instrument::instrument(kernel, &[]).expect("instrument");
    let mut g = c.benchmark_group("kernel_passes");
    g.throughput(Throughput::Bytes(kernel.len() as u64));
    g.bench_function("instrument", |b| {
        b.iter(|| klp_passes::instrument::instrument(black_box(kernel), &[]).expect("instrument"));
    });
    g.bench_function("kallsyms_raw", |b| {
        b.iter(|| Kallsyms::from_kernel(black_box(kernel)).expect("kallsyms"));
    });
    g.throughput(Throughput::Bytes(instrumented.wasm.len() as u64));
    g.bench_function("kallsyms_instrumented", |b| {
        b.iter(|| Kallsyms::from_kernel(black_box(&instrumented.wasm)).expect("kallsyms"));
    });

    // The size sweep: the same passes over synthetic kernels, by input bytes.
    for target in SYNTHETIC_SIZES {
        let (kernel, nfuncs) = synthetic::kernel_of_size(target);
        let instrumented = synthetic::check(&kernel, nfuncs);
        let size = kernel.len();
        println!(
            "synthetic kernel: {size} bytes, {nfuncs} functions, {} instrumented bytes",
            instrumented.len()
        );
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(
            BenchmarkId::new("synth_instrument", size),
            &kernel,
            |b, k| {
                b.iter(|| {
                    klp_passes::instrument::instrument(black_box(k), &[]).expect("instrument")
                });
            },
        );
        g.bench_with_input(
            BenchmarkId::new("synth_kallsyms_raw", size),
            &kernel,
            |b, k| {
                b.iter(|| Kallsyms::from_kernel(black_box(k)).expect("kallsyms"));
            },
        );
        g.throughput(Throughput::Bytes(instrumented.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("synth_kallsyms_instrumented", size),
            &instrumented,
            |b, k| {
                b.iter(|| Kallsyms::from_kernel(black_box(k)).expect("kallsyms"));
            },
        );
    }
    g.finish();
}

/// Input sizes of the synthetic kernels (bytes, approximate): about the real kernel's
/// quarter, the real kernel, 5× and 20× it.
const SYNTHETIC_SIZES: [usize; 4] = [50_000, 200_000, 1_000_000, 4_000_000];

/// Synthetic kernels for the kernel_passes size sweep: what `klp_passes::instrument` requires (a
/// `__stack_pointer` global named in the name section, memory, a funcref table 0 with one
/// active element segment, function names), with code shaped like compiled kernel code.
mod synthetic {
    use klp_passes::kallsyms::{Kallsyms, SymKind};
    use wasm_encoder::{
        BlockType, CodeSection, ConstExpr, DataSection, ElementSection, Elements, EntityType,
        ExportKind, ExportSection, Function, FunctionSection, GlobalSection, GlobalType,
        ImportSection, MemArg, MemorySection, MemoryType, Module, NameMap, NameSection, RefType,
        TableSection, TableType, TypeSection, ValType,
    };

    /// Imported host calls (functions 0 and 1), as the real kernel imports `klp.*`.
    const NIMP: u32 = 2;
    /// Type indices: `(i32) -> i32`, `(i32, i32) -> i32`, `() -> i64`, `(i32, i32) -> ()`.
    const T1: u32 = 0;
    const T2: u32 = 1;
    const T_CLOCK: u32 = 2;
    const T_WRITE: u32 = 3;
    /// Every `FNPTR_EVERY`-th function is a function pointer (in the element segment).
    const FNPTR_EVERY: u32 = 8;
    /// Rust-like module paths of the generated functions.
    const MODULES: [&str; 6] = ["fs", "mm", "sched", "net", "vfs", "tty"];

    /// Deterministic pseudo-random numbers (an LCG), so every run builds the same kernels.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u32 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) as u32
        }
        fn below(&mut self, n: u32) -> u32 {
            self.next() % n
        }
    }

    /// The raw (legacy-mangled Rust) name of defined function `i`, as rustc emits them.
    fn raw_name(i: u32) -> String {
        let m = MODULES[i as usize % MODULES.len()];
        let f = format!("{m}_fn_{i:07}");
        let hash = u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        format!(
            "_ZN12guest_kernel{}{m}{}{f}17h{hash:016x}E",
            m.len(),
            f.len()
        )
    }

    /// The short name kallsyms gives defined function `i`.
    pub fn short_name(i: u32) -> String {
        format!("{}_fn_{i:07}", MODULES[i as usize % MODULES.len()])
    }

    /// Number of parameters of defined function `i` (its type is `T1` or `T2`).
    fn params(i: u32) -> u32 {
        if i.is_multiple_of(3) { 2 } else { 1 }
    }

    /// A body like compiled code: a shadow-stack frame, 3–5 direct calls to other kernel
    /// functions, stores and loads in the frame, branches, a call through a function pointer,
    /// a host call.
    fn body(i: u32, n: u32, rng: &mut Rng) -> Function {
        let np = params(i);
        let (frame, acc) = (np, np + 1);
        let sp = 0;
        let mut f = Function::new([(2, ValType::I32)]);
        let mut s = f.instructions();
        s.global_get(sp)
            .i32_const(64)
            .i32_sub()
            .local_tee(frame)
            .global_set(sp);
        s.local_get(0).local_set(acc);
        let call = |s: &mut wasm_encoder::InstructionSink<'_>, rng: &mut Rng| {
            // Mostly nearby callees (same file), sometimes anywhere.
            let j = if rng.below(4) == 0 {
                rng.below(n)
            } else {
                (i + n - 16 + rng.below(32)) % n
            };
            s.local_get(acc);
            if params(j) == 2 {
                s.local_get(frame);
            }
            s.call(NIMP + j).local_get(acc).i32_add().local_set(acc);
        };
        let calls = 3 + rng.below(3);
        for c in 0..calls {
            call(&mut s, rng);
            let slot = u64::from(4 * (c % 16));
            let mem = MemArg {
                offset: slot,
                align: 2,
                memory_index: 0,
            };
            s.local_get(frame).local_get(acc).i32_store(mem);
            match rng.below(4) {
                0 => {
                    s.local_get(acc)
                        .i32_const(rng.below(255) as i32 + 1)
                        .i32_and();
                    s.if_(BlockType::Empty);
                    s.local_get(acc)
                        .i32_const(rng.next() as i32)
                        .i32_xor()
                        .local_set(acc);
                    s.else_();
                    call(&mut s, rng);
                    s.end();
                }
                1 => {
                    // A call through a function pointer loaded from the frame.
                    s.local_get(acc).local_get(frame).i32_load(mem);
                    s.i32_const((FNPTR_EVERY * 4 - 1) as i32).i32_and();
                    s.call_indirect(0, T1).local_set(acc);
                }
                2 => {
                    s.call(0)
                        .i32_wrap_i64()
                        .local_get(acc)
                        .i32_add()
                        .local_set(acc);
                }
                _ => {
                    s.local_get(frame)
                        .i32_load(mem)
                        .i32_const(rng.next() as i32 | 1);
                    s.i32_mul().local_get(acc).i32_add().local_set(acc);
                }
            }
        }
        if rng.below(8) == 0 {
            s.local_get(frame).i32_const(64).call(1);
        }
        s.local_get(frame).i32_const(64).i32_add().global_set(sp);
        s.local_get(acc).end();
        f
    }

    /// A kernel of `n` defined functions.
    pub fn kernel(n: u32) -> Vec<u8> {
        assert!(n >= 32, "callees are picked within ±16");
        let mut rng = Rng(0x6b6c_705f_7761_736d);
        let mut types = TypeSection::new();
        types.ty().function([ValType::I32], [ValType::I32]);
        types
            .ty()
            .function([ValType::I32, ValType::I32], [ValType::I32]);
        types.ty().function([], [ValType::I64]);
        types.ty().function([ValType::I32, ValType::I32], []);
        let mut imports = ImportSection::new();
        imports.import("klp", "clock_ns", EntityType::Function(T_CLOCK));
        imports.import("klp", "console_write", EntityType::Function(T_WRITE));
        let mut functions = FunctionSection::new();
        let mut code = CodeSection::new();
        for i in 0..n {
            functions.function(if params(i) == 2 { T2 } else { T1 });
            code.function(&body(i, n, &mut rng));
        }
        // Function pointers: every FNPTR_EVERY-th function, from table index 1 (0 is NULL).
        let fnptrs: Vec<u32> = (0..n)
            .step_by(FNPTR_EVERY as usize)
            .map(|i| NIMP + i)
            .collect();
        let mut tables = TableSection::new();
        tables.table(TableType {
            element_type: RefType::FUNCREF,
            table64: false,
            minimum: fnptrs.len() as u64 + 1,
            maximum: Some(fnptrs.len() as u64 + 1),
            shared: false,
        });
        // .rodata: about a tenth of the code size (the real kernel is mostly data).
        let rodata: Vec<u8> = (0..n * 30).map(|_| rng.next() as u8).collect();
        let pages = 2 + rodata.len() as u64 / 65_536 + 1;
        let mut memory = MemorySection::new();
        memory.memory(MemoryType {
            minimum: pages,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        let mut globals = GlobalSection::new();
        globals.global(
            GlobalType {
                val_type: ValType::I32,
                mutable: true,
                shared: false,
            },
            &ConstExpr::i32_const(65_536),
        );
        let mut exports = ExportSection::new();
        exports.export("kernel_main", ExportKind::Func, NIMP);
        let mut elements = ElementSection::new();
        elements.active(
            None,
            &ConstExpr::i32_const(1),
            Elements::Functions(fnptrs.into()),
        );
        let mut data = DataSection::new();
        data.active(0, &ConstExpr::i32_const(131_072), rodata);

        let mut fnames = NameMap::new();
        fnames.append(0, "klp_clock_ns");
        fnames.append(1, "klp_console_write");
        for i in 0..n {
            fnames.append(NIMP + i, &raw_name(i));
        }
        let mut gnames = NameMap::new();
        gnames.append(0, "__stack_pointer");
        let mut dnames = NameMap::new();
        dnames.append(0, ".rodata");
        let mut names = NameSection::new();
        names.module("guest_kernel");
        names.functions(&fnames);
        names.globals(&gnames);
        names.data(&dnames);

        let mut m = Module::new();
        m.section(&types)
            .section(&imports)
            .section(&functions)
            .section(&tables)
            .section(&memory)
            .section(&globals)
            .section(&exports)
            .section(&elements)
            .section(&code)
            .section(&data)
            .section(&names);
        m.finish()
    }

    /// A kernel of about `target` bytes, and its number of defined functions.
    pub fn kernel_of_size(target: usize) -> (Vec<u8>, u32) {
        const PROBE: u32 = 256;
        let per_func = kernel(PROBE).len() / PROBE as usize;
        let n = u32::try_from(target / per_func).expect("size").max(32);
        (kernel(n), n)
    }

    /// Checks a synthetic kernel outside the timed loops: it validates, the pass accepts it and
    /// its output validates, every function has a slot, and kallsyms lists every function by
    /// its short name. Returns the instrumented kernel.
    pub fn check(wasm: &[u8], n: u32) -> Vec<u8> {
        let validate = |w: &[u8]| {
            wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::default())
                .validate_all(w)
                .expect("valid wasm");
        };
        validate(wasm);
        let out = klp_passes::instrument::instrument(wasm, &[]).expect("instrument");
        validate(&out.wasm);
        assert_eq!(out.ftrace.entries.len(), n as usize);
        assert!(out.ftrace.entries.iter().all(|e| !e.notrace));
        // The element segment keeps its positions: function pointers are their own slots.
        assert_eq!(out.ftrace.slot_of(NIMP + FNPTR_EVERY), Some(2));
        for k in [
            Kallsyms::from_kernel(wasm),
            Kallsyms::from_kernel(&out.wasm),
        ] {
            let k = k.expect("kallsyms");
            let funcs = k.iter().filter(|s| s.kind == SymKind::Func).count();
            assert_eq!(funcs, n as usize, "kallsyms lists every function");
            for i in [0, n / 2, n - 1] {
                let s = k.lookup(None, &short_name(i), 0).expect("symbol");
                assert_eq!(s.func_index, Some(NIMP + i));
            }
        }
        out.wasm
    }
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
        rmmod(&mut e, &klp_core::loader::module_name(name));
        let before = rss_bytes();
        for _ in 0..cycles {
            insmod(&mut e, name, name, params);
            rmmod(&mut e, &klp_core::loader::module_name(name));
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
