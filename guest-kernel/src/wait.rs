//! Wait queues, `kernel/sched/wait.c`: `prepare_to_wait`, `finish_wait`, `__wake_up`.

use core::ffi::c_void;

use klp_abi::task::{TASK_INTERRUPTIBLE, TASK_NORMAL, TASK_RUNNING, WQ_FLAG_EXCLUSIVE};
use klp_abi::{ListHead, WaitQueueEntry, WaitQueueFunc, WaitQueueHead};

use crate::list::{list_add, list_add_tail, list_del_init, list_empty, list_first, list_linked};
use crate::preempt::preempt_disable;
use crate::sched::core::{set_current_state, try_to_wake_up};
use crate::sched::task::current;

fn head_of(wq: *mut WaitQueueHead) -> *mut ListHead {
    // SAFETY: a field pointer of the caller's queue.
    unsafe { (*wq).head.get() }
}

fn link_of(entry: *mut WaitQueueEntry) -> *mut ListHead {
    // SAFETY: a field pointer of the caller's entry.
    unsafe { (*entry).entry.get() }
}

/// Fills in what a zeroed entry leaves to the kernel: the waiter is `current`.
fn fill_entry(entry: *mut WaitQueueEntry) {
    // SAFETY: the caller's entry.
    unsafe {
        if (*(*entry).private.get()).is_null() {
            *(*entry).private.get() = current().cast();
        }
    }
}

fn set_exclusive(entry: *mut WaitQueueEntry, exclusive: bool) {
    // SAFETY: the caller's entry.
    unsafe {
        let flags = (*entry).flags.get();
        if exclusive {
            *flags |= WQ_FLAG_EXCLUSIVE;
        } else {
            *flags &= !WQ_FLAG_EXCLUSIVE;
        }
    }
}

/// `init_waitqueue_head()`: an empty queue.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn init_waitqueue_head(wq: *mut WaitQueueHead) {
    let head = head_of(wq);
    // SAFETY: the caller's queue.
    unsafe { *head = ListHead::new() };
}

/// `init_wait_entry()`: a waiter for `current` woken by `autoremove_wake_function`.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn init_wait_entry(entry: *mut WaitQueueEntry, flags: u32) {
    // SAFETY: the caller's entry.
    unsafe {
        *(*entry).flags.get() = flags;
        *(*entry).private.get() = current().cast();
        *(*entry).func.get() = Some(autoremove_wake_function);
        *(*entry).entry.get() = ListHead::new();
    }
}

/// `add_wait_queue()`: adds a non-exclusive waiter at the front.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn add_wait_queue(wq: *mut WaitQueueHead, entry: *mut WaitQueueEntry) {
    fill_entry(entry);
    set_exclusive(entry, false);
    // SAFETY: the caller's queue and unlinked entry.
    unsafe { list_add(link_of(entry), head_of(wq)) };
}

/// `add_wait_queue_exclusive()`: adds an exclusive waiter at the end.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn add_wait_queue_exclusive(wq: *mut WaitQueueHead, entry: *mut WaitQueueEntry) {
    fill_entry(entry);
    set_exclusive(entry, true);
    // SAFETY: as above.
    unsafe { list_add_tail(link_of(entry), head_of(wq)) };
}

/// `remove_wait_queue()`: takes a waiter off the queue.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn remove_wait_queue(_wq: *mut WaitQueueHead, entry: *mut WaitQueueEntry) {
    // SAFETY: the entry is unlinked or on the caller's queue.
    unsafe { list_del_init(link_of(entry)) };
}

/// `prepare_to_wait()`: queues `entry` (non-exclusive) unless it is queued, and sets the
/// state `current` will sleep in.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn prepare_to_wait(wq: *mut WaitQueueHead, entry: *mut WaitQueueEntry, state: i32) {
    fill_entry(entry);
    set_exclusive(entry, false);
    // SAFETY: the caller's queue and entry.
    unsafe {
        if !list_linked(link_of(entry)) {
            list_add(link_of(entry), head_of(wq));
        }
    }
    set_current_state(state);
}

/// `prepare_to_wait_exclusive()`: as [`prepare_to_wait`] for an exclusive waiter (queued
/// at the end; `wake_up` wakes one). Returns 1 if it queued it now.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn prepare_to_wait_exclusive(
    wq: *mut WaitQueueHead,
    entry: *mut WaitQueueEntry,
    state: i32,
) -> i32 {
    fill_entry(entry);
    set_exclusive(entry, true);
    // SAFETY: the caller's queue and entry.
    let queued = unsafe { !list_linked(link_of(entry)) };
    if queued {
        // SAFETY: as above.
        unsafe { list_add_tail(link_of(entry), head_of(wq)) };
    }
    set_current_state(state);
    i32::from(queued)
}

/// `finish_wait()`: `current` runs again; takes `entry` off the queue if a wakeup did not.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn finish_wait(_wq: *mut WaitQueueHead, entry: *mut WaitQueueEntry) {
    set_current_state(TASK_RUNNING);
    // SAFETY: the entry is unlinked or on the caller's queue.
    unsafe { list_del_init(link_of(entry)) };
}

/// `default_wake_function()`: wakes the waiting task if it sleeps in one of `mode`.
///
/// # Safety
///
/// `entry` must be a live entry.
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe extern "C" fn default_wake_function(
    entry: *mut WaitQueueEntry,
    mode: u32,
    _flags: i32,
    _key: *mut c_void,
) -> i32 {
    // SAFETY: the caller's contract.
    try_to_wake_up(unsafe { *(*entry).private.get() }.cast(), mode as i32)
}

/// `autoremove_wake_function()`: as [`default_wake_function`], and takes a woken waiter off
/// the queue.
///
/// # Safety
///
/// `entry` must be a live entry on a live queue.
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe extern "C" fn autoremove_wake_function(
    entry: *mut WaitQueueEntry,
    mode: u32,
    flags: i32,
    key: *mut c_void,
) -> i32 {
    // SAFETY: the caller's contract.
    let ret = unsafe { default_wake_function(entry, mode, flags, key) };
    if ret != 0 {
        // SAFETY: as above.
        unsafe { list_del_init(link_of(entry)) };
    }
    ret
}

/// `__wake_up()`: calls the wake function of waiters in queue order for `mode`; after
/// `nr_exclusive` exclusive waiters woke (0: no limit) it stops. Returns how many woke.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn __wake_up(
    wq: *mut WaitQueueHead,
    mode: u32,
    nr_exclusive: i32,
    key: *mut c_void,
) -> i32 {
    let _preempt = preempt_disable();
    let head = head_of(wq);
    let mut remaining = nr_exclusive;
    let mut woken = 0;
    // SAFETY: the queue's entries are live (their waiters remove them before they go).
    unsafe {
        let mut pos = list_first(head);
        while let Some(link) = pos {
            // The wake function may unlink this entry, and an empty queue goes back to
            // all null: look at the next one first.
            let next = (*link).next;
            let entry = container_of!(link, WaitQueueEntry, entry);
            let flags = *(*entry).flags.get();
            let func: WaitQueueFunc = (*(*entry).func.get()).unwrap_or(autoremove_wake_function);
            let ret = func(entry, mode, 0, key);
            if ret < 0 {
                break;
            }
            if ret != 0 {
                woken += 1;
                if flags & WQ_FLAG_EXCLUSIVE != 0 {
                    remaining -= 1;
                    if remaining == 0 {
                        break;
                    }
                }
            }
            pos = Some(next).filter(|&n| !core::ptr::eq(n, head) && !list_empty(head));
        }
    }
    woken
}

/// `wake_up()`: wakes every non-exclusive waiter and one exclusive one.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn wake_up(wq: *mut WaitQueueHead) {
    __wake_up(wq, TASK_NORMAL as u32, 1, core::ptr::null_mut());
}

/// `wake_up_interruptible()`: as [`wake_up`] for waiters in `TASK_INTERRUPTIBLE`.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn wake_up_interruptible(wq: *mut WaitQueueHead) {
    __wake_up(wq, TASK_INTERRUPTIBLE as u32, 1, core::ptr::null_mut());
}

/// `wake_up_all()`: wakes every waiter.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn wake_up_all(wq: *mut WaitQueueHead) {
    __wake_up(wq, TASK_NORMAL as u32, 0, core::ptr::null_mut());
}

/// `wake_up_interruptible_all()`: wakes every waiter in `TASK_INTERRUPTIBLE`.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn wake_up_interruptible_all(wq: *mut WaitQueueHead) {
    __wake_up(wq, TASK_INTERRUPTIBLE as u32, 0, core::ptr::null_mut());
}

/// `waitqueue_active()`: 1 if anyone waits on `wq`.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn waitqueue_active(wq: *mut WaitQueueHead) -> i32 {
    // SAFETY: the caller's queue.
    i32::from(unsafe { !list_empty(head_of(wq)) })
}
