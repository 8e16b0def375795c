//! Tasks: the kernel's `task_struct`, `init_task`, `current`, the task table and pid numbers.
//!
//! A task is a [`Task`]: klp-abi's [`TaskStruct`] (what the host and modules see) followed by
//! the kernel's private fields. Every task has a slot in the task table; the slot number is
//! the task slot the host runs it in. `init_task` (pid 0, `swapper/0`) is static, in slot 0,
//! and is `current` whenever the host calls the kernel outside a task.

use klp_abi::TaskStruct;
use klp_abi::task::{
    KLP_TRANSITION_IDLE, MAX_TASKS, PF_IDLE, PF_KTHREAD, TASK_COMM_LEN, TASK_RUNNING,
};

use crate::kthread::Kthread;
use crate::preempt::preempt_disable;
use crate::sync::Global;

notrace!(klp_current_task_ptr, klp_init_task);

/// `PID_MAX_DEFAULT`: pids are below this.
const PID_MAX: i32 = 0x8000;
/// `RESERVED_PIDS`: after wrapping, pids start again here.
const RESERVED_PIDS: i32 = 300;
/// `STACK_END_MAGIC`, written at the bottom of every task's stack.
pub const STACK_END_MAGIC: u32 = 0x57ac_6e9d;

/// A task: the shared `task_struct` and the kernel's private fields.
#[repr(C)]
pub struct Task {
    /// What the host and modules see; first, so a `*mut TaskStruct` is a `*mut Task`.
    pub ts: TaskStruct,
    /// References (`get_task_struct`): the task's own, dropped by the host when the task
    /// has finished (`put_task_struct`, `task_exit`), and any taken by others.
    pub usage: i32,
    /// The kmalloc block holding the stack (0 for `init_task`, which has none of its own).
    pub stack_block: usize,
    /// When it was created, in nanoseconds since boot.
    pub start_time: u64,
    /// A kthread's function, its result and its exit completion.
    pub kthread: Kthread,
}

const fn comm(name: &[u8]) -> [u8; TASK_COMM_LEN] {
    let mut out = [0; TASK_COMM_LEN];
    let mut i = 0;
    while i < name.len() && i < TASK_COMM_LEN - 1 {
        out[i] = name[i];
        i += 1;
    }
    out
}

impl Task {
    /// A task record with nothing but its name and flags.
    pub const fn new(name: &[u8], flags: u32) -> Self {
        Task {
            ts: TaskStruct {
                pid: 0,
                state: TASK_RUNNING,
                flags,
                patch_state: KLP_TRANSITION_IDLE,
                ti_flags: 0,
                slot: 0,
                stack: 0,
                entry: 0,
                comm: comm(name),
                regs: klp_abi::PtRegs {
                    func: 0,
                    nargs: 0,
                    has_ret: 0,
                    args: [0; 6],
                    ret: 0,
                },
                exit_code: 0,
                ppid: 0,
                tgid: 0,
                preempt_count: 0,
            },
            usage: 1,
            stack_block: 0,
            start_time: 0,
            kthread: Kthread::new(),
        }
    }

    /// Its name, up to the first NUL.
    pub fn comm(&self) -> &[u8] {
        let comm = &self.ts.comm;
        &comm[..comm.iter().position(|&b| b == 0).unwrap_or(comm.len())]
    }
}

/// The idle task, pid 0: `current` outside any task (boot, timers, host calls).
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
pub static init_task: Global<Task> = Global::new(Task::new(b"swapper/0", PF_IDLE | PF_KTHREAD));

/// The running task, `current_task` (x86's per-CPU variable). The host writes it before
/// every resume of a task and every top-level call.
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
pub static current_task: Global<*mut TaskStruct> = Global::new(init_task.as_ptr().cast());

/// The task table: slot `n` holds the task the host runs in task slot `n`.
static TASKS: Global<[*mut Task; MAX_TASKS as usize]> =
    Global::new([core::ptr::null_mut(); MAX_TASKS as usize]);
/// The last pid handed out.
static LAST_PID: Global<i32> = Global::new(0);

/// The address of `current_task`, which the host writes.
#[unsafe(no_mangle)]
pub extern "C" fn klp_current_task_ptr() -> i32 {
    current_task.as_ptr() as i32
}

/// The address of `init_task`.
#[unsafe(no_mangle)]
pub extern "C" fn klp_init_task() -> i32 {
    init_task.as_ptr() as i32
}

/// `current`.
pub fn current() -> *mut Task {
    // SAFETY: a word read.
    unsafe { *current_task.get() }.cast()
}

/// `get_current()`: the running task.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn get_current() -> *mut TaskStruct {
    current().cast()
}

/// The pid and name a report (a panic) names: `current`'s; outside tasks the kernel works
/// for the shell, `init` (pid 1, `sh`: "Run /bin/sh as init process").
pub fn task_for_report() -> (i32, &'static [u8]) {
    let task = match current() {
        t if core::ptr::eq(t, idle_task()) => find_task_by_vpid(1).unwrap_or(t),
        t => t,
    };
    // SAFETY: tasks in the table (and `init_task`) are live.
    let task = unsafe { &*task };
    (task.ts.pid, task.comm())
}

/// The idle task.
pub fn idle_task() -> *mut Task {
    init_task.as_ptr()
}

fn tasks() -> &'static mut [*mut Task; MAX_TASKS as usize] {
    // SAFETY: borrows are short and make no outside calls.
    unsafe { TASKS.get() }
}

/// Puts `init_task` into slot 0 (at boot).
pub fn sched_init() {
    let idle = idle_task();
    // SAFETY: boot, nothing else runs.
    unsafe { (*idle).start_time = 0 };
    tasks()[0] = idle;
}

/// The task with `pid`, `find_task_by_vpid`.
pub fn find_task_by_vpid(pid: i32) -> Option<*mut Task> {
    tasks()
        .iter()
        .copied()
        // SAFETY: tasks in the table are live.
        .find(|&t| !t.is_null() && unsafe { (*t).ts.pid } == pid)
}

/// `alloc_pid`: the next free pid after the last one, wrapping to `RESERVED_PIDS`.
fn alloc_pid() -> Option<i32> {
    // SAFETY: a short access.
    let last = unsafe { LAST_PID.get() };
    let mut pid = *last;
    for _ in 0..PID_MAX {
        pid += 1;
        if pid >= PID_MAX {
            pid = RESERVED_PIDS;
        }
        if find_task_by_vpid(pid).is_none() {
            *last = pid;
            return Some(pid);
        }
    }
    None
}

/// Gives `task` a pid and a free slot and puts it into the table.
///
/// # Errors
///
/// `EAGAIN` when every slot or pid is taken (Linux's fork fails with it too).
pub fn attach_pid(task: *mut Task) -> Result<(), i32> {
    let _preempt = preempt_disable();
    let slot = tasks()
        .iter()
        .position(|t| t.is_null())
        .ok_or(klp_abi::errno::EAGAIN)?;
    let pid = alloc_pid().ok_or(klp_abi::errno::EAGAIN)?;
    // SAFETY: the caller's new task, not shared yet.
    unsafe {
        (*task).ts.pid = pid;
        (*task).ts.tgid = pid;
        (*task).ts.slot = slot as i32;
    }
    tasks()[slot] = task;
    Ok(())
}

/// Takes `task` out of the table (`detach_pid`); its slot and pid are free again.
pub fn detach_pid(task: *mut Task) {
    let _preempt = preempt_disable();
    for t in tasks().iter_mut() {
        if core::ptr::eq(*t, task) {
            *t = core::ptr::null_mut();
        }
    }
}
