//! Tasks (the instrumentation pass's stack-switching rewrite): resume+yield through the dispatcher, and the loop-header budget checks' cost.
//!
//! * `resume_yield/{1,100}`: the host calls `__klp_task_resume` on one task, or round-robin on
//!   100, each of which yields at once: one iteration is one resume and one suspend.
//! * `loop/{plain,budget}`: a tight counted loop of a small kernel, one iteration per loop
//!   header, without and with the budget check (the kernel with tasks runs on the
//!   stack-switching `Config`).
//! * `getpid/{direct,in_task}`: one getpid syscall from the host, called directly (as the idle
//!   task) and as a shell command's syscall, inside the command's task.
//! * `syscall_round/{instrumented,budget}`: the real kernel's `bench_syscalls` round
//!   (benches/kernel.rs) on the instrumented kernel (`--ftrace=always`: every call through its
//!   slot) without the tasks rewrite (`no_tasks`, as the page runs it), and with it, as `klp`
//!   runs it (every loop header of the kernel checks the budget; the round is called
//!   directly, so nothing is preempted).

use criterion::{Criterion, criterion_group, criterion_main};
use klp_benches::{call, guest_loop_chunked};
use klp_core::engine::Callee;
use klp_passes::instrument::{instrument, tasks};
use klp_wasmtime::{Options, WasmtimeEngine, kernel_config};
use std::time::Instant;
use wasmtime::{Engine, Linker, Module, Store, TypedFunc};

/// The ramfs file's length a syscall round reads (`RAMFS_DATA` in guest-kernel/src/bench.rs).
const RAMFS_LEN: i32 = 53;

/// A small kernel: a task that yields forever, and a counted loop.
const KERNEL: &str = r#"(module
    (import "klp" "yield" (func $klp_yield))
    (global $__stack_pointer (mut i32) (i32.const 65536))
    (memory 2)
    (table 2 funcref)
    (elem (i32.const 1) $yielder)
    (func $yielder (param i32) (loop $l call $klp_yield br $l))
    (func $count (export "count") (param $n i32) (result i32) (local $i i32)
        (loop $l
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
        (local.get $i)))"#;

struct Small {
    store: Store<()>,
    count: TypedFunc<i32, i32>,
    /// `__klp_task_resume`, with 100 tasks spawned that yield forever; `None` without tasks.
    resume: Option<TypedFunc<(i32, i32), i32>>,
}

/// The top of task `t`'s shadow stack in the small kernel.
fn task_sp(t: i32) -> i32 {
    131_072 - t * 256
}

/// The small kernel instrumented, with tasks when `with_yield` (else its yield import is
/// renamed, so the pass leaves it without them).
fn small(with_yield: bool) -> Small {
    let source = if with_yield {
        KERNEL.to_string()
    } else {
        KERNEL.replace(r#""klp" "yield""#, r#""klp" "nothing""#)
    };
    let out = instrument(&wat::parse_str(source).unwrap(), &[]).unwrap();
    let with_tasks = tasks::uses_tasks(&out.wasm).unwrap();
    let engine = Engine::new(&kernel_config(Options::default(), with_tasks).unwrap()).unwrap();
    let module = Module::new(&engine, &out.wasm).unwrap();
    let mut store = Store::new(&engine, ());
    store.set_epoch_deadline(u64::MAX);
    let mut linker = Linker::new(&engine);
    linker.func_wrap("klp", "yield", || {}).unwrap();
    linker.func_wrap("klp", "nothing", || {}).unwrap();
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let count = instance.get_typed_func(&mut store, "count").unwrap();
    let mut resume = None;
    if with_tasks {
        let spawn: TypedFunc<(i32, i32, i32), ()> =
            instance.get_typed_func(&mut store, tasks::SPAWN).unwrap();
        let entry = out.ftrace.entries.iter().find(|e| e.name == "yielder");
        let slot = entry.unwrap().slot as i32;
        for t in 0..100 {
            spawn.call(&mut store, (t, slot, 0)).unwrap();
        }
        resume = Some(instance.get_typed_func(&mut store, tasks::RESUME).unwrap());
    }
    Small {
        store,
        count,
        resume,
    }
}

fn resume_yield(c: &mut Criterion) {
    let mut g = c.benchmark_group("tasks");
    let mut k = small(true);
    for n in [1, 100] {
        g.bench_function(format!("resume_yield/{n}"), |b| {
            b.iter_custom(|iters| {
                let resume = k.resume.clone().unwrap();
                let start = Instant::now();
                for i in 0..iters {
                    let t = (i % n) as i32;
                    let sp = resume.call(&mut k.store, (t, task_sp(t))).unwrap();
                    assert_eq!(sp, task_sp(t));
                }
                start.elapsed()
            });
        });
    }
    for (name, with_yield) in [("loop/plain", false), ("loop/budget", true)] {
        let mut k = small(with_yield);
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                guest_loop_chunked(
                    iters,
                    1 << 24,
                    |n, _| k.count.call(&mut k.store, n).unwrap(),
                    |n, _| n,
                )
            });
        });
    }
    let round = |e: &mut WasmtimeEngine, iters| {
        let per_round =
            klp_core::fs::read_file(e, "/proc/cmdline").unwrap().len() as i32 + RAMFS_LEN;
        guest_loop_chunked(
            iters,
            1 << 20,
            |n, _| call(e, Callee::Export("bench_syscalls"), &[n]),
            |n, _| n.wrapping_mul(per_round),
        )
    };
    // The same kernel without the tasks rewrite (as the page runs it), then with it (the
    // default): the difference is the budget checks at every loop header.
    let mut plain = klp_benches::boot_with(
        true,
        Options {
            no_tasks: true,
            ..klp_benches::always()
        },
    );
    g.bench_function("syscall_round/instrumented", |b| {
        b.iter_custom(|iters| round(&mut plain, iters));
    });
    let mut budget = klp_benches::boot_always();
    g.bench_function("syscall_round/budget", |b| {
        b.iter_custom(|iters| round(&mut budget, iters));
    });
    // One getpid from the host: called directly, and as a shell command's syscall (written
    // into the command's pt_regs, spawned as its task through do_syscall_64, resumed until it
    // returns to user mode).
    let getpid = |e: &mut WasmtimeEngine| {
        klp_core::tasks::call(e, "__x64_sys_getpid", &[])
            .unwrap()
            .unwrap()
    };
    g.bench_function("getpid/direct", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                assert_eq!(getpid(&mut budget), 0, "swapper/0's pid");
            }
            start.elapsed()
        });
    });
    g.bench_function("getpid/in_task", |b| {
        b.iter_custom(|iters| {
            klp_core::tasks::with_command(&mut budget, "bench", |e| {
                let pid = getpid(e);
                assert!(pid > 0, "the command's own pid");
                let start = Instant::now();
                for _ in 0..iters {
                    assert_eq!(getpid(e), pid);
                }
                Ok(start.elapsed())
            })
            .unwrap()
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = klp_benches::criterion();
    targets = resume_yield
}
criterion_main!(benches);
