//! test_klp_sleeper_patch: replaces `sleeper_func` of test_klp_sleeper with a function that also
//! sleeps interruptibly for an hour, so that an unpatching transition waits for a task sleeping
//! in the new function until it signals it.
#![no_std]

use klp_guest::task::{self, HZ, PidSet};
use klp_guest::{KlpFunc, KlpObject, KlpPatch, klp_enable_patch, pr_info};

/// How long the new function sleeps unless woken: an hour, in jiffies.
const SLEEP_JIFFIES: i32 = 3600 * HZ as i32;

/// The pids that said they sleep in the new function.
static ANNOUNCED: PidSet<128> = PidSet::new();

/// The replacement for `sleeper_func`: says so the first time each task comes here, then
/// sleeps interruptibly for an hour, returning early when woken.
#[inline(never)]
extern "C" fn livepatch_sleeper_func() {
    // SAFETY: `current` is always a live task.
    let pid = unsafe { (*task::current()).pid };
    if ANNOUNCED.first_time(pid) {
        pr_info!("test_klp_sleeper_patch: livepatch_sleeper_func: sleeping");
    }
    // SAFETY: no pointers.
    unsafe { task::sys::schedule_timeout_interruptible(SLEEP_JIFFIES) };
}

static SLEEPER_FUNCS: [KlpFunc; 2] = [
    KlpFunc::new(c"sleeper_func", livepatch_sleeper_func as *const ()),
    KlpFunc::END,
];
static OBJS: [KlpObject; 2] = [
    KlpObject::module(c"test_klp_sleeper", &SLEEPER_FUNCS),
    KlpObject::END,
];
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
