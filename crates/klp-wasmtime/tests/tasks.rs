//! Tasks on wasmtime: a kernel-like module through the instrumentation pass's tasks rewrite, run on the tasks `Config`.

use klp_passes::instrument::{instrument, tasks};
use klp_wasmtime::{Options, kernel_config};
use wasmtime::{
    Caller, Engine, Global, Instance, Linker, Module, Store, TypedFunc, Val, WasmBacktrace,
};

/// A kernel-like module: a shadow stack, function pointers in table 0, `schedule` (which tells
/// the host, then yields), workers that check their shadow-stack frame across sleeps, a loop
/// that never yields, a counted loop, a task that traps, and one that returns at once.
const KERNEL: &str = r#"(module
    (import "klp" "yield" (func $klp_yield))
    (import "klp" "hostcall" (func $hostcall (param i32 i32 i32 i32) (result i32)))
    (global $__stack_pointer (mut i32) (i32.const 65536))
    (memory 2)
    (table 8 funcref)
    (elem (i32.const 1) $worker $spinner $counter $faulty $quick)
    (func $schedule
        (drop (call $hostcall (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 0)))
        call $klp_yield)
    (func $msleep (param i32) call $schedule)
    (func $worker (param $id i32) (local $r i32) (local $fp i32)
        (global.set $__stack_pointer
            (local.tee $fp (i32.sub (global.get $__stack_pointer) (i32.const 16))))
        (i32.store (local.get $fp) (local.get $id))
        (loop $l
            (drop (call $hostcall (i32.const 2) (local.get $id) (local.get $r) (i32.const 0)))
            (call $msleep (i32.const 10))
            (if (i32.ne (i32.load (local.get $fp)) (local.get $id)) (then unreachable))
            (br_if $l (i32.lt_u (local.tee $r (i32.add (local.get $r) (i32.const 1)))
                                (i32.const 3))))
        (global.set $__stack_pointer (i32.add (local.get $fp) (i32.const 16))))
    (func $spinner (param i32) (loop $l (br $l)))
    (func $counter (param i32)
        (loop $l (br_if $l (local.tee 0 (i32.sub (local.get 0) (i32.const 1))))))
    (func $faulty (param i32) call $schedule unreachable)
    (func $quick (param i32)))"#;

/// The host's own stack pointer, and the top of task `t`'s shadow stack.
const HOST_SP: i32 = 65536;
fn task_sp(t: i32) -> i32 {
    131072 - t * 4096
}

#[derive(Default)]
struct Data {
    /// `(id, round)` of every worker round, in order.
    log: Vec<(i32, i32)>,
    /// The frames (innermost first) of every `schedule`, captured in its host call.
    stacks: Vec<Vec<String>>,
}

struct Kernel {
    store: Store<Data>,
    spawn: TypedFunc<(i32, i32, i32), ()>,
    resume: TypedFunc<(i32, i32), i32>,
    budget: Global,
    current: Global,
    stop: Global,
    sp: Global,
    slots: Vec<(String, u32)>,
}

impl Kernel {
    fn new() -> Self {
        let out = instrument(&wat::parse_str(KERNEL).unwrap(), &[]).unwrap();
        assert!(tasks::uses_tasks(&out.wasm).unwrap());
        let engine = Engine::new(&kernel_config(Options::default(), true).unwrap()).unwrap();
        let module = Module::new(&engine, &out.wasm).unwrap();
        let mut store = Store::new(&engine, Data::default());
        store.set_epoch_deadline(u64::MAX);
        let mut linker = Linker::new(&engine);
        linker.func_wrap("klp", "yield", || {}).unwrap();
        linker
            .func_wrap(
                "klp",
                "hostcall",
                |mut caller: Caller<'_, Data>, op: i32, a: i32, b: i32, _: i32| {
                    if op == 1 {
                        let bt = WasmBacktrace::force_capture(&caller);
                        let frames = bt
                            .frames()
                            .iter()
                            .map(|f| f.func_name().unwrap_or("?").to_string())
                            .collect();
                        caller.data_mut().stacks.push(frames);
                    } else {
                        caller.data_mut().log.push((a, b));
                    }
                    0
                },
            )
            .unwrap();
        let instance: Instance = linker.instantiate(&mut store, &module).unwrap();
        let global = |store: &mut Store<Data>, n: &str| instance.get_global(store, n).unwrap();
        Kernel {
            spawn: instance.get_typed_func(&mut store, tasks::SPAWN).unwrap(),
            resume: instance.get_typed_func(&mut store, tasks::RESUME).unwrap(),
            budget: global(&mut store, tasks::BUDGET),
            current: global(&mut store, tasks::CURRENT),
            stop: global(&mut store, tasks::STOP),
            sp: global(&mut store, "__stack_pointer"),
            slots: out
                .ftrace
                .entries
                .iter()
                .map(|e| (e.name.clone(), e.slot))
                .collect(),
            store,
        }
    }

    fn get(&mut self, g: Global) -> i32 {
        g.get(&mut self.store).i32().unwrap()
    }

    fn slot(&self, name: &str) -> i32 {
        self.slots.iter().find(|(n, _)| n == name).unwrap().1 as i32
    }

    fn spawn(&mut self, task: i32, func: &str, arg: i32) {
        let slot = self.slot(func);
        self.spawn.call(&mut self.store, (task, slot, arg)).unwrap();
    }

    /// Resumes `task` from `sp` with `budget`: the task's sp (0: finished) and why it stopped.
    fn resume(&mut self, task: i32, sp: i32, budget: i32) -> wasmtime::Result<(i32, i32)> {
        self.budget.set(&mut self.store, Val::I32(budget)).unwrap();
        let sp = self.resume.call(&mut self.store, (task, sp))?;
        assert_eq!(
            self.get(self.sp),
            HOST_SP,
            "the caller's stack pointer is back"
        );
        assert_eq!(self.get(self.current), -1, "no task runs after a resume");
        Ok((sp, self.get(self.stop)))
    }

    /// Round-robin over `tasks` until every one finished; the stop reasons, in order.
    fn run_all(&mut self, tasks: &[i32], budget: i32) -> Vec<(i32, i32)> {
        let mut sps: Vec<(i32, i32)> = tasks.iter().map(|&t| (t, task_sp(t))).collect();
        let mut stops = Vec::new();
        while !sps.is_empty() {
            sps.retain_mut(|(t, sp)| {
                let (new_sp, stop) = self.resume(*t, *sp, budget).unwrap();
                stops.push((*t, stop));
                *sp = new_sp;
                new_sp != 0
            });
        }
        stops
    }
}

#[test]
fn three_tasks_interleave_through_their_yields() {
    let mut k = Kernel::new();
    for t in 0..3 {
        k.spawn(t, "worker", 10 + t);
    }
    let stops = k.run_all(&[0, 1, 2], 1000);
    let log = &k.store.data().log;
    let expected: Vec<(i32, i32)> = (0..3)
        .flat_map(|r| (10..13).map(move |id| (id, r)))
        .collect();
    assert_eq!(*log, expected);
    // Three yields each, then the fourth resume finishes it.
    for t in 0..3 {
        let mine: Vec<i32> = stops.iter().filter(|s| s.0 == t).map(|s| s.1).collect();
        assert_eq!(
            mine,
            [
                tasks::STOP_YIELDED,
                tasks::STOP_YIELDED,
                tasks::STOP_YIELDED,
                tasks::STOP_FINISHED
            ]
        );
    }
}

#[test]
fn a_task_that_never_yields_is_preempted_by_its_budget() {
    let mut k = Kernel::new();
    k.spawn(0, "spinner", 0);
    k.spawn(1, "worker", 7);
    let mut spin_sp = task_sp(0);
    let mut work_sp = task_sp(1);
    for _ in 0..4 {
        let (sp, stop) = k.resume(0, spin_sp, 100).unwrap();
        assert_eq!(stop, tasks::STOP_PREEMPTED);
        assert_eq!(sp, task_sp(0), "the spinner uses no shadow stack");
        spin_sp = sp;
        if work_sp != 0 {
            work_sp = k.resume(1, work_sp, 100).unwrap().0;
        }
    }
    assert_eq!(work_sp, 0, "the worker finished while the spinner spun");
    assert_eq!(k.store.data().log, [(7, 0), (7, 1), (7, 2)]);
    // Deterministic: 250 loop headers with a budget of 100 stop after the 100th and the 200th.
    k.spawn(2, "counter", 250);
    let stops: Vec<i32> = k.run_all(&[2], 100).into_iter().map(|s| s.1).collect();
    assert_eq!(
        stops,
        [
            tasks::STOP_PREEMPTED,
            tasks::STOP_PREEMPTED,
            tasks::STOP_FINISHED
        ]
    );
}

#[test]
fn a_sleeping_task_s_stack_names_its_frames() {
    let mut k = Kernel::new();
    k.spawn(5, "worker", 1);
    k.resume(5, task_sp(5), 1000).unwrap();
    let stack = &k.store.data().stacks[0];
    assert_eq!(
        stack[..5],
        [
            "schedule",
            "msleep",
            "worker",
            tasks::ENTRY_NAME,
            tasks::RESUME
        ],
        "{stack:?}"
    );
}

#[test]
fn spawning_and_finishing_40000_tasks_reuses_continuations() {
    let mut k = Kernel::new();
    // Without reuse, wasmtime 48 runs out of memory maps after ~32,700 continuations.
    for i in 0..40_000 {
        let task = i % 4;
        k.spawn(task, "quick", i);
        assert_eq!(k.resume(task, task_sp(task), 10).unwrap(), (0, 0));
    }
    // A task slot whose task yielded is busy: spawning into it traps.
    k.spawn(0, "worker", 3);
    k.resume(0, task_sp(0), 10).unwrap();
    let slot = k.slot("quick");
    assert!(k.spawn.call(&mut k.store, (0, slot, 0)).is_err());
}

#[test]
fn a_trap_inside_one_task_leaves_the_others_resumable() {
    let mut k = Kernel::new();
    k.spawn(0, "worker", 20);
    k.spawn(1, "faulty", 0);
    k.spawn(2, "worker", 22);
    let sp0 = k.resume(0, task_sp(0), 1000).unwrap().0;
    let sp1 = k.resume(1, task_sp(1), 1000).unwrap().0;
    let sp2 = k.resume(2, task_sp(2), 1000).unwrap().0;
    let err = k.resume.call(&mut k.store, (1, sp1)).unwrap_err();
    assert_eq!(
        err.downcast_ref::<wasmtime::Trap>(),
        Some(&wasmtime::Trap::UnreachableCodeReached)
    );
    // The host restores what the dispatcher could not.
    k.sp.set(&mut k.store, Val::I32(HOST_SP)).unwrap();
    k.current.set(&mut k.store, Val::I32(-1)).unwrap();
    // The dead task's slot is empty: resuming it (or a task slot out of range) traps and
    // changes nothing; spawning into it works.
    for task in [1, tasks::MAX_TASKS as i32] {
        assert!(k.resume.call(&mut k.store, (task, sp1)).is_err());
        assert_eq!(k.get(k.sp), HOST_SP);
        assert_eq!(k.get(k.current), -1);
    }
    k.spawn(1, "quick", 0);
    assert_eq!(k.resume(1, task_sp(1), 10).unwrap(), (0, 0));
    let (mut a, mut b) = (sp0, sp2);
    while a != 0 || b != 0 {
        if a != 0 {
            a = k.resume(0, a, 1000).unwrap().0;
        }
        if b != 0 {
            b = k.resume(2, b, 1000).unwrap().0;
        }
    }
    let log = &k.store.data().log;
    assert_eq!(log.iter().filter(|(id, _)| *id == 20).count(), 3);
    assert_eq!(log.iter().filter(|(id, _)| *id == 22).count(), 3);
}

#[test]
fn the_engine_runs_a_kernel_with_tasks_and_refuses_inlining_for_it() {
    use klp_core::engine::{Callee, Engine};
    use klp_wasmtime::instantiate_kernel;
    let raw = wat::parse_str(KERNEL).unwrap();
    let image = klp_core::kernel::prepare(&raw, "", true).unwrap();
    let err = instantiate_kernel(
        &image.wasm,
        image.state,
        Options {
            inlining: true,
            ..Options::default()
        },
    )
    .err()
    .unwrap();
    assert_eq!(
        err.to_string(),
        "compile error: inlining is not available for a kernel with tasks: wasmtime cannot \
         inline calls when stack switching is enabled"
    );
    let image = klp_core::kernel::prepare(&raw, "", true).unwrap();
    let map = klp_passes::instrument::FtraceMap::from_instrumented(&image.wasm).unwrap();
    let counter = map
        .entries
        .iter()
        .find(|e| e.name == "counter")
        .unwrap()
        .slot;
    let mut e = instantiate_kernel(&image.wasm, image.state, Options::default()).unwrap();
    let sp = e.stack_pointer();
    e.call(Callee::Export(tasks::SPAWN), &[0, counter as i32, 5])
        .unwrap();
    let done = e.call(Callee::Export(tasks::RESUME), &[0, task_sp(0)]);
    assert_eq!(done.unwrap(), Some(0));
    assert_eq!(e.stack_pointer(), sp);
    // A kernel without klp.yield keeps today's config, inlining included.
    let plain = KERNEL
        .replace(r#"(import "klp" "yield" (func $klp_yield))"#, "")
        .replace("call $klp_yield", "");
    let image = klp_core::kernel::prepare(&wat::parse_str(plain).unwrap(), "", true).unwrap();
    assert!(!tasks::uses_tasks(&image.wasm).unwrap());
    instantiate_kernel(
        &image.wasm,
        image.state,
        Options {
            inlining: true,
            ..Options::default()
        },
    )
    .unwrap();
}
