//! Ending tasks, `kernel/exit.c`: `task_exit` for the host, the task's references
//! (`get_task_struct`, `put_task_struct`) and freeing it.

use klp_abi::TaskStruct;
use klp_abi::task::{PF_EXITING, TASK_DEAD};

use crate::mm::kfree;
use crate::proc::base::proc_pid_unregister;
use crate::sched::task::{Task, detach_pid, idle_task};

/// `do_task_dead` without the final `schedule`: `task` has exited with `code`. Its entry
/// returns next, and the task holds no frames from then on.
pub fn do_task_dead(task: *mut Task, code: i32) {
    // SAFETY: a live task.
    unsafe {
        (*task).ts.exit_code = code;
        (*task).ts.flags |= PF_EXITING;
        (*task).ts.state = TASK_DEAD;
    }
}

/// Frees a task's memory (`free_task`): its stack, then the task.
///
/// # Safety
///
/// `task` is out of the task table and nobody refers to it any more.
pub unsafe fn free_task(task: *mut Task) {
    // SAFETY: the caller's contract.
    unsafe {
        kfree((*task).stack_block as *mut u8);
        kfree(task.cast());
    }
}

/// `release_task`: takes `task` out of the table and `/proc`, and frees it.
pub fn release_task(task: *mut Task) {
    // SAFETY: a live task from the table.
    let pid = unsafe { (*task).ts.pid };
    detach_pid(task);
    proc_pid_unregister(pid);
    // SAFETY: out of the table; its last reference is gone.
    unsafe { free_task(task) };
}

/// `get_task_struct()`: one more reference to `task`.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn get_task_struct(task: *mut TaskStruct) -> *mut TaskStruct {
    let t: *mut Task = task.cast();
    if !t.is_null() && !core::ptr::eq(t, idle_task()) {
        // SAFETY: the caller holds a reference, so the task is live.
        unsafe { (*t).usage += 1 };
    }
    task
}

/// `put_task_struct()`: drops a reference to `task`; the last one frees it. The host drops
/// the task's own reference once the task has finished (it holds no frames).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn put_task_struct(task: *mut TaskStruct) {
    let t: *mut Task = task.cast();
    if t.is_null() || core::ptr::eq(t, idle_task()) {
        return;
    }
    // SAFETY: the caller holds a reference, so the task is live.
    let usage = unsafe {
        (*t).usage -= 1;
        (*t).usage
    };
    if usage == 0 {
        release_task(t);
    } else if usage < 0 {
        pr_err!("put_task_struct: task {:#x} has no reference", t as usize);
    }
}

/// A user task ends (the host calls it between system calls, when the command is done):
/// `TASK_DEAD` with exit code `code`, and its own reference dropped.
#[unsafe(no_mangle)]
pub extern "C" fn task_exit(task: *mut TaskStruct, code: i32) {
    let t: *mut Task = task.cast();
    if t.is_null() || core::ptr::eq(t, idle_task()) {
        return;
    }
    do_task_dead(t, code);
    put_task_struct(task);
}
