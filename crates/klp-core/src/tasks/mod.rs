//! Tasks, the host's half (kernel/sched on the host): who runs next, the clock, task calls.
//!
//! The kernel owns its tasks' data (`task_struct`, wait queues, timers, workqueues); the host
//! owns the run queue, the clock and the choice of the next task, which it makes with a seeded
//! generator so that an interleaving can be replayed (`klp run --sched-seed N`). It runs a task
//! with the instrumentation pass's `__klp_task_spawn`/`__klp_task_resume` (docs/ABI.md "Tasks")
//! and learns of state changes through the kernel's host calls (`hostcall.rs`).
//!
//! Time is virtual: the clock advances by the work tasks do (the loop headers they pass) and,
//! when no task can run, jumps to the next timer, as QEMU's `-icount sleep=off` does. A run is
//! therefore the same for the same seed, and `sleep 16` takes 16 s of kernel time, not of yours.

mod hostcall;
pub mod procfs;
mod run;

pub use hostcall::{schedule, task_new, timer_next, wake};
pub(crate) use run::init;
pub use run::{call, call_slot, run_for, with_command};

use klp_abi::task_struct as ts;
use std::collections::BTreeMap;

/// Whether a frame's raw name is the tasks' machinery (the instrumentation pass's task entry,
/// resume and preemption functions), not kernel code: call traces leave it out, as Linux's
/// end at the entry code.
pub fn is_machinery(raw: &str) -> bool {
    use klp_passes::instrument::tasks::{ENTRY_NAME, PREEMPT_NAME, RESUME};
    [ENTRY_NAME, PREEMPT_NAME, RESUME].contains(&raw)
}

/// A task's pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pid(i32);

impl Pid {
    /// The number.
    pub fn get(self) -> i32 {
        self.0
    }
}

/// Virtual nanoseconds per loop header a task passes.
pub const NS_PER_UNIT: u64 = 100;
/// The preemption budget of one run of a task: one jiffy (4 ms) of work.
pub const SLICE: i32 = (NS_PER_JIFFY / NS_PER_UNIT) as i32;
/// What a context switch or a call into the kernel costs on the virtual clock.
pub const SWITCH_NS: u64 = 1_000;
/// Nanoseconds per jiffy (HZ = 250).
pub const NS_PER_JIFFY: u64 = 1_000_000_000 / klp_abi::task::HZ;

/// What kind of task it is, from its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A process: a shell command making syscalls.
    User,
    /// A kernel thread.
    Kthread,
    /// A workqueue worker (`kworker`): idle without frames between work items.
    Worker,
}

/// Whether a task holds frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frames {
    /// None: it starts from its entry when it next runs.
    None,
    /// Suspended: it goes on with this stack pointer.
    Suspended(u32),
    /// It is running now.
    Running,
}

/// The host's record of one task.
#[derive(Debug, Clone)]
pub struct Task {
    pid: Pid,
    addr: u32,
    slot: u32,
    kind: Kind,
    comm: String,
    frames: Frames,
    runnable: bool,
    /// Its kernel stack as recorded when it last went to sleep, innermost first: raw function
    /// names. Empty when it holds no frames; `None` when it was preempted (not at a known
    /// point: no reliable stack).
    stack: Option<Vec<Option<String>>>,
    /// Virtual time it last started running.
    ran_at: u64,
    /// It trapped (an oops killed it): it never runs again; a command's calls after that (its
    /// exit path) run directly, as the dying task.
    dead: bool,
    /// It was killed while suspended (hung): its frames and task_struct stay for ever.
    zombie: bool,
}

impl Task {
    /// Its pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Address of its `task_struct` in kernel memory.
    pub fn addr(&self) -> u32 {
        self.addr
    }

    /// Its name.
    pub fn comm(&self) -> &str {
        &self.comm
    }

    /// Its kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Whether it holds frames, and where.
    pub fn frames(&self) -> Frames {
        self.frames
    }

    /// Whether it waits for the CPU (rather than sleeping).
    pub fn runnable(&self) -> bool {
        self.runnable
    }

    /// The stack recorded at its last `schedule()`, whatever it does now.
    pub fn recorded_stack(&self) -> Option<&[Option<String>]> {
        self.stack.as_deref()
    }

    /// Its kernel stack, innermost first, as recorded at its last sleep: empty when it holds no
    /// frames, `None` when it is not at a point where the stack is known (running, preempted).
    pub fn stack(&self) -> Option<&[Option<String>]> {
        match self.frames {
            Frames::None => Some(&[]),
            Frames::Running => None,
            Frames::Suspended(_) => self.stack.as_deref(),
        }
    }
}

/// Kernel addresses the host needs, found at boot.
#[derive(Debug, Clone, Copy, Default)]
struct KernelAddrs {
    /// The word `current_task`.
    current: u32,
    /// `init_task`: current outside every task.
    init_task: u32,
    /// `klp_target_state`: where tasks switch at their next exit to user mode.
    target_state: u32,
}

/// A host timer: work the core itself does at a virtual time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HostTimer {
    /// `klp_transition_work`: livepatch retries its transition.
    TransitionWork,
}

/// Every task and the scheduler's state.
#[derive(Debug)]
pub struct Tasks {
    addrs: Option<KernelAddrs>,
    tasks: BTreeMap<Pid, Task>,
    rng: fastrand::Rng,
    seed: u64,
    now_ns: u64,
    /// The earliest kernel timer, in jiffies.
    next_timer: Option<u64>,
    host_timers: BTreeMap<HostTimer, u64>,
    /// The task running now.
    running: Option<Pid>,
    /// A task preempted with preemption off (`preempt_count` > 0): it runs next, before any
    /// other task (it holds kernel state another task could reach).
    pinned: Option<Pid>,
    /// The task of the shell command running now.
    command: Option<Pid>,
    /// Host calls in progress (1 = a task's kernel code called the host).
    pub(crate) host_depth: u32,
    /// The user interrupted the command (Ctrl-C): it dies on its way back to user mode.
    sigint: bool,
    /// The scheduler loop is running: a call now is the kernel's own work (reaping a thread,
    /// reporting an oops), never a syscall of the command.
    scheduling: bool,
}

impl Default for Tasks {
    fn default() -> Self {
        Tasks::new(1)
    }
}

impl Tasks {
    /// No task yet; the scheduler's generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Tasks {
            addrs: None,
            tasks: BTreeMap::new(),
            rng: fastrand::Rng::with_seed(seed),
            seed,
            now_ns: 0,
            next_timer: None,
            host_timers: BTreeMap::new(),
            running: None,
            pinned: None,
            command: None,
            host_depth: 0,
            sigint: false,
            scheduling: false,
        }
    }

    /// Reseeds the scheduler (`klp run --sched-seed N`).
    pub fn set_seed(&mut self, seed: u64) {
        self.seed = seed;
        self.rng = fastrand::Rng::with_seed(seed);
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Virtual nanoseconds since boot: what the kernel's `klp.clock_ns` reads.
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// Every task, by pid.
    pub fn iter(&self) -> impl Iterator<Item = &Task> {
        self.tasks.values()
    }

    /// A task.
    pub fn get(&self, pid: Pid) -> Option<&Task> {
        self.tasks.get(&pid)
    }

    /// A task by pid number.
    pub fn by_pid(&self, pid: i32) -> Option<&Task> {
        self.tasks.get(&Pid(pid))
    }

    /// The task running now, if any.
    pub fn running(&self) -> Option<Pid> {
        self.running
    }

    /// The pid of the shell command running now.
    pub fn command_pid(&self) -> Option<i32> {
        self.command.map(Pid::get)
    }

    /// Whether any task holds frames: the kernel cannot move to a fresh store then.
    pub fn holding_frames(&self) -> bool {
        self.tasks.values().any(|t| t.frames != Frames::None)
    }

    /// Arms (or moves) a host timer to `at_ns`.
    pub fn arm(&mut self, timer: HostTimer, at_ns: u64) {
        self.host_timers.insert(timer, at_ns);
    }

    /// Disarms a host timer.
    pub fn disarm(&mut self, timer: HostTimer) {
        self.host_timers.remove(&timer);
    }

    fn by_addr(&self, addr: u32) -> Option<Pid> {
        self.tasks.values().find(|t| t.addr == addr).map(|t| t.pid)
    }

    /// Address of `init_task` (the idle task), once the kernel has booted with tasks.
    pub fn init_task(&self) -> Option<u32> {
        self.addrs.map(|a| a.init_task)
    }

    /// Address of the kernel's `klp_target_state`, once it has booted with tasks.
    pub fn target_state_addr(&self) -> Option<u32> {
        self.addrs.map(|a| a.target_state)
    }

    /// Makes a sleeping task runnable (the kernel's state word was set to running by the
    /// caller).
    pub fn make_runnable(&mut self, pid: Pid) {
        if let Some(t) = self.tasks.get_mut(&pid) {
            t.runnable = true;
        }
    }

    /// The address of the `patch_state` word of every task, with its pid: the transition
    /// writes them.
    pub fn patch_state_addr(&self, pid: Pid) -> Option<u32> {
        self.tasks.get(&pid).map(|t| t.addr + ts::PATCH_STATE)
    }
}
