//! Sleeping with a timeout, `kernel/time/sleep_timeout.c`: `schedule_timeout`, `msleep`.

use klp_abi::task::{MAX_SCHEDULE_TIMEOUT, TASK_INTERRUPTIBLE, TASK_RUNNING, TASK_UNINTERRUPTIBLE};
use klp_abi::{TaskStruct, TimerList};

use super::core::{schedule, set_current_state, signal_pending};
use super::task::current;
use crate::jiffies::{jiffies, jiffies_to_msecs, msecs_to_jiffies};
use crate::timer::{del_timer_sync, mod_timer, timer_setup};

/// The on-stack timer of a sleeping task, `struct process_timer`.
#[repr(C)]
struct ProcessTimer {
    timer: TimerList,
    task: *mut TaskStruct,
}

/// The timer of `schedule_timeout`: wakes the sleeping task.
///
/// # Safety
///
/// `t` is the `timer` of a live [`ProcessTimer`].
#[inline(never)]
unsafe extern "C" fn process_timeout(t: *mut TimerList) {
    let timeout = container_of!(t, ProcessTimer, timer);
    // SAFETY: the caller's contract.
    unsafe { super::core::wake_up_process((*timeout).task) };
}

/// `schedule_timeout()`: sleeps (in the state the caller set) until woken or `timeout`
/// jiffies passed; returns the jiffies left, 0 when the time ran out. `MAX_SCHEDULE_TIMEOUT`
/// sleeps without a timer and returns it.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn schedule_timeout(timeout: i32) -> i32 {
    if timeout == MAX_SCHEDULE_TIMEOUT {
        schedule();
        return timeout;
    }
    if timeout < 0 {
        pr_err!("schedule_timeout: wrong timeout value {:x}", timeout);
        set_current_state(TASK_RUNNING);
        return 0;
    }
    let expire = jiffies() + timeout as u64;
    let sleeper = ProcessTimer {
        timer: TimerList::empty(),
        task: current().cast(),
    };
    let timer = sleeper.timer.as_ptr();
    timer_setup(timer, process_timeout, 0);
    mod_timer(timer, expire);
    schedule();
    del_timer_sync(timer);
    expire.saturating_sub(jiffies()).min(i32::MAX as u64) as i32
}

/// `schedule_timeout_interruptible()`: as [`schedule_timeout`] in `TASK_INTERRUPTIBLE`.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn schedule_timeout_interruptible(timeout: i32) -> i32 {
    set_current_state(TASK_INTERRUPTIBLE);
    schedule_timeout(timeout)
}

/// `schedule_timeout_uninterruptible()`: as [`schedule_timeout`] in `TASK_UNINTERRUPTIBLE`.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn schedule_timeout_uninterruptible(timeout: i32) -> i32 {
    set_current_state(TASK_UNINTERRUPTIBLE);
    schedule_timeout(timeout)
}

/// `msleep()`: sleeps at least `msecs` milliseconds, uninterruptibly.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn msleep(msecs: u32) {
    let mut timeout = msecs_to_jiffies(msecs).saturating_add(1);
    while timeout != 0 {
        timeout = schedule_timeout_uninterruptible(timeout);
    }
}

/// `msleep_interruptible()`: sleeps `msecs` milliseconds unless a signal comes first;
/// returns the milliseconds left.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn msleep_interruptible(msecs: u32) -> u32 {
    let mut timeout = msecs_to_jiffies(msecs).saturating_add(1);
    while timeout != 0 && signal_pending(current().cast()) == 0 {
        timeout = schedule_timeout_interruptible(timeout);
    }
    jiffies_to_msecs(timeout)
}
