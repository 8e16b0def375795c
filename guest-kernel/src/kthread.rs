//! Kernel threads, `kernel/kthread.c`: `kthread_run`, `kthread_stop`, `kthread_should_stop`.
//!
//! A kthread is a task whose entry is [`kthread`]: it calls the thread function, stores its
//! result, completes `exited` and returns; the host then drops the task's own reference.

use core::ffi::{c_char, c_void};

use klp_abi::errno::EINTR;
use klp_abi::task::{PF_KTHREAD, TASK_RUNNING, TASK_UNINTERRUPTIBLE};
use klp_abi::{Completion, TaskStruct};

use crate::completion::{complete_all, wait_for_completion};
use crate::exit::{do_task_dead, get_task_struct, put_task_struct};
use crate::fork::{KTHREADD_PID, copy_process, wake_up_new_task};
use crate::sched::core::wake_up_process;
use crate::sched::task::{Task, current};

/// `KTHREAD_SHOULD_STOP`: `kthread_stop` was called.
const KTHREAD_SHOULD_STOP: u32 = 1 << 0;

/// A kthread's function: `int (*threadfn)(void *data)`.
pub type ThreadFn = unsafe extern "C" fn(data: *mut c_void) -> i32;

/// `struct kthread`: the kthread part of a task.
#[repr(C)]
pub struct Kthread {
    threadfn: Option<ThreadFn>,
    data: *mut c_void,
    flags: u32,
    result: i32,
    /// Completed when the thread function returned.
    exited: Completion,
}

impl Kthread {
    /// Not a kthread (yet).
    pub const fn new() -> Self {
        Kthread {
            threadfn: None,
            data: core::ptr::null_mut(),
            flags: 0,
            result: 0,
            exited: Completion::new(),
        }
    }
}

fn to_kthread(task: *mut Task) -> *mut Kthread {
    // SAFETY: a field pointer of a live task.
    unsafe { &raw mut (*task).kthread }
}

/// The entry of every kthread: runs the thread function unless the thread was stopped
/// before it ran, then exits with its result.
///
/// # Safety
///
/// `task` is the kthread the host runs, `current`.
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe extern "C" fn kthread(task: *mut TaskStruct) {
    let task: *mut Task = task.cast();
    let k = to_kthread(task);
    // SAFETY: the caller's contract.
    let ret = unsafe {
        match (*k).threadfn {
            Some(threadfn) if (*k).flags & KTHREAD_SHOULD_STOP == 0 => threadfn((*k).data),
            _ => -EINTR,
        }
    };
    kthread_exit(task, ret);
}

/// `kthread_exit()` without the `do_exit`: stores `result`, marks the task dead and wakes
/// `kthread_stop`. The entry then returns.
fn kthread_exit(task: *mut Task, result: i32) {
    let k = to_kthread(task);
    // SAFETY: a live kthread.
    unsafe { (*k).result = result };
    do_task_dead(task, result);
    // SAFETY: as above.
    complete_all(unsafe { (&raw mut (*k).exited) });
}

/// Copies a NUL-terminated name of at most `TASK_COMM_LEN - 1` bytes.
///
/// # Safety
///
/// `name` is NULL or points at a NUL-terminated string (only the bytes up to the NUL or the
/// 15th are read).
unsafe fn comm_from(name: *const c_char) -> ([u8; 16], usize) {
    let mut comm = [0; 16];
    let mut len = 0;
    if !name.is_null() {
        // SAFETY: the caller's contract.
        while len < 15 && unsafe { *name.add(len) } != 0 {
            comm[len] = unsafe { *name.add(len) } as u8;
            len += 1;
        }
    }
    (comm, len)
}

/// Creates a kthread running `threadfn(data)` in `state`.
fn kthread_create_state(
    threadfn: ThreadFn,
    data: *mut c_void,
    name: *const c_char,
    state: i32,
) -> *mut TaskStruct {
    // SAFETY: the caller's name.
    let (comm, len) = unsafe { comm_from(name) };
    let entry = kthread as unsafe extern "C" fn(*mut TaskStruct);
    let task = match copy_process(&comm[..len], PF_KTHREAD, entry, KTHREADD_PID) {
        Ok(task) => task,
        Err(_) => return core::ptr::null_mut(),
    };
    // SAFETY: the new task, not running yet.
    unsafe {
        let k = to_kthread(task);
        (*k).threadfn = Some(threadfn);
        (*k).data = data;
        (*task).ts.state = state;
    }
    match wake_up_new_task(task) {
        Ok(()) => task.cast(),
        Err(_) => core::ptr::null_mut(),
    }
}

/// `kthread_create()`: a kthread running `threadfn(data)` named `name` (NUL-terminated,
/// cut to 15 bytes), not started: `wake_up_process` starts it. NULL on failure (Linux
/// returns an `ERR_PTR`).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn kthread_create(
    threadfn: ThreadFn,
    data: *mut c_void,
    name: *const c_char,
) -> *mut TaskStruct {
    kthread_create_state(threadfn, data, name, TASK_UNINTERRUPTIBLE)
}

/// `kthread_run()`: as [`kthread_create`], started. NULL on failure.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn kthread_run(
    threadfn: ThreadFn,
    data: *mut c_void,
    name: *const c_char,
) -> *mut TaskStruct {
    kthread_create_state(threadfn, data, name, TASK_RUNNING)
}

/// `kthread_should_stop()`: 1 once `kthread_stop` was called for `current`.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn kthread_should_stop() -> i32 {
    let task = current();
    // SAFETY: `current` is live.
    unsafe {
        i32::from(
            (*task).ts.flags & PF_KTHREAD != 0
                && (*to_kthread(task)).flags & KTHREAD_SHOULD_STOP != 0,
        )
    }
}

/// `kthread_stop()`: tells `k` to stop, wakes it, waits until its function returned and
/// returns its result (`-EINTR` if it never ran). `k` must be a kthread that has not been
/// stopped yet; its task goes away afterwards.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn kthread_stop(k: *mut TaskStruct) -> i32 {
    let task: *mut Task = k.cast();
    // SAFETY: the caller's kthread, live until the reference below is dropped.
    unsafe {
        if task.is_null() || (*task).ts.flags & PF_KTHREAD == 0 {
            return -klp_abi::errno::EINVAL;
        }
        get_task_struct(k);
        let kthread = to_kthread(task);
        (*kthread).flags |= KTHREAD_SHOULD_STOP;
        wake_up_process(k);
        wait_for_completion(&raw mut (*kthread).exited);
        let ret = (*kthread).result;
        put_task_struct(k);
        ret
    }
}

/// `kthreadd` (pid 2): creates nothing (`kthread_create` makes its threads directly) and
/// sleeps when woken.
///
/// # Safety
///
/// The host's entry call.
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe extern "C" fn kthreadd(_task: *mut TaskStruct) {
    loop {
        crate::sched::core::set_current_state(klp_abi::task::TASK_INTERRUPTIBLE);
        crate::sched::core::schedule();
    }
}
