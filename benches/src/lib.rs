//! Shared helpers of the klp-wasm benchmarks (`benches/benches/*.rs`).
//!
//! Every benchmark runs its loop inside the guest and times it from the host with criterion's
//! `iter_custom`: one criterion iteration is one guest call of the function under test (one
//! round of syscalls, one enable, ...), so the reported time per iteration is the cost of that
//! call, and the host's own call into the guest is spread over millions of iterations.
//!
//! ```no_run
//! let mut e = klp_benches::boot(true);
//! klp_benches::insmod(&mut e, "klp_bench_target", "klp_bench_target", &[]);
//! let chain = klp_benches::module_slot(&mut e, "klp_bench_target", "klp_bench_chain");
//! assert_eq!(klp_benches::call(&mut e, klp_core::engine::Callee::Slot(chain), &[10, 0]), 10);
//! ```

use criterion::Criterion;
use klp_core::engine::{Callee, Engine};
use klp_core::ftrace::code::Mode;
use klp_wasmtime::{self as rt, Options, WasmtimeEngine};
use std::time::{Duration, Instant};

/// The command line every benchmark kernel boots with.
pub const CMDLINE: &str = "console=ttyS0 root=/dev/vda quiet";

/// What the kernel's `bench_target` adds (guest-kernel/src/bench.rs).
pub const TARGET_DELTA: i32 = 3;
/// What `test_klp_bench`'s replacement of `bench_target` adds.
pub const TARGET_PATCHED_DELTA: i32 = 5;
/// What `klp_bench_target`'s `bench_fn_000` adds.
pub const FN0_DELTA: i32 = 1;
/// What `test_klp_bench`'s replacement of `bench_fn_000` adds.
pub const FN0_PATCHED_DELTA: i32 = 1001;

/// `bench_dispatch` kinds.
pub mod kind {
    /// `call bench_target_notrace`: a direct call.
    pub const DIRECT: i32 = 0;
    /// `bench_target` through its ftrace slot.
    pub const SLOT: i32 = 1;
    /// `bench_stub` (direct) that calls `bench_target` through its slot.
    pub const STUB: i32 = 2;
}

/// The criterion settings of every group: 1 s warm-up, 3 s of measurement, 30 samples, so
/// that a full `cargo bench` stays within minutes on two cores.
pub fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .configure_from_args()
}

/// Boots the built kernel on wasmtime: instrumented when `hook`, without inlining.
///
/// # Panics
/// When the kernel does not boot.
pub fn boot(hook: bool) -> WasmtimeEngine {
    boot_with(hook, Options::default())
}

/// The default options with every call through its slot all the time (`klp run
/// --ftrace=always`): for benchmarks of the slot call itself, which the default dynamic mode
/// would run plain (every direct call direct) until a hook needs the slot.
pub fn always() -> Options {
    Options {
        ftrace: Mode::Always,
        ..Options::default()
    }
}

/// Boots the instrumented kernel with [`always`].
///
/// # Panics
/// When the kernel does not boot.
pub fn boot_always() -> WasmtimeEngine {
    boot_with(true, always())
}

/// Boots the built kernel with explicit wasmtime options.
///
/// # Panics
/// When the kernel does not boot.
pub fn boot_with(hook: bool, options: Options) -> WasmtimeEngine {
    rt::boot(klp_artifacts::KERNEL, CMDLINE, hook, options).expect("kernel boots")
}

/// Loads the built module `artifact` under the module name `name` (`-` becomes `_`).
///
/// # Panics
/// When there is no such module or it fails to load.
pub fn insmod(e: &mut WasmtimeEngine, name: &str, artifact: &str, params: &[&str]) {
    let bytes = klp_artifacts::module(artifact).unwrap_or_else(|| panic!("{artifact} built"));
    let name = klp_core::loader::module_name(name);
    klp_core::loader::load_module(e, &name, bytes, params)
        .unwrap_or_else(|err| panic!("insmod {name}: {err}"));
}

/// Unloads a module, disabling its patch first if it has an enabled one.
///
/// # Panics
/// When it fails.
pub fn rmmod(e: &mut WasmtimeEngine, name: &str) {
    if e.with_state(|s| s.livepatch.is_enabled(name)) {
        set_enabled(e, name, false);
    }
    klp_core::loader::unload_module(e, name).unwrap_or_else(|err| panic!("rmmod {name}: {err}"));
}

/// `echo 1|0 > /sys/kernel/livepatch/NAME/enabled`.
///
/// # Panics
/// When the write fails.
pub fn set_enabled(e: &mut WasmtimeEngine, patch: &str, on: bool) {
    let path = format!("/sys/kernel/livepatch/{patch}/enabled");
    klp_core::fs::write_file(e, &path, if on { b"1\n" } else { b"0\n" }, false)
        .unwrap_or_else(|err| panic!("write {path}: {err:?}"));
}

/// Writes `value` to the file `path` (sysfs, tracefs, ...).
///
/// # Panics
/// When the write fails.
pub fn write(e: &mut WasmtimeEngine, path: &str, value: &str) {
    klp_core::fs::write_file(e, path, value.as_bytes(), false)
        .unwrap_or_else(|err| panic!("write {path}: {err:?}"));
}

/// The code variant `/sys/kernel/tracing/dyn_ftrace_total_info` says runs: `plain`,
/// `selective` or `full`.
///
/// # Panics
/// When the file cannot be read or has no variant line.
pub fn variant(e: &mut WasmtimeEngine) -> String {
    let path = "/sys/kernel/tracing/dyn_ftrace_total_info";
    let info = klp_core::fs::read_file(e, path).unwrap_or_else(|err| panic!("{path}: {err:?}"));
    let info = String::from_utf8_lossy(&info);
    let line = info.lines().find_map(|l| l.strip_prefix("variant: "));
    let word = line.and_then(|l| l.split_whitespace().next());
    word.unwrap_or_else(|| panic!("{path}: {info}")).to_string()
}

/// Has the variant the hooks want built and compiled, waits for it, and lets the kernel swap
/// to it, as its scheduler does between two slices ([`klp_core::ftrace::code::poll`]);
/// returns the variant that runs then ([`variant`]). The kernel does not move to that
/// variant's boot code yet ([`settle`] waits for that too).
///
/// # Panics
/// When the swap fails.
pub fn swap_in(e: &mut WasmtimeEngine) -> String {
    let poll = |e: &mut WasmtimeEngine| {
        klp_core::ftrace::code::poll(e).unwrap_or_else(|err| panic!("code swap: {err:?}"));
    };
    poll(e);
    e.wait_for_code();
    poll(e);
    variant(e)
}

/// [`swap_in`], then a second of kernel time and the compile of the running variant's boot
/// code, so that the kernel moves to it (the code that runs defines its state): the kernel as
/// it runs once its hooks stay.
///
/// # Panics
/// When the swap fails.
pub fn settle(e: &mut WasmtimeEngine) -> String {
    let poll = |e: &mut WasmtimeEngine| {
        klp_core::ftrace::code::poll(e).unwrap_or_else(|err| panic!("code swap: {err:?}"));
    };
    // The first poll builds the variant the hooks want and starts its compile, the second
    // swaps to it; the next build that variant's boot code and move the kernel to it.
    for _ in 0..4 {
        poll(e);
        e.wait_for_code();
        // A variant runs a second of kernel time before the kernel moves to its boot code.
        klp_core::tasks::run_for(e, std::time::Duration::from_secs(2))
            .unwrap_or_else(|err| panic!("kernel time: {err:?}"));
    }
    poll(e);
    variant(e)
}

/// The slot (kallsyms address) of a module's function.
///
/// # Panics
/// When there is no such function.
pub fn module_slot(e: &mut WasmtimeEngine, module: &str, func: &str) -> u32 {
    e.with_state(|s| s.kallsyms.lookup(Some(module), func, 0).map(|sym| sym.addr))
        .unwrap_or_else(|err| panic!("{module}:{func}: {err:?}"))
}

/// Calls a guest function of `i32`s that returns one.
///
/// # Panics
/// On a trap or a function without a result.
pub fn call(e: &mut WasmtimeEngine, callee: Callee<'_>, args: &[i32]) -> i32 {
    e.call(callee, args)
        .unwrap_or_else(|err| panic!("{callee:?}: {err}"))
        .unwrap_or_else(|| panic!("{callee:?} returned nothing"))
}

/// Runs `iters` iterations of a guest loop in chunks that fit an `i32` count and returns the
/// elapsed time. `run(n, seed)` runs `n` iterations and returns the guest's result, which
/// must equal `expect(n, seed)`; the next chunk's seed is that result.
///
/// # Panics
/// When a result is not the expected one.
pub fn guest_loop(
    iters: u64,
    run: impl FnMut(i32, i32) -> i32,
    expect: impl Fn(i32, i32) -> i32,
) -> Duration {
    guest_loop_chunked(iters, 1 << 28, run, expect)
}

/// [`guest_loop`] with at most `chunk` iterations per guest call.
///
/// # Panics
/// When a result is not the expected one.
pub fn guest_loop_chunked(
    iters: u64,
    chunk: u64,
    mut run: impl FnMut(i32, i32) -> i32,
    expect: impl Fn(i32, i32) -> i32,
) -> Duration {
    let chunk = chunk.clamp(1, i32::MAX as u64);
    let mut left = iters;
    let mut seed = 0i32;
    let start = Instant::now();
    while left > 0 {
        let n = left.min(chunk) as i32;
        let got = run(n, seed);
        assert_eq!(got, expect(n, seed), "guest loop of {n} from {seed}");
        seed = got;
        left -= n as u64;
    }
    start.elapsed()
}

/// `seed + n * delta` in `i32` arithmetic: the result of `n` chained calls adding `delta`.
pub fn chained(seed: i32, n: i32, delta: i32) -> i32 {
    seed.wrapping_add(n.wrapping_mul(delta))
}

/// Resident set size of this process in bytes (`/proc/self/statm`), 0 where unavailable.
pub fn rss_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Whether criterion runs in test mode (`cargo bench -- --test`): each benchmark once.
pub fn test_mode() -> bool {
    std::env::args().any(|a| a == "--test")
}
