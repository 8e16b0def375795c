//! test_klp_sleeper: `nr_tasks` kthreads that sleep interruptibly for an hour at a time in
//! `sleeper_func`, the function test_klp_sleeper_patch replaces: a transition waits for them
//! until it signals them (`klp_send_signals` wakes a kthread in `TASK_INTERRUPTIBLE`).
#![no_std]

use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use klp_guest::task::{self, HZ, TaskStruct};
use klp_guest::{errno, module_param, pr_err, pr_info};

module_param!(nr_tasks: i32 = 1, 0o444);

/// The most tasks it starts.
const MAX_TASKS: usize = 128;

/// How long `sleeper_func` sleeps unless woken: an hour, in jiffies.
const SLEEP_JIFFIES: i32 = 3600 * HZ as i32;

/// The tasks started, the first `NTASKS` of them.
static TASKS: [AtomicPtr<TaskStruct>; MAX_TASKS] =
    [const { AtomicPtr::new(ptr::null_mut()) }; MAX_TASKS];
static NTASKS: AtomicUsize = AtomicUsize::new(0);
/// Whether the task of the same index has said it sleeps.
static ANNOUNCED: [AtomicBool; MAX_TASKS] = [const { AtomicBool::new(false) }; MAX_TASKS];

/// The tasks started so far.
fn tasks() -> impl Iterator<Item = *mut TaskStruct> {
    TASKS[..NTASKS.load(Ordering::Relaxed)]
        .iter()
        .map(|t| t.load(Ordering::Relaxed))
}

/// The function the patch replaces: says so the first time each task comes here, then sleeps
/// interruptibly for an hour; returns early when woken (a signal, `kthread_stop`). Kept out of
/// line and named so that a patch finds it in object `test_klp_sleeper`.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn sleeper_func() {
    let me = task::current();
    if let Some(i) = tasks().position(|t| t == me)
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

/// `klp_sleeper/<i>`, NUL-terminated, in `out`.
fn task_name(i: usize, out: &mut [u8; 32]) {
    const PREFIX: &[u8] = b"klp_sleeper/";
    out[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 10];
    let mut n = i;
    let mut count = 0;
    loop {
        digits[count] = b'0' + (n % 10) as u8;
        count += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for (k, d) in digits[..count].iter().rev().enumerate() {
        out[PREFIX.len() + k] = *d;
    }
    out[PREFIX.len() + count] = 0;
}

/// Stops every task started.
fn stop_all() {
    for k in tasks() {
        // SAFETY: a task we started, stopped once.
        unsafe { task::kthread_stop(k) };
    }
    NTASKS.store(0, Ordering::Relaxed);
}

/// Starts `nr_tasks` kthreads.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    let n = nr_tasks.get();
    if n < 1 || n as usize > MAX_TASKS {
        pr_err!("test_klp_sleeper: nr_tasks must be 1 to 128");
        return -errno::EINVAL;
    }
    for (i, slot) in TASKS.iter().enumerate().take(n as usize) {
        let mut name = [0u8; 32];
        task_name(i, &mut name);
        // SAFETY: a thread function of the right type; the name is NUL-terminated.
        let k = unsafe {
            task::sys::kthread_run(sleeper_thread, ptr::null_mut(), name.as_ptr().cast())
        };
        if k.is_null() {
            stop_all();
            return -errno::ENOMEM;
        }
        slot.store(k, Ordering::Relaxed);
        NTASKS.store(i + 1, Ordering::Relaxed);
    }
    0
}

/// Stops the tasks (`kthread_stop` wakes each and waits for it to return).
#[unsafe(no_mangle)]
pub extern "C" fn cleanup_module() {
    stop_all();
}
