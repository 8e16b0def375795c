//! Tasks and transitions (issue 12): a context switch between two kthreads, a livepatch transition's completion time by task count, and the cost of recording a sleeping task's stack.
//!
//! * `context_switch/pingpong`: test_klp_stress `pingpong=Y`: two kthreads hand a token back
//!   and forth through two completions (`complete` wakes the other, `wait_for_completion`
//!   sleeps: the kernel's `schedule` calls the host, which records the task's stack and
//!   suspends it; the host picks the other and resumes it). One iteration is one hand-over,
//!   counted by the module. `context_switch/syscall_round` is §4's syscall round on the same
//!   kernel, for the ratio.
//! * `transition_complete/{1,10,100,1000}`: test_klp_stress with that many kthreads, half of
//!   them (`nr_sleeping`) asleep in `stress_idle`, outside the patched functions, the others
//!   in the stress loop; one iteration is `echo 1 > enabled` until the transition completes
//!   (the kernel's clock runs in steps of 10 ms of virtual time; tasks switch at the
//!   transition work's tries, one a second of virtual time). Disabling (and waiting for it)
//!   between iterations is not timed, nor is a pause of 3 to 43 ms of virtual time (varied)
//!   after it, so that each enable comes at another moment of the tasks' loops. The virtual time each completion took is printed. At
//!   most 4 enables run per criterion sample (the time is scaled to the sample's count): every
//!   transition instantiates dispatchers, and the kernel cannot move to a fresh store (which
//!   drops dead instances) while kthreads hold frames. The kernel runs with `--ftrace=always`:
//!   in the default dynamic mode a kthread asleep in plain code that can call a patched
//!   function directly does not switch until it leaves that frame, a different measurement.
//! * `stack_capture/{nop,backtrace}/{8,32,128}`: what the Schedule host call adds to a
//!   switch: wasmtime's `WasmBacktrace::force_capture` and the frames' names (as
//!   `klp_wasmtime`'s `Engine::backtrace`) from a host call made at a depth of 8, 32 or 128
//!   wasm frames, on the kernel's tasks `Config`, against a host call that does nothing from
//!   the same depth.

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use klp_benches::{boot, boot_always, call, guest_loop_chunked, insmod, set_enabled};
use klp_core::engine::{Callee, Engine};
use klp_wasmtime::{Options, WasmtimeEngine, kernel_config};
use std::hint::black_box;
use std::time::{Duration, Instant};
use wasmtime::{Caller, Linker, Module, Store, TypedFunc, WasmBacktrace};

/// The ramfs file's length a syscall round reads (`RAMFS_DATA` in guest-kernel/src/bench.rs).
const RAMFS_LEN: i32 = 53;

/// The address of a data symbol of test_klp_stress.
fn stress_symbol(e: &mut WasmtimeEngine, name: &str) -> u32 {
    e.with_state(|s| {
        s.kallsyms
            .lookup(Some("test_klp_stress"), name, 0)
            .map(|sym| sym.addr)
    })
    .unwrap_or_else(|err| panic!("test_klp_stress:{name}: {err:?}"))
}

fn read_u32(e: &mut WasmtimeEngine, addr: u32) -> u32 {
    let mut b = [0; 4];
    e.read(addr, &mut b).expect("readable");
    u32::from_le_bytes(b)
}

/// Lets the kernel run `d` of virtual time.
fn run_for(e: &mut WasmtimeEngine, d: Duration) {
    klp_core::tasks::run_for(e, d).expect("the kernel runs");
}

fn context_switch(c: &mut Criterion) {
    let mut g = c.benchmark_group("context_switch");
    let mut e = boot(true);
    insmod(
        &mut e,
        "test_klp_stress",
        "test_klp_stress",
        &["nr_tasks=0", "pingpong=Y"],
    );
    let switches = stress_symbol(&mut e, "SWITCHES");
    g.bench_function("pingpong", |b| {
        b.iter_custom(|iters| {
            if iters == 0 {
                return Duration::ZERO;
            }
            let first = read_u32(&mut e, switches);
            let start = Instant::now();
            let mut done = 0;
            while done < iters {
                run_for(&mut e, Duration::from_micros(200));
                done = u64::from(read_u32(&mut e, switches).wrapping_sub(first));
            }
            // The last step may overshoot: the time per hand-over, times `iters`.
            start.elapsed().mul_f64(iters as f64 / done as f64)
        });
    });
    g.bench_function("syscall_round", |b| {
        b.iter_custom(|iters| {
            let per_round = klp_core::fs::read_file(&mut e, "/proc/cmdline")
                .unwrap()
                .len() as i32
                + RAMFS_LEN;
            guest_loop_chunked(
                iters,
                1 << 20,
                |n, _| call(&mut e, Callee::Export("bench_syscalls"), &[n]),
                |n, _| n.wrapping_mul(per_round),
            )
        });
    });
    g.finish();
}

/// Whether a livepatch transition is running.
fn in_transition(e: &mut WasmtimeEngine) -> bool {
    e.with_state(|s| s.livepatch.transition().is_some())
}

/// Runs the kernel until the transition completes; the virtual time it took.
fn until_complete(e: &mut WasmtimeEngine) -> Duration {
    let from = e.with_state(|s| s.tasks.now_ns());
    while in_transition(e) {
        run_for(e, Duration::from_millis(10));
    }
    Duration::from_nanos(e.with_state(|s| s.tasks.now_ns()) - from)
}

/// Enables timed per criterion sample at most (see `transition_complete`).
const RUNS_PER_SAMPLE: u64 = 4;

fn transition_complete(c: &mut Criterion) {
    let mut g = c.benchmark_group("transition_complete");
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(100));
    g.measurement_time(Duration::from_secs(1));
    for n in [1u32, 10, 100, 1000] {
        let mut e = boot_always();
        let tasks = format!("nr_tasks={n}");
        let sleeping = format!("nr_sleeping={}", n / 2);
        insmod(
            &mut e,
            "test_klp_stress",
            "test_klp_stress",
            &[&tasks, &sleeping],
        );
        run_for(&mut e, Duration::from_millis(100));
        insmod(
            &mut e,
            "test_klp_stress_patch",
            "test_klp_stress_patch",
            &[],
        );
        until_complete(&mut e);
        set_enabled(&mut e, "test_klp_stress_patch", false);
        until_complete(&mut e);
        let mut virtual_time = Vec::new();
        let mut pause = u64::from(n);
        g.bench_function(n.to_string(), |b| {
            b.iter_custom(|iters| {
                // At most RUNS_PER_SAMPLE enables per sample, scaled to `iters`: each
                // transition instantiates its dispatchers, and the kernel cannot move to a
                // fresh store while kthreads hold frames, so the instances add up.
                let runs = iters.min(RUNS_PER_SAMPLE);
                if runs == 0 {
                    return Duration::ZERO;
                }
                let mut total = Duration::ZERO;
                for _ in 0..runs {
                    let start = Instant::now();
                    set_enabled(&mut e, "test_klp_stress_patch", true);
                    virtual_time.push(until_complete(&mut e));
                    total += start.elapsed();
                    set_enabled(&mut e, "test_klp_stress_patch", false);
                    until_complete(&mut e);
                    // The next enable at another moment of the tasks' loops.
                    pause = pause
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1);
                    run_for(
                        &mut e,
                        Duration::from_micros(3_000 + (pause >> 33) % 40_000),
                    );
                }
                total.mul_f64(iters as f64 / runs as f64)
            });
        });
        let mean = virtual_time.iter().sum::<Duration>() / virtual_time.len().max(1) as u32;
        let max = virtual_time.iter().max().copied().unwrap_or_default();
        eprintln!(
            "transition_complete/{n}: {} enables, virtual time to complete: mean {mean:.2?}, max {max:.2?}",
            virtual_time.len()
        );
        let mismatches = stress_symbol(&mut e, "MISMATCHES");
        assert_eq!(read_u32(&mut e, mismatches), 0, "a task mixed versions");
    }
    g.finish();
}

/// A module whose `run(n, depth, capture)` makes `n` host calls, each from `depth` frames
/// deep: `bt` (a backtrace) when `capture`, `nop` otherwise.
const DEEP: &str = r#"(module
    (import "h" "bt" (func $bt))
    (import "h" "nop" (func $nop))
    (func $down (param $d i32) (param $capture i32)
        (if (i32.le_s (local.get $d) (i32.const 1))
            (then (if (local.get $capture) (then (call $bt)) (else (call $nop))))
            (else (call $down (i32.sub (local.get $d) (i32.const 1)) (local.get $capture)))))
    (func (export "run") (param $n i32) (param $d i32) (param $capture i32) (result i32)
        (local $i i32)
        (loop $l
            (call $down (i32.sub (local.get $d) (i32.const 1)) (local.get $capture))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
        (local.get $i)))"#;

fn stack_capture(c: &mut Criterion) {
    let mut g = c.benchmark_group("stack_capture");
    let engine = wasmtime::Engine::new(&kernel_config(Options::default(), true).unwrap()).unwrap();
    let module = Module::new(&engine, wat::parse_str(DEEP).unwrap()).unwrap();
    let mut store = Store::new(&engine, 0usize);
    store.set_epoch_deadline(u64::MAX);
    let mut linker = Linker::new(&engine);
    linker
        .func_wrap("h", "bt", |mut caller: Caller<'_, usize>| {
            let frames: Vec<Option<String>> = WasmBacktrace::force_capture(&caller)
                .frames()
                .iter()
                .map(|f| f.func_name().map(str::to_string))
                .collect();
            *caller.data_mut() = black_box(frames).len();
        })
        .unwrap();
    linker.func_wrap("h", "nop", || {}).unwrap();
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let run: TypedFunc<(i32, i32, i32), i32> = instance.get_typed_func(&mut store, "run").unwrap();
    for depth in [8, 32, 128] {
        run.call(&mut store, (1, depth, 1)).unwrap();
        assert_eq!(*store.data(), depth as usize, "frames captured");
        for (name, capture) in [("nop", 0), ("backtrace", 1)] {
            g.bench_function(format!("{name}/{depth}"), |b| {
                b.iter_custom(|iters| {
                    guest_loop_chunked(
                        iters,
                        1 << 20,
                        |n, _| run.call(&mut store, (n, depth, capture)).unwrap(),
                        |n, _| n,
                    )
                });
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = klp_benches::criterion();
    targets = context_switch, transition_complete, stack_capture
}
criterion_main!(benches);
