//! Completions, `kernel/sched/completion.c`: `complete`, `wait_for_completion` and friends.

use klp_abi::errno::ERESTARTSYS;
use klp_abi::task::{
    MAX_SCHEDULE_TIMEOUT, TASK_INTERRUPTIBLE, TASK_KILLABLE, TASK_NORMAL, TASK_RUNNING,
    TASK_UNINTERRUPTIBLE, WQ_FLAG_EXCLUSIVE,
};
use klp_abi::{Completion, WaitQueueEntry};

use crate::sched::core::{set_current_state, signal_pending_state};
use crate::sched::task::current;
use crate::sched::timeout::schedule_timeout;
use crate::wait::{__wake_up, add_wait_queue_exclusive, init_wait_entry, remove_wait_queue};

fn done_of(x: *mut Completion) -> *mut u32 {
    // SAFETY: a field pointer of the caller's completion.
    unsafe { (*x).done.get() }
}

/// `init_completion()`: not done, nobody waiting.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn init_completion(x: *mut Completion) {
    // SAFETY: the caller's completion.
    unsafe { x.write(Completion::new()) };
}

/// `reinit_completion()`: not done again (the waiters stay).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn reinit_completion(x: *mut Completion) {
    // SAFETY: the caller's completion.
    unsafe { *done_of(x) = 0 };
}

/// `complete()`: one more completion; wakes one waiter.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn complete(x: *mut Completion) {
    // SAFETY: the caller's completion.
    unsafe {
        let done = done_of(x);
        *done = (*done).saturating_add(1);
        __wake_up(
            (*x).wait.as_ptr(),
            TASK_NORMAL as u32,
            1,
            core::ptr::null_mut(),
        );
    }
}

/// `complete_all()`: done for good; wakes every waiter.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn complete_all(x: *mut Completion) {
    // SAFETY: the caller's completion.
    unsafe {
        *done_of(x) = u32::MAX;
        __wake_up(
            (*x).wait.as_ptr(),
            TASK_NORMAL as u32,
            0,
            core::ptr::null_mut(),
        );
    }
}

/// `wait_for_common()`: sleeps in `state` until `x` is done, `timeout` jiffies passed or (in
/// an interruptible state) a signal came. Returns the jiffies left (at least 1) when done,
/// 0 on timeout, `-ERESTARTSYS` on a signal.
fn wait_for_common(x: *mut Completion, timeout: i32, state: i32) -> i32 {
    let mut timeout = timeout;
    let done = done_of(x);
    // SAFETY: the caller's completion; the waiter lives on this stack until removed.
    unsafe {
        if *done == 0 {
            let wait = WaitQueueEntry::new();
            let entry = wait.as_ptr();
            init_wait_entry(entry, WQ_FLAG_EXCLUSIVE);
            let wq = (*x).wait.as_ptr();
            loop {
                if signal_pending_state(state, current()) {
                    timeout = -ERESTARTSYS;
                    break;
                }
                if !crate::list::list_linked((*entry).entry.get()) {
                    add_wait_queue_exclusive(wq, entry);
                }
                set_current_state(state);
                timeout = schedule_timeout(timeout);
                if *done != 0 || timeout == 0 {
                    break;
                }
            }
            remove_wait_queue(wq, entry);
            set_current_state(TASK_RUNNING);
            if *done == 0 {
                return timeout;
            }
        }
        if *done != u32::MAX {
            *done -= 1;
        }
    }
    if timeout == 0 { 1 } else { timeout }
}

/// `wait_for_completion()`: sleeps uninterruptibly until `x` is done.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn wait_for_completion(x: *mut Completion) {
    wait_for_common(x, MAX_SCHEDULE_TIMEOUT, TASK_UNINTERRUPTIBLE);
}

/// `wait_for_completion_timeout()`: as [`wait_for_completion`] for at most `timeout`
/// jiffies; 0 if it timed out, else the jiffies left (at least 1).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn wait_for_completion_timeout(x: *mut Completion, timeout: i32) -> i32 {
    wait_for_common(x, timeout, TASK_UNINTERRUPTIBLE)
}

/// `wait_for_completion_interruptible()`: 0 when done, `-ERESTARTSYS` on a signal.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn wait_for_completion_interruptible(x: *mut Completion) -> i32 {
    let t = wait_for_common(x, MAX_SCHEDULE_TIMEOUT, TASK_INTERRUPTIBLE);
    if t == -ERESTARTSYS { t } else { 0 }
}

/// `wait_for_completion_interruptible_timeout()`: the jiffies left, 0 on timeout,
/// `-ERESTARTSYS` on a signal.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn wait_for_completion_interruptible_timeout(
    x: *mut Completion,
    timeout: i32,
) -> i32 {
    wait_for_common(x, timeout, TASK_INTERRUPTIBLE)
}

/// `wait_for_completion_killable()`: 0 when done, `-ERESTARTSYS` on a (fatal) signal.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn wait_for_completion_killable(x: *mut Completion) -> i32 {
    let t = wait_for_common(x, MAX_SCHEDULE_TIMEOUT, TASK_KILLABLE);
    if t == -ERESTARTSYS { t } else { 0 }
}

/// `try_wait_for_completion()`: consumes a completion without sleeping; 1 if there was one.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn try_wait_for_completion(x: *mut Completion) -> i32 {
    let done = done_of(x);
    // SAFETY: the caller's completion.
    unsafe {
        if *done == 0 {
            return 0;
        }
        if *done != u32::MAX {
            *done -= 1;
        }
    }
    1
}

/// `completion_done()`: 1 if a wait would not sleep.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn completion_done(x: *mut Completion) -> i32 {
    // SAFETY: the caller's completion.
    i32::from(unsafe { *done_of(x) } != 0)
}
