//! test_klp_sleeper: `nr_tasks` kthreads that sleep interruptibly for an hour at a time in
//! `sleeper_func`, the function test_klp_sleeper_patch replaces: a transition waits for them
//! until it signals them (`klp_send_signals` wakes a kthread in `TASK_INTERRUPTIBLE`).
#![no_std]

use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering};

use klp_guest::kthreads::{KthreadName, Kthreads};
use klp_guest::task::{self, HZ};
use klp_guest::{errno, module_param, pr_err, pr_info};

module_param!(nr_tasks: i32 = 1, 0o444);

/// The most tasks it starts.
const MAX_TASKS: usize = 128;

/// How long `sleeper_func` sleeps unless woken: an hour, in jiffies.
const SLEEP_JIFFIES: i32 = 3600 * HZ as i32;

/// The tasks started.
static TASKS: Kthreads<MAX_TASKS> = Kthreads::new();
/// Whether the task of the same index has said it sleeps.
static ANNOUNCED: [AtomicBool; MAX_TASKS] = [const { AtomicBool::new(false) }; MAX_TASKS];

/// The function the patch replaces: says so the first time each task comes here, then sleeps
/// interruptibly for an hour; returns early when woken (a signal, `kthread_stop`). Kept out of
/// line and named so that a patch finds it in object `test_klp_sleeper`.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn sleeper_func() {
    if let Some(i) = TASKS.index_of(task::current())
        && !ANNOUNCED[i].swap(true, Ordering::Relaxed)
    {
        pr_info!("test_klp_sleeper: sleeper_func: sleeping");
    }
    // SAFETY: no pointers; called from one of the module's kthreads.
    unsafe { task::sys::schedule_timeout_interruptible(SLEEP_JIFFIES) };
}

/// Each kthread: sleep in `sleeper_func`, then yield (a switch point for a transition), until
/// rmmod stops it.
unsafe extern "C" fn sleeper_thread(_data: *mut c_void) -> i32 {
    while !task::kthread_should_stop() {
        sleeper_func();
        task::cond_resched();
    }
    0
}

/// Starts `nr_tasks` kthreads.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    let n = nr_tasks.get();
    if n < 1 || n as usize > MAX_TASKS {
        pr_err!("test_klp_sleeper: nr_tasks must be 1 to 128");
        return -errno::EINVAL;
    }
    for i in 0..n as usize {
        let name = KthreadName::new("klp_sleeper/", i);
        // SAFETY: `sleeper_thread` ignores its data.
        if let Err(err) = unsafe { TASKS.start(sleeper_thread, ptr::null_mut(), &name) } {
            TASKS.stop_all();
            return err;
        }
    }
    0
}

/// Stops the tasks (`kthread_stop` wakes each and waits for it to return).
#[unsafe(no_mangle)]
pub extern "C" fn cleanup_module() {
    TASKS.stop_all();
}
