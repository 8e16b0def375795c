//! Workqueues, `kernel/workqueue.c`: the system workqueue and its one worker, `kworker/0:0`.
//!
//! `schedule_work` puts a work item on the worklist and wakes the worker; the worker's entry
//! [`worker_thread`] runs every pending item, then sets itself `TASK_INTERRUPTIBLE` and
//! returns, so an idle worker holds no frames and the host spawns it again on the next wake.
//! When the host runs no tasks there is no worker, and work runs as soon as it is queued.

use klp_abi::task::{PF_KTHREAD, PF_WQ_WORKER, TASK_INTERRUPTIBLE, TASK_RUNNING};
use klp_abi::{Completion, DelayedWork, ListHead, TaskStruct, TimerList, WorkStruct};

use crate::completion::{complete, wait_for_completion};
use crate::fork::{KTHREADD_PID, copy_process, wake_up_new_task};
use crate::jiffies::jiffies;
use crate::list::{list_add, list_add_tail, list_del_init, list_empty, list_first, list_linked};
use crate::sched::core::{set_current_state, wake_up_process};
use crate::sched::task::{Task, current};
use crate::sync::Global;
use crate::timer::{add_timer, del_timer};

/// `WORK_STRUCT_PENDING`: queued, or its delay timer is armed.
const WORK_STRUCT_PENDING: u32 = 1 << 0;

/// The system workqueue's pending work items, in queue order.
static WORKLIST: Global<ListHead> = Global::new(ListHead::new());
/// The worker, `kworker/0:0` (NULL: the host runs no tasks).
static KWORKER: Global<*mut Task> = Global::new(core::ptr::null_mut());
/// The work item the worker is running now.
static CURRENT_WORK: Global<*mut WorkStruct> = Global::new(core::ptr::null_mut());

fn worklist() -> *mut ListHead {
    WORKLIST.as_ptr()
}

fn kworker() -> *mut Task {
    // SAFETY: a word read.
    unsafe { *KWORKER.get() }
}

fn current_work() -> *mut WorkStruct {
    // SAFETY: a word read.
    unsafe { *CURRENT_WORK.get() }
}

fn data_of(work: *mut WorkStruct) -> *mut u32 {
    // SAFETY: a field pointer of the caller's work item.
    unsafe { (*work).data.get() }
}

fn entry_of(work: *mut WorkStruct) -> *mut ListHead {
    // SAFETY: as above.
    unsafe { (*work).entry.get() }
}

/// Sets the pending bit; returns whether it was clear (`test_and_set_bit`).
fn test_and_set_pending(work: *mut WorkStruct) -> bool {
    // SAFETY: the caller's work item.
    unsafe {
        let data = data_of(work);
        let was_clear = *data & WORK_STRUCT_PENDING == 0;
        *data |= WORK_STRUCT_PENDING;
        was_clear
    }
}

fn clear_pending(work: *mut WorkStruct) {
    // SAFETY: the caller's work item.
    unsafe { *data_of(work) &= !WORK_STRUCT_PENDING };
}

/// Runs the pending items until the worklist is empty.
fn process_scheduled_works() {
    // SAFETY: the items on the worklist are live (their owners cancel them before they go).
    while let Some(entry) = unsafe { list_first(worklist()) } {
        // SAFETY: as above.
        unsafe { list_del_init(entry) };
        let work = container_of!(entry, WorkStruct, entry);
        clear_pending(work);
        // SAFETY: short accesses.
        unsafe { *CURRENT_WORK.get() = work };
        // SAFETY: a live work item; the function is the owner's.
        if let Some(func) = unsafe { *(*work).func.get() } {
            // SAFETY: as above.
            unsafe { func(work) };
        }
        // SAFETY: as above.
        unsafe { *CURRENT_WORK.get() = core::ptr::null_mut() };
    }
}

/// The worker's entry: runs every pending work item, then goes idle (`TASK_INTERRUPTIBLE`)
/// and returns. No preemption point lies between the last check of the worklist and the
/// return, so a wakeup cannot be lost.
///
/// # Safety
///
/// The host's entry call for the worker.
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe extern "C" fn worker_thread(_task: *mut TaskStruct) {
    loop {
        set_current_state(TASK_INTERRUPTIBLE);
        // SAFETY: the worklist is live.
        if unsafe { list_empty(worklist()) } {
            return;
        }
        set_current_state(TASK_RUNNING);
        process_scheduled_works();
    }
}

/// Set while work runs without a worker, so queueing from a work item does not nest.
static RUNNING_INLINE: Global<bool> = Global::new(false);

/// Wakes the worker; without one, runs the pending work now (unless it already runs).
fn wake_up_worker() {
    let worker = kworker();
    if !worker.is_null() {
        wake_up_process(worker.cast());
        return;
    }
    // SAFETY: short accesses.
    if unsafe { *RUNNING_INLINE.get() } {
        return;
    }
    // SAFETY: as above.
    unsafe { *RUNNING_INLINE.get() = true };
    process_scheduled_works();
    // SAFETY: as above.
    unsafe { *RUNNING_INLINE.get() = false };
}

/// `__queue_work`: puts a pending item at the end of the worklist and wakes the worker.
fn __queue_work(work: *mut WorkStruct) {
    // SAFETY: the caller's unlinked work item.
    unsafe { list_add_tail(entry_of(work), worklist()) };
    wake_up_worker();
}

/// `schedule_work()`: queues `work` on the system workqueue; 0 if it was already pending.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn schedule_work(work: *mut WorkStruct) -> i32 {
    if !test_and_set_pending(work) {
        return 0;
    }
    __queue_work(work);
    1
}

fn to_delayed_work(timer: *mut TimerList) -> *mut DelayedWork {
    container_of!(timer, DelayedWork, timer)
}

/// The timer of a delayed work item: queues it.
///
/// # Safety
///
/// `t` is the timer of a live delayed work item.
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe extern "C" fn delayed_work_timer_fn(t: *mut TimerList) {
    let dwork = to_delayed_work(t);
    // SAFETY: the caller's contract.
    __queue_work(unsafe { (&raw mut (*dwork).work) });
}

/// `__queue_delayed_work`: queues the pending `dwork` after `delay` jiffies.
fn __queue_delayed_work(dwork: *mut DelayedWork, delay: i32) {
    // SAFETY: the caller's delayed work item.
    let (work, timer) = unsafe { (&raw mut (*dwork).work, &raw mut (*dwork).timer) };
    if delay <= 0 {
        __queue_work(work);
        return;
    }
    // SAFETY: as above.
    unsafe {
        *(*timer).function.get() = Some(delayed_work_timer_fn);
        *(*timer).expires.get() = jiffies() + delay as u64;
    }
    add_timer(timer);
}

/// `schedule_delayed_work()`: queues `dwork` after `delay` jiffies; 0 if it was already
/// pending.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn schedule_delayed_work(dwork: *mut DelayedWork, delay: i32) -> i32 {
    // SAFETY: a field pointer of the caller's item.
    if !test_and_set_pending(unsafe { &raw mut (*dwork).work }) {
        return 0;
    }
    __queue_delayed_work(dwork, delay);
    1
}

/// `try_to_grab_pending`: takes a pending item off its timer or the worklist; returns
/// whether it was pending. It is not pending afterwards.
fn try_to_grab_pending(work: *mut WorkStruct, dwork: Option<*mut DelayedWork>) -> bool {
    // SAFETY: the caller's work item.
    if unsafe { *data_of(work) } & WORK_STRUCT_PENDING == 0 {
        return false;
    }
    if let Some(dwork) = dwork {
        // SAFETY: a field pointer of the caller's item.
        del_timer(unsafe { &raw mut (*dwork).timer });
    }
    // SAFETY: the item is unlinked or on the worklist.
    unsafe { list_del_init(entry_of(work)) };
    clear_pending(work);
    true
}

/// `mod_delayed_work()`: (re)queues `dwork` after `delay` jiffies; 1 if it was pending.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn mod_delayed_work(dwork: *mut DelayedWork, delay: i32) -> i32 {
    // SAFETY: a field pointer of the caller's item.
    let work = unsafe { &raw mut (*dwork).work };
    let was_pending = try_to_grab_pending(work, Some(dwork));
    test_and_set_pending(work);
    __queue_delayed_work(dwork, delay);
    i32::from(was_pending)
}

/// A flush barrier, `struct wq_barrier`: a work item that completes `done`.
#[repr(C)]
struct WqBarrier {
    work: WorkStruct,
    done: Completion,
}

/// The barrier's function.
///
/// # Safety
///
/// `work` is the `work` of a live [`WqBarrier`].
unsafe extern "C" fn wq_barrier_func(work: *mut WorkStruct) {
    let barr = container_of!(work, WqBarrier, work);
    // SAFETY: the caller's contract.
    complete(unsafe { &raw mut (*barr).done });
}

/// `flush_work()`: waits until `work`, queued or running now, has finished; 1 if it waited,
/// 0 if it was idle.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn flush_work(work: *mut WorkStruct) -> i32 {
    // SAFETY: the caller's work item.
    let queued = unsafe { list_linked(entry_of(work)) };
    let running = core::ptr::eq(current_work(), work);
    if !queued && !running {
        return 0;
    }
    let worker = kworker();
    if !worker.is_null() && core::ptr::eq(worker, current()) {
        pr_warn!("workqueue: flush_work from the worker itself: would deadlock");
        return 0;
    }
    let barr = WqBarrier {
        work: WorkStruct::new(wq_barrier_func),
        done: Completion::new(),
    };
    let barr_work = barr.work.as_ptr();
    test_and_set_pending(barr_work);
    // SAFETY: the barrier lives on this stack until it has run; `work` is live.
    unsafe {
        if queued {
            list_add(entry_of(barr_work), entry_of(work));
        } else {
            list_add(entry_of(barr_work), worklist());
        }
    }
    wake_up_worker();
    wait_for_completion(barr.done.as_ptr());
    1
}

/// `flush_delayed_work()`: queues `dwork` now if its timer is armed, then flushes it.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn flush_delayed_work(dwork: *mut DelayedWork) -> i32 {
    // SAFETY: field pointers of the caller's item.
    let (work, timer) = unsafe { (&raw mut (*dwork).work, &raw mut (*dwork).timer) };
    if del_timer(timer) != 0 {
        __queue_work(work);
    }
    flush_work(work)
}

/// `cancel_work_sync()`: takes `work` off the worklist and waits for it if it runs; 1 if
/// it was pending.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn cancel_work_sync(work: *mut WorkStruct) -> i32 {
    let was_pending = try_to_grab_pending(work, None);
    flush_work(work);
    i32::from(was_pending)
}

/// `cancel_delayed_work()`: disarms or dequeues `dwork` without waiting; 1 if it was
/// pending.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn cancel_delayed_work(dwork: *mut DelayedWork) -> i32 {
    // SAFETY: a field pointer of the caller's item.
    let work = unsafe { &raw mut (*dwork).work };
    i32::from(try_to_grab_pending(work, Some(dwork)))
}

/// `cancel_delayed_work_sync()`: as [`cancel_delayed_work`], and waits for it if it runs.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn cancel_delayed_work_sync(dwork: *mut DelayedWork) -> i32 {
    // SAFETY: a field pointer of the caller's item.
    let work = unsafe { &raw mut (*dwork).work };
    let was_pending = try_to_grab_pending(work, Some(dwork));
    flush_work(work);
    i32::from(was_pending)
}

/// `workqueue_init`: creates the worker `kworker/0:0` (idle until work is queued).
pub fn workqueue_init() {
    if !crate::sched::core::tasks_supported() {
        pr_info!("workqueue: no kworker, the host runs no tasks: work runs when queued");
        return;
    }
    let entry = worker_thread as unsafe extern "C" fn(*mut TaskStruct);
    let Ok(worker) = copy_process(
        b"kworker/0:0",
        PF_WQ_WORKER | PF_KTHREAD,
        entry,
        KTHREADD_PID,
    ) else {
        pr_err!("workqueue: cannot create kworker/0:0");
        return;
    };
    // SAFETY: the new task.
    unsafe { (*worker).ts.state = TASK_INTERRUPTIBLE };
    match wake_up_new_task(worker) {
        // SAFETY: a short access.
        Ok(()) => unsafe { *KWORKER.get() = worker },
        Err(errno) => pr_err!("workqueue: the host refused kworker/0:0 (-{errno})"),
    }
}
