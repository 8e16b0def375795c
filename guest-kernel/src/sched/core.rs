//! The scheduler's kernel side, `kernel/sched/core.c`: `schedule`, `try_to_wake_up`, task state.
//!
//! The host owns the run queue and picks who runs next; the kernel tells it what changed
//! (`HostOp::Schedule`, `HostOp::Wake`) and suspends the running task with `klp.yield`.

use klp_abi::HostOp;
use klp_abi::TaskStruct;
use klp_abi::task::{TASK_INTERRUPTIBLE, TASK_NORMAL, TASK_RUNNING, TASK_WAKEKILL, TIF_SIGPENDING};

use super::task::{STACK_END_MAGIC, Task, current};
use crate::host::{self, hostcall};
use crate::sync::Global;
use crate::timer;

/// Whether the host runs tasks: its `TaskNew` answers something else than `-ENOSYS`.
static TASKS_SUPPORTED: Global<bool> = Global::new(false);

/// Records whether the host runs tasks (from the first `TaskNew`).
pub fn set_tasks_supported(supported: bool) {
    // SAFETY: a short access.
    unsafe { *TASKS_SUPPORTED.get() = supported };
}

/// Whether the host runs tasks.
pub fn tasks_supported() -> bool {
    // SAFETY: a short read.
    unsafe { *TASKS_SUPPORTED.get() }
}

/// `task_stack_end_corrupted`: the magic at the bottom of a task's stack was overwritten.
fn task_stack_end_corrupted(task: *mut Task) -> bool {
    // SAFETY: a live task; its stack, when it has one, is THREAD_SIZE bytes at `stack`.
    unsafe {
        let stack = (*task).ts.stack as usize;
        stack != 0 && (stack as *const u32).read() != STACK_END_MAGIC
    }
}

/// Checks the stack of the task that gives up the CPU, `schedule_debug`.
fn schedule_debug(prev: *mut Task) {
    if task_stack_end_corrupted(prev) {
        let msg = "corrupted stack end detected inside scheduler";
        // SAFETY: a live string; panic does not return.
        unsafe { crate::panic::panic(msg.as_ptr(), msg.len()) }
    }
}

/// `signal_pending_state`: whether a signal ends a sleep in `state`.
pub fn signal_pending_state(state: i32, task: *mut Task) -> bool {
    if state & (TASK_INTERRUPTIBLE | TASK_WAKEKILL) == 0 {
        return false;
    }
    // SAFETY: a live task.
    unsafe { (*task).ts.ti_flags & TIF_SIGPENDING != 0 }
}

/// Asks the host to switch away from `current`; returns whether it did (the task ran again
/// since). When it cannot sleep, a host without tasks has not run the timers: the kernel
/// runs the expired ones itself, so that sleeps with a timeout still end.
fn __schedule() -> bool {
    let prev = current();
    schedule_debug(prev);
    if hostcall(HostOp::Schedule, 0, 0, 0) == 0 {
        // Sleeping lets go of the preempt count (see `crate::preempt`): the others may run.
        // SAFETY: `current` is live.
        let preempt_count = unsafe { core::mem::replace(&mut (*prev).ts.preempt_count, 0) };
        host::yield_cpu();
        // SAFETY: as above.
        unsafe { (*prev).ts.preempt_count = preempt_count };
        true
    } else {
        if !tasks_supported() {
            timer::run_timers();
        }
        false
    }
}

/// `schedule()`: gives up the CPU. A task that set itself sleeping stays off the CPU until
/// woken; when the host cannot switch tasks here (no task support, not in a task) it
/// returns at once, as after a spurious wakeup, and the caller re-checks its condition.
/// `current` is `TASK_RUNNING` afterwards.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn schedule() {
    let prev = current();
    // SAFETY: `current` is live.
    unsafe {
        if signal_pending_state((*prev).ts.state, prev) {
            (*prev).ts.state = TASK_RUNNING;
        }
    }
    __schedule();
    // SAFETY: as above.
    unsafe { (*prev).ts.state = TASK_RUNNING };
}

/// `cond_resched()`: lets another runnable task run; returns 1 if one did.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn cond_resched() -> i32 {
    let prev = current();
    // SAFETY: `current` is live.
    if unsafe { (*prev).ts.state } != TASK_RUNNING {
        return 0;
    }
    i32::from(__schedule())
}

/// `try_to_wake_up`: if `p` sleeps in one of `state`, makes it runnable and tells the host.
/// Returns 1 if it woke it.
pub fn try_to_wake_up(p: *mut Task, state: i32) -> i32 {
    if p.is_null() {
        return 0;
    }
    // SAFETY: callers pass live tasks.
    unsafe {
        if (*p).ts.state & state == 0 {
            return 0;
        }
        (*p).ts.state = TASK_RUNNING;
    }
    if !core::ptr::eq(p, current()) {
        hostcall(HostOp::Wake, p as i32, 0, 0);
    }
    1
}

/// `wake_up_process()`: wakes `p` if it sleeps; returns 1 if it did, 0 if it was running.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn wake_up_process(p: *mut TaskStruct) -> i32 {
    try_to_wake_up(p.cast(), TASK_NORMAL)
}

/// `wake_up_state()`: wakes `p` if it sleeps in one of `state`.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn wake_up_state(p: *mut TaskStruct, state: u32) -> i32 {
    try_to_wake_up(p.cast(), state as i32)
}

/// `set_current_state()`: the state `current` sleeps in at its next `schedule()`.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn set_current_state(state: i32) {
    // SAFETY: `current` is live.
    unsafe { (*current()).ts.state = state };
}

/// `signal_pending()`: whether `p` has a signal pending (`TIF_SIGPENDING`). 1 or 0.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn signal_pending(p: *mut TaskStruct) -> i32 {
    if p.is_null() {
        return 0;
    }
    // SAFETY: callers pass live tasks.
    i32::from(unsafe { (*p).ti_flags } & TIF_SIGPENDING != 0)
}
