//! Preemption control, `include/linux/preempt.h`: `preempt_disable` as a guard on `current`.
//!
//! The host may preempt a task at any loop header of kernel code. Kernel state lives in
//! [`Global`](crate::sync::Global) cells that code borrows without locks, so code that walks
//! or changes shared state (the heap, the log, the VFS, timer and wait lists) runs with
//! `current->preempt_count` raised: the host resumes a task preempted there before any other.
//! `schedule()` lets go of the count while the task sleeps (as the big kernel lock was), so a
//! callback that sleeps inside such a region does not stop the others; kernel code makes
//! such callbacks with no borrow of its state alive.

use klp_abi::TaskStruct;

use crate::sched::task::current;

/// Raises `current`'s preempt count until dropped.
pub struct PreemptGuard(*mut TaskStruct);

/// `preempt_disable()`: `current` is not switched away from until the guard is dropped
/// (unless it sleeps).
#[must_use]
pub fn preempt_disable() -> PreemptGuard {
    let task: *mut TaskStruct = current().cast();
    // SAFETY: `current` is live.
    unsafe { (*task).preempt_count += 1 };
    PreemptGuard(task)
}

impl Drop for PreemptGuard {
    /// `preempt_enable()`.
    fn drop(&mut self) {
        // SAFETY: the task that raised the count is the one running, and live.
        unsafe { (*self.0).preempt_count -= 1 };
    }
}
