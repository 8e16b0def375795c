//! Timers, `kernel/time/timer.c`: `timer_list`, `mod_timer`, `del_timer`, and `run_timers`.
//!
//! Pending timers are kept in one list sorted by expiry. Whenever the earliest expiry changes
//! the kernel tells the host (`HostOp::TimerNext`), which calls [`run_timers`] once its clock
//! reaches it; timer callbacks run there, outside any task, and must not sleep.

use klp_abi::{HostOp, ListHead, TimerFn, TimerList};

use crate::host::hostcall;
use crate::jiffies::jiffies;
use crate::list::{list_add_tail, list_del_init, list_first, list_linked};
use crate::preempt::preempt_disable;
use crate::sync::Global;

/// The pending timers, sorted by `expires` (equal expiries in the order they were added).
static TIMERS: Global<ListHead> = Global::new(ListHead::new());
/// The earliest expiry last reported to the host (`u64::MAX`: none).
static NEXT_REPORTED: Global<u64> = Global::new(u64::MAX);
/// Set while `run_timers` runs callbacks, so that it is not entered again.
static IN_SOFTIRQ: Global<bool> = Global::new(false);

fn timer_of(entry: *mut ListHead) -> *mut TimerList {
    container_of!(entry, TimerList, entry)
}

fn entry_of(timer: *mut TimerList) -> *mut ListHead {
    // SAFETY: a field pointer of a live timer.
    unsafe { (*timer).entry.get() }
}

fn expires_of(timer: *mut TimerList) -> u64 {
    // SAFETY: callers pass live timers.
    unsafe { *(*timer).expires.get() }
}

/// Tells the host the earliest expiry if it changed.
fn report_next() {
    // SAFETY: timers on the list are live.
    let next = unsafe { list_first(TIMERS.as_ptr()) }.map_or(u64::MAX, |e| expires_of(timer_of(e)));
    // SAFETY: a short access.
    let reported = unsafe { NEXT_REPORTED.get() };
    if *reported != next {
        *reported = next;
        hostcall(HostOp::TimerNext, next as i32, (next >> 32) as i32, 0);
    }
}

/// Unlinks a pending timer; returns whether it was pending.
fn detach_if_pending(timer: *mut TimerList) -> bool {
    let entry = entry_of(timer);
    // SAFETY: a live timer; a linked one is on the timer list, whose links are live.
    unsafe {
        if !list_linked(entry) {
            return false;
        }
        list_del_init(entry);
    }
    true
}

/// Links `timer` into the sorted list.
fn enqueue_timer(timer: *mut TimerList) {
    let _preempt = preempt_disable();
    let head = TIMERS.as_ptr();
    let expires = expires_of(timer);
    // SAFETY: the list's entries are live timers; `timer` is unlinked.
    unsafe {
        let mut pos = list_first(head);
        while let Some(entry) = pos {
            if expires_of(timer_of(entry)) > expires {
                list_add_tail(entry_of(timer), entry);
                return;
            }
            pos = Some((*entry).next).filter(|&next| !core::ptr::eq(next, head));
        }
        list_add_tail(entry_of(timer), head);
    }
}

/// `timer_setup()`: prepares `timer` to call `function`, not pending.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn timer_setup(timer: *mut TimerList, function: TimerFn, flags: u32) {
    detach_if_pending(timer);
    // SAFETY: the caller's timer.
    unsafe {
        *(*timer).function.get() = Some(function);
        *(*timer).flags.get() = flags;
    }
    report_next();
}

/// `mod_timer()`: (re)arms `timer` to fire at `expires` (jiffies); returns 1 if it was
/// pending, 0 if not.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn mod_timer(timer: *mut TimerList, expires: u64) -> i32 {
    let was_pending = detach_if_pending(timer);
    // SAFETY: the caller's timer.
    unsafe { *(*timer).expires.get() = expires };
    enqueue_timer(timer);
    report_next();
    i32::from(was_pending)
}

/// `add_timer()`: arms `timer` at its `expires`.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn add_timer(timer: *mut TimerList) {
    if detach_if_pending(timer) {
        pr_warn!("add_timer: timer already pending");
    }
    mod_timer(timer, expires_of(timer));
}

/// `del_timer()`: disarms `timer`; returns 1 if it was pending.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn del_timer(timer: *mut TimerList) -> i32 {
    let was_pending = detach_if_pending(timer);
    if was_pending {
        report_next();
    }
    i32::from(was_pending)
}

/// `del_timer_sync()`: as [`del_timer`]; callbacks never run while a
/// task does (they run in [`run_timers`], outside tasks, and do not sleep), so there is no
/// running callback to wait for.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn del_timer_sync(timer: *mut TimerList) -> i32 {
    del_timer(timer)
}

/// `timer_delete()`: [`del_timer`]'s newer name.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn timer_delete(timer: *mut TimerList) -> i32 {
    del_timer(timer)
}

/// `timer_delete_sync()`: [`del_timer_sync`]'s newer name.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn timer_delete_sync(timer: *mut TimerList) -> i32 {
    del_timer_sync(timer)
}

/// `timer_pending()`: 1 if `timer` is armed.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn timer_pending(timer: *const TimerList) -> i32 {
    // SAFETY: the caller's timer.
    i32::from(unsafe { list_linked((*timer).entry.get()) })
}

/// The timer softirq (`run_timer_softirq`): runs every timer that expired by now, in expiry
/// order (timers they arm for now run at the next call), then reports the next expiry to
/// the host. Called by the host when its clock reaches the reported expiry, and by
/// `schedule()` when a host without tasks cannot sleep. Does not sleep; a nested call
/// returns at once.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn run_timers() {
    // SAFETY: short accesses.
    if unsafe { *IN_SOFTIRQ.get() } {
        return;
    }
    // SAFETY: as above.
    unsafe { *IN_SOFTIRQ.get() = true };
    let now = jiffies();
    let mut expired = ListHead::new();
    let expired_head = &raw mut expired;
    let preempt = preempt_disable();
    // SAFETY: the list's entries are live timers; `expired` lives until they all ran.
    unsafe {
        while let Some(entry) = list_first(TIMERS.as_ptr()) {
            if expires_of(timer_of(entry)) > now {
                break;
            }
            list_del_init(entry);
            list_add_tail(entry, expired_head);
        }
        drop(preempt);
        while let Some(entry) = list_first(expired_head) {
            list_del_init(entry);
            let timer = timer_of(entry);
            if let Some(function) = *(*timer).function.get() {
                function(timer);
            }
        }
    }
    // SAFETY: a short access.
    unsafe { *IN_SOFTIRQ.get() = false };
    report_next();
}
