//! test_klp_callbacks_busy: a work item that sleeps in a loop while `block_transition` is set,
//! as Linux's selftest module of that name (the target test_klp_callbacks_demo patches).
#![no_std]

use klp_guest::task::{self, Completion, WorkStruct};
use klp_guest::{module_param, pr_info};

module_param!(block_transition: bool = false, 0o644);

/// `DECLARE_WORK(work, busymod_work_func)`.
static WORK: WorkStruct = WorkStruct::new(busymod_work_func);

/// `DECLARE_COMPLETION(busymod_work_started)`.
static BUSYMOD_WORK_STARTED: Completion = Completion::new();

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
    task::complete(&BUSYMOD_WORK_STARTED);
    while block_transition.get() {
        // Busy-wait until the sysfs writer has acknowledged a blocked transition and clears
        // the flag.
        task::msleep(20);
    }
    pr_info!("test_klp_callbacks_busy: busymod_work_func exit");
}

/// Queues the work and waits until it runs; without `block_transition`, until it is done.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    pr_info!("test_klp_callbacks_busy: test_klp_callbacks_busy_init");
    task::schedule_work(&WORK);
    // Hold init until the work function's entry message has printed.
    task::wait_for_completion(&BUSYMOD_WORK_STARTED);
    if !block_transition.get() {
        // Print every message of the work function before init returns.
        task::flush_work(&WORK);
    }
    0
}

/// Lets the work function finish and waits for it.
#[unsafe(no_mangle)]
pub extern "C" fn cleanup_module() {
    block_transition.set(false);
    task::flush_work(&WORK);
    pr_info!("test_klp_callbacks_busy: test_klp_callbacks_busy_exit");
}
