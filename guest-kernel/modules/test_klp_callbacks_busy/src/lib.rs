//! test_klp_callbacks_busy: a work item that sleeps in a loop while `block_transition` is set,
//! as Linux's selftest module of that name (the target test_klp_callbacks_demo patches).
#![no_std]

use core::cell::UnsafeCell;
use core::ptr;

use klp_guest::{module_param, pr_info};

module_param!(block_transition: bool = false, 0o644);

// TODO(merge): use klp_guest::sched (G1's task API); these mirror klp-abi's `tasks` layouts.

/// `struct list_head`.
#[repr(C)]
struct ListHead {
    next: *mut ListHead,
    prev: *mut ListHead,
}

/// `struct work_struct`: `WORK_STRUCT_*` bits, the worklist link, the function.
#[repr(C)]
pub struct WorkStruct {
    data: UnsafeCell<u32>,
    entry: UnsafeCell<ListHead>,
    func: UnsafeCell<Option<unsafe extern "C" fn(*mut WorkStruct)>>,
}

/// `struct completion`: the count of completions and the waiters' queue head.
#[repr(C)]
pub struct Completion {
    done: UnsafeCell<u32>,
    wait: UnsafeCell<ListHead>,
}

// SAFETY: the guest is single-threaded; the kernel changes them through their cells.
unsafe impl Sync for WorkStruct {}
// SAFETY: as above.
unsafe impl Sync for Completion {}

const fn list_head() -> ListHead {
    ListHead {
        next: ptr::null_mut(),
        prev: ptr::null_mut(),
    }
}

unsafe extern "C" {
    fn schedule_work(work: *mut WorkStruct) -> i32;
    fn flush_work(work: *mut WorkStruct) -> i32;
    fn complete(x: *mut Completion);
    fn wait_for_completion(x: *mut Completion);
    fn msleep(msecs: u32);
}

/// `DECLARE_WORK(work, busymod_work_func)`.
static WORK: WorkStruct = WorkStruct {
    data: UnsafeCell::new(0),
    entry: UnsafeCell::new(list_head()),
    func: UnsafeCell::new(Some(busymod_work_func)),
};

/// `DECLARE_COMPLETION(busymod_work_started)`.
static BUSYMOD_WORK_STARTED: Completion = Completion {
    done: UnsafeCell::new(0),
    wait: UnsafeCell::new(list_head()),
};

fn work() -> *mut WorkStruct {
    ptr::from_ref(&WORK).cast_mut()
}

/// The work function test_klp_callbacks_demo replaces: it tells init it started, then sleeps
/// 20 ms at a time until `block_transition` is cleared, so a patch transition waits for it.
/// Kept out of line and named so that a patch finds it in object `test_klp_callbacks_busy`.
///
/// # Safety
///
/// Called by the kworker with the module's work item (the argument is not used).
#[inline(never)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn busymod_work_func(_work: *mut WorkStruct) {
    pr_info!("test_klp_callbacks_busy: busymod_work_func enter");
    // SAFETY: the module's own completion.
    unsafe { complete(ptr::from_ref(&BUSYMOD_WORK_STARTED).cast_mut()) };
    while block_transition.get() {
        // Busy-wait until the sysfs writer has acknowledged a blocked transition and clears
        // the flag.
        // SAFETY: a kernel function called from the kworker.
        unsafe { msleep(20) };
    }
    pr_info!("test_klp_callbacks_busy: busymod_work_func exit");
}

/// Queues the work and waits until it runs; without `block_transition`, until it is done.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    pr_info!("test_klp_callbacks_busy: test_klp_callbacks_busy_init");
    // SAFETY: the module's own work item and completion, static for its lifetime.
    unsafe {
        schedule_work(work());
        // Hold init until the work function's entry message has printed.
        wait_for_completion(ptr::from_ref(&BUSYMOD_WORK_STARTED).cast_mut());
        if !block_transition.get() {
            // Print every message of the work function before init returns.
            flush_work(work());
        }
    }
    0
}

/// Lets the work function finish and waits for it.
#[unsafe(no_mangle)]
pub extern "C" fn cleanup_module() {
    block_transition.set(false);
    // SAFETY: the module's own work item.
    unsafe { flush_work(work()) };
    pr_info!("test_klp_callbacks_busy: test_klp_callbacks_busy_exit");
}
