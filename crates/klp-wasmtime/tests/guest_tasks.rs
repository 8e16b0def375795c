//! The guest kernel's tasks under a minimal scheduler: the built kernel, instrumented with
//! tasks, driven through the contract of issue 12 (Schedule, Wake, TaskNew, TimerNext,
//! `task_fork`, `do_syscall_64`, `run_timers`, `put_task_struct`) by a round-robin host
//! with a virtual clock. A check of the kernel's side until the host core has its scheduler.

use std::collections::{HashMap, VecDeque};

use klp_passes::instrument::{instrument, tasks};
use klp_wasmtime::{Options, kernel_config};
use wasmtime::{Caller, Engine, Extern, Instance, Linker, Memory, Module, Store, Val};

// task_struct offsets (klp_abi::task_struct).
const STATE: i32 = 4;
const FLAGS: i32 = 8;
const SLOT: i32 = 20;
const STACK: i32 = 24;
const ENTRY: i32 = 28;
const REGS: i32 = 48;
const PREEMPT_COUNT: i32 = 100;
const THREAD_SIZE: i32 = 32 << 10;
const PF_WQ_WORKER: i32 = 0x20;
const NS_PER_JIFFY: i64 = 4_000_000;

#[derive(Default)]
struct Data {
    clock_ns: i64,
    runq: VecDeque<i32>,
    next_timer: u64,
    in_task: bool,
    schedules: u32,
    wakes: u32,
    preemptions: u32,
}

fn mem(caller: &mut Caller<'_, Data>) -> Memory {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => m,
        _ => panic!("no memory"),
    }
}

fn rd(m: &Memory, store: impl wasmtime::AsContext, addr: i32) -> i32 {
    let mut b = [0; 4];
    m.read(store, addr as usize, &mut b).unwrap();
    i32::from_le_bytes(b)
}

struct Kernel {
    store: Store<Data>,
    instance: Instance,
    memory: Memory,
    slots: HashMap<String, i32>,
    /// task -> (slot, sp of its continuation or None)
    tasks: HashMap<i32, (i32, Option<i32>)>,
    finished: Vec<i32>,
    init_task: i32,
    current_ptr: i32,
    budget: i32,
}

impl Kernel {
    fn new(budget: i32) -> Self {
        let out = instrument(klp_artifacts::KERNEL, &[]).unwrap();
        assert!(tasks::uses_tasks(&out.wasm).unwrap());
        let engine = Engine::new(&kernel_config(Options::default(), true).unwrap()).unwrap();
        let module = Module::new(&engine, &out.wasm).unwrap();
        let mut store = Store::new(
            &engine,
            Data {
                next_timer: u64::MAX,
                ..Data::default()
            },
        );
        store.set_epoch_deadline(u64::MAX);
        let mut linker = Linker::new(&engine);
        linker.func_wrap("klp", "yield", || {}).unwrap();
        linker
            .func_wrap("klp", "clock_ns", |c: Caller<'_, Data>| c.data().clock_ns)
            .unwrap();
        linker
            .func_wrap(
                "klp",
                "hostcall",
                |mut c: Caller<'_, Data>,
                 op: i32,
                 a: i32,
                 b: i32,
                 _: i32|
                 -> wasmtime::Result<i32> {
                    Ok(match op {
                        7 => {
                            c.data_mut().schedules += 1;
                            if c.data().in_task {
                                0
                            } else {
                                let next = c.data().next_timer;
                                if next != u64::MAX {
                                    let t = next as i64 * NS_PER_JIFFY;
                                    let d = c.data_mut();
                                    d.clock_ns = d.clock_ns.max(t);
                                    let f =
                                        c.get_export("run_timers").unwrap().into_func().unwrap();
                                    f.call(&mut c, &[], &mut [])?;
                                }
                                1
                            }
                        }
                        8 => {
                            c.data_mut().wakes += 1;
                            if !c.data().runq.contains(&a) {
                                c.data_mut().runq.push_back(a);
                            }
                            0
                        }
                        9 => {
                            let m = mem(&mut c);
                            if rd(&m, &c, a + STATE) == 0 {
                                c.data_mut().runq.push_back(a);
                            }
                            0
                        }
                        10 => {
                            c.data_mut().next_timer = (a as u32 as u64) | ((b as u32 as u64) << 32);
                            0
                        }
                        _ => -38,
                    })
                },
            )
            .unwrap();
        let instance = linker.instantiate(&mut store, &module).unwrap();
        let memory = instance.get_memory(&mut store, "memory").unwrap();
        let slots = out
            .ftrace
            .entries
            .iter()
            .map(|e| (e.name.clone(), e.slot as i32))
            .collect();
        let mut k = Kernel {
            store,
            instance,
            memory,
            slots,
            tasks: HashMap::new(),
            finished: Vec::new(),
            init_task: 0,
            current_ptr: 0,
            budget,
        };
        let buf = k.call("klp_user_buffer", &[]);
        k.write(buf, b"quiet");
        assert_eq!(k.call("kernel_boot", &[buf, 5]), 0);
        k.init_task = k.call("klp_init_task", &[]);
        k.current_ptr = k.call("klp_current_task_ptr", &[]);
        k
    }

    fn call(&mut self, name: &str, args: &[i32]) -> i32 {
        let f = self.instance.get_func(&mut self.store, name).unwrap();
        let args: Vec<Val> = args.iter().map(|&a| Val::I32(a)).collect();
        let mut ret = vec![Val::I32(0); f.ty(&self.store).results().len()];
        f.call(&mut self.store, &args, &mut ret).unwrap();
        ret.first().map_or(0, |v| v.unwrap_i32())
    }

    fn write(&mut self, addr: i32, bytes: &[u8]) {
        self.memory
            .write(&mut self.store, addr as usize, bytes)
            .unwrap();
    }

    fn rd(&self, addr: i32) -> i32 {
        rd(&self.memory, &self.store, addr)
    }

    fn wr(&mut self, addr: i32, v: i32) {
        self.write(addr, &v.to_le_bytes());
    }

    fn slot(&self, name: &str) -> i32 {
        *self.slots.get(name).unwrap_or_else(|| panic!("no {name}"))
    }

    fn set_current(&mut self, t: i32) {
        let p = self.current_ptr;
        self.wr(p, t);
    }

    /// A user task running `func(args)` once.
    fn fork(&mut self, comm: &str, func: &str, args: &[i32], has_ret: bool) -> i32 {
        let buf = self.call("klp_user_buffer", &[]) + 60000;
        self.write(buf, comm.as_bytes());
        let t = self.call("task_fork", &[buf, comm.len() as i32]);
        assert_ne!(t, 0, "task_fork");
        let f = self.slot(func);
        self.wr(t + REGS, f);
        self.wr(t + REGS + 4, args.len() as i32);
        self.wr(t + REGS + 8, i32::from(has_ret));
        for (i, &a) in args.iter().enumerate() {
            self.wr(t + REGS + 12 + 4 * i as i32, a);
        }
        t
    }

    /// Runs tasks and timers until `done` or nothing is left to do.
    fn run_until(&mut self, mut done: impl FnMut(&Self) -> bool) {
        let spawn = self
            .instance
            .get_typed_func::<(i32, i32, i32), ()>(&mut self.store, tasks::SPAWN)
            .unwrap();
        let resume = self
            .instance
            .get_typed_func::<(i32, i32), i32>(&mut self.store, tasks::RESUME)
            .unwrap();
        let budget = self
            .instance
            .get_global(&mut self.store, tasks::BUDGET)
            .unwrap();
        let stop = self
            .instance
            .get_global(&mut self.store, tasks::STOP)
            .unwrap();
        while !done(self) {
            let Some(t) = self.store.data_mut().runq.pop_front() else {
                let next = self.store.data().next_timer;
                if next == u64::MAX {
                    return;
                }
                let d = self.store.data_mut();
                d.clock_ns = d.clock_ns.max(next as i64 * NS_PER_JIFFY);
                self.call("run_timers", &[]);
                continue;
            };
            let slot = self.rd(t + SLOT);
            let entry = self.tasks.entry(t).or_insert((slot, None));
            let sp = match entry.1 {
                Some(sp) => sp,
                None => {
                    let e = self.rd(t + ENTRY);
                    spawn.call(&mut self.store, (slot, e, t)).unwrap();
                    self.rd(t + STACK) + THREAD_SIZE
                }
            };
            self.set_current(t);
            self.store.data_mut().in_task = true;
            budget.set(&mut self.store, Val::I32(self.budget)).unwrap();
            let r = resume.call(&mut self.store, (slot, sp)).unwrap();
            self.store.data_mut().in_task = false;
            let it = self.init_task;
            self.set_current(it);
            let why = stop.get(&mut self.store).unwrap_i32();
            let state = self.rd(t + STATE);
            if r == 0 {
                self.tasks.get_mut(&t).unwrap().1 = None;
                let flags = self.rd(t + FLAGS);
                if flags & PF_WQ_WORKER != 0 {
                    if state == 0 {
                        self.store.data_mut().runq.push_back(t);
                    }
                } else if self.rd(t + ENTRY) == self.slot("do_syscall_64") {
                    self.finished.push(t);
                } else {
                    self.tasks.remove(&t);
                    self.call("put_task_struct", &[t]);
                }
            } else {
                self.tasks.get_mut(&t).unwrap().1 = Some(r);
                if why == tasks::STOP_PREEMPTED {
                    self.store.data_mut().preemptions += 1;
                    if self.rd(t + PREEMPT_COUNT) != 0 {
                        self.store.data_mut().runq.push_front(t);
                    } else {
                        self.store.data_mut().runq.push_back(t);
                    }
                } else if state == 0 {
                    self.store.data_mut().runq.push_back(t);
                }
            }
        }
    }

    fn run_syscall(&mut self, comm: &str, func: &str, args: &[i32], has_ret: bool) -> i32 {
        let t = self.fork(comm, func, args, has_ret);
        self.run_until(|k| k.finished.contains(&t));
        assert!(self.finished.contains(&t), "{comm} did not finish");
        let ret = self.rd(t + REGS + 36);
        self.finished.retain(|&f| f != t);
        self.tasks.remove(&t);
        self.call("task_exit", &[t, 0]);
        ret
    }

    fn read_file(&mut self, path: &str) -> String {
        let buf = self.call("klp_user_buffer", &[]);
        self.write(buf, path.as_bytes());
        let fd = self.call("sys_open", &[buf, path.len() as i32, 0]);
        assert!(fd >= 0, "open {path}: {fd}");
        let n = self.call("sys_read", &[fd, buf, 4096]);
        self.call("sys_close", &[fd]);
        let mut out = vec![0; n.max(0) as usize];
        self.memory
            .read(&self.store, buf as usize, &mut out)
            .unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }

    fn exists(&mut self, path: &str) -> bool {
        let buf = self.call("klp_user_buffer", &[]);
        self.write(buf, path.as_bytes());
        let fd = self.call("sys_open", &[buf, path.len() as i32, 0]);
        if fd >= 0 {
            self.call("sys_close", &[fd]);
        }
        fd >= 0
    }

    fn dmesg(&mut self) -> String {
        let buf = self.call("klp_user_buffer", &[]);
        let n = self.call("sys_syslog", &[3, buf, 60000]);
        let mut out = vec![0; n.max(0) as usize];
        self.memory
            .read(&self.store, buf as usize, &mut out)
            .unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }
}

fn scenario(budget: i32) {
    let mut k = Kernel::new(budget);
    let log = k.dmesg();
    assert!(log.contains("sched: tasks run by the host"), "{log}");
    assert!(
        k.read_file("/proc/3/stat")
            .starts_with("3 (kworker/0:0) I 2 ")
    );

    // A user task sleeps 100 ms in msleep: Schedule, yield, TimerNext, run_timers, Wake.
    let t0 = k.store.data().clock_ns;
    assert_eq!(k.run_syscall("sleeper", "msleep", &[100], false), 0);
    assert!(k.store.data().clock_ns - t0 >= 100_000_000);

    // getpid in a task.
    let t = k.fork("getpid", "__x64_sys_getpid", &[], true);
    let tpid = k.rd(t);
    k.run_until(|k| k.finished.contains(&t));
    assert_eq!(k.rd(t + REGS + 36), tpid);
    k.finished.retain(|&f| f != t);
    k.tasks.remove(&t);
    k.call("task_exit", &[t, 0]);

    // A kthread (msleep_interruptible(300) as its function) that a user task stops.
    let buf = k.call("klp_user_buffer", &[]) + 1000;
    k.write(buf, b"kt_sleeper\0");
    let kt = k.run_syscall(
        "starter",
        "kthread_run",
        &[k.slot("msleep_interruptible"), 300, buf],
        true,
    );
    assert_ne!(kt, 0);
    let ktpid = k.rd(kt);
    assert_eq!(k.rd(kt + STATE), 0, "kthread_run: runnable");
    k.run_until(|k| k.rd(kt + STATE) == 1);
    let stat = k.read_file(&format!("/proc/{ktpid}/stat"));
    assert!(
        stat.starts_with(&format!("{ktpid} (kt_sleeper) S 2 ")),
        "{stat}"
    );
    let t0 = k.store.data().clock_ns;
    let ret = k.run_syscall("stopper", "kthread_stop", &[kt], true);
    assert_eq!(ret, 0, "msleep_interruptible's result");
    assert!(k.store.data().clock_ns - t0 >= 250_000_000);
    assert!(
        !k.exists(&format!("/proc/{ktpid}")),
        "the stopped kthread is freed"
    );

    // A work item (kfree of a static address: logs) run by kworker/0:0.
    let work = k.call("klp_user_buffer", &[]) + 2048;
    let zero = [0u8; 16];
    k.write(work, &zero);
    let kfree = k.slot("kfree");
    k.wr(work + 12, kfree);
    let queued = k.run_syscall("queuer", "schedule_work", &[work], true);
    assert_eq!(queued, 1);
    k.run_until(|_| false);
    let log = k.dmesg();
    assert!(log.contains("kfree: invalid pointer"), "{log}");
    let stat = k.read_file("/proc/3/stat");
    assert!(stat.starts_with("3 (kworker/0:0) I "), "{stat}");

    // A delayed work item (struct delayed_work: work 16 bytes, then the timer, 8-aligned):
    // flushed before its timer (a barrier and a completion across tasks), run by its timer,
    // and cancelled.
    let kfrees = |k: &mut Kernel| k.dmesg().matches("kfree: invalid pointer").count();
    let dw = (k.call("klp_user_buffer", &[]) + 4096 + 7) & !7;
    k.write(dw, &[0; 40]);
    k.wr(dw + 12, kfree);
    let before = kfrees(&mut k);
    let t0 = k.store.data().clock_ns;
    assert_eq!(
        k.run_syscall("dq", "schedule_delayed_work", &[dw, 1000], true),
        1
    );
    assert_eq!(
        k.run_syscall("flusher", "flush_delayed_work", &[dw], true),
        1
    );
    assert_eq!(kfrees(&mut k), before + 1);
    assert!(
        k.store.data().clock_ns - t0 < 1_000_000_000,
        "flushed before the timer"
    );
    assert_eq!(
        k.run_syscall("dq", "schedule_delayed_work", &[dw, 5], true),
        1
    );
    k.run_until(|_| false);
    assert_eq!(kfrees(&mut k), before + 2);
    assert!(
        k.store.data().clock_ns - t0 >= 20_000_000,
        "ran by its timer"
    );
    assert_eq!(
        k.run_syscall("dq", "schedule_delayed_work", &[dw, 100], true),
        1
    );
    assert_eq!(
        k.run_syscall("canceller", "cancel_delayed_work_sync", &[dw], true),
        1
    );
    k.run_until(|_| false);
    assert_eq!(kfrees(&mut k), before + 2, "a cancelled item does not run");
    let d = k.store.data();
    eprintln!(
        "budget {budget}: {} schedules, {} wakes, {} preemptions, clock {} ms",
        d.schedules,
        d.wakes,
        d.preemptions,
        d.clock_ns / 1_000_000
    );
    if budget < 100 {
        assert!(d.preemptions > 0);
    }
}

#[test]
fn guest_tasks_sleep_wake_kthreads_and_work() {
    scenario(i32::MAX);
}

#[test]
fn guest_tasks_survive_preemption_everywhere() {
    scenario(37);
}
