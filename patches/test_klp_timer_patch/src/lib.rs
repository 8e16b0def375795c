//! test_klp_timer_patch: replaces `del_timer_sync`, which `schedule_timeout()` calls directly after its task wakes, with one that says which task calls it.
//!
//! With dynamic ftrace a task asleep in `schedule_timeout()` of the plain kernel would call the
//! old `del_timer_sync` directly when it wakes: the consistency model keeps it unpatched until
//! it has left that frame, so once the patch is enabled for it, every call reaches this one.
#![no_std]

use klp_guest::task::{self, PidSet, TimerList};
use klp_guest::{KlpFunc, KlpObject, KlpPatch, klp_enable_patch, pr_info};

/// The pids that called the new function.
static CALLERS: PidSet<128> = PidSet::new();

/// The replacement for `del_timer_sync`: says so the first time each task calls it, then
/// disarms the timer as the original does.
#[inline(never)]
extern "C" fn livepatch_del_timer_sync(timer: *mut TimerList) -> i32 {
    // SAFETY: `current` is always a live task.
    let pid = unsafe { (*task::current()).pid };
    if CALLERS.first_time(pid) {
        pr_info!(
            "test_klp_timer_patch: livepatch_del_timer_sync: called by pid {}",
            pid
        );
    }
    // SAFETY: the caller's timer, as for the original.
    unsafe { task::sys::del_timer(timer) }
}

static FUNCS: [KlpFunc; 2] = [
    KlpFunc::new(c"del_timer_sync", livepatch_del_timer_sync as *const ()),
    KlpFunc::END,
];
static OBJS: [KlpObject; 2] = [KlpObject::vmlinux(&FUNCS), KlpObject::END];
static PATCH: KlpPatch = KlpPatch::new(&OBJS);

/// Enables the patch.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    klp_enable_patch(&PATCH)
}

/// Nothing to undo: the livepatch core disables and frees the patch.
#[unsafe(no_mangle)]
pub extern "C" fn cleanup_module() {}

klp_guest::module_info!(livepatch, "Y");
