//! test_klp_stress: kthreads calling three versioned functions, the target of
//! `test_klp_stress_patch` and of the consistency-model stress test (host/tests/consistency_stress.rs).
//!
//! Each of the first `nr_tasks - nr_sleeping` kthreads loops until `kthread_stop`: it calls
//! [`stress_outer`], which calls [`stress_inner_a`], gives up the CPU (in turn `cond_resched`,
//! `msleep(1)`, `schedule_timeout_interruptible(1)`) and calls [`stress_inner_b`]; then it
//! `cond_resched`s and, when `idle_ms` is not 0, sleeps `idle_ms` outside the three functions.
//! Every function returns a value tagged with its version ([`STRESS_VERSION_SHIFT`]); the
//! outer function hands both inner results to [`stress_account`], which counts the calls and
//! the calls where an inner function's version differs from the outer's. Linux's per-task
//! consistency model keeps a task inside the old `stress_outer` on the old inner functions and
//! one inside the new on the new, so `mismatches` stays 0 whatever the patch does when.
//!
//! The last `nr_sleeping` kthreads sleep in [`stress_idle`], which no patch changes: they
//! switch at once in every transition. `pingpong=Y` starts two more kthreads that hand a
//! token back and forth through two completions, each hand-over one context switch
//! (`switches`), for the context-switch benchmark.
//!
//! `/sys/kernel/test_klp_stress/{calls,new_calls,mismatches,switches}` show the counters
//! (`new_calls`: the calls of an outer function of another version, the patch's).
#![no_std]

use core::ffi::c_void;
use core::hint::black_box;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use klp_guest::kobject::{self, KobjAttribute, Kobject};
use klp_guest::kthreads::{KthreadName, Kthreads};
use klp_guest::task::{self, Completion, sys};
use klp_guest::{errno, module_param, pr_err, pr_info, sysfs_emit};

module_param!(nr_tasks: i32 = 100, 0o444);
module_param!(nr_sleeping: i32 = 0, 0o444);
module_param!(idle_ms: i32 = 1, 0o644);
module_param!(pingpong: bool = false, 0o444);

/// The most kthreads `nr_tasks` may ask for.
const MAX_TASKS: usize = 1000;
/// The version tag sits above this bit of every function's result.
pub const STRESS_VERSION_SHIFT: u32 = 16;
/// This module's functions' version.
const VERSION: u32 = 1;

/// The kthreads started: the stress and sleeping ones, then the ping-pong pair.
static TASKS: Kthreads<{ MAX_TASKS + 2 }> = Kthreads::new();
/// `/sys/kernel/test_klp_stress`.
static KOBJ: AtomicPtr<Kobject> = AtomicPtr::new(ptr::null_mut());

static CALLS: AtomicU32 = AtomicU32::new(0);
static MISMATCHES: AtomicU32 = AtomicU32::new(0);
/// Calls of an outer function of another version than this module's (the patch's).
static NEW_CALLS: AtomicU32 = AtomicU32::new(0);
static SWITCHES: AtomicU32 = AtomicU32::new(0);
static PING: Completion = Completion::new();
static PONG: Completion = Completion::new();

/// `x` tagged with `version`.
const fn tagged(version: u32, x: u32) -> u32 {
    (version << STRESS_VERSION_SHIFT) | (x & ((1 << STRESS_VERSION_SHIFT) - 1))
}

/// Counts one call of a version `version` outer function whose inner functions returned `a`
/// and `b`, and a mismatch when either is of another version. Not patched: the new
/// `stress_outer` calls it too. Returns 1 on a mismatch.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn stress_account(version: u32, a: u32, b: u32) -> i32 {
    CALLS.fetch_add(1, Ordering::Relaxed);
    if version != VERSION {
        NEW_CALLS.fetch_add(1, Ordering::Relaxed);
    }
    let bad = a >> STRESS_VERSION_SHIFT != version || b >> STRESS_VERSION_SHIFT != version;
    if bad {
        MISMATCHES.fetch_add(1, Ordering::Relaxed);
    }
    i32::from(bad)
}

/// The first inner function: `3x`, tagged with its version.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn stress_inner_a(x: u32) -> u32 {
    tagged(VERSION, x.wrapping_mul(3))
}

/// The second inner function: `x + 7`, tagged with its version.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn stress_inner_b(x: u32) -> u32 {
    tagged(VERSION, x.wrapping_add(7))
}

/// Gives up the CPU in one of three ways, by `x % 3`: `cond_resched` (runnable),
/// `msleep(1)` (uninterruptible) or `schedule_timeout_interruptible(1)`.
#[inline(always)]
fn stress_yield(x: u32) {
    match x % 3 {
        0 => {
            task::cond_resched();
        }
        1 => task::msleep(1),
        // SAFETY: no pointers.
        _ => unsafe {
            sys::schedule_timeout_interruptible(1);
        },
    }
}

/// The outer function: inner A, a sleep or a yield, inner B; both inner results are checked
/// against its own version by [`stress_account`]. Returns the sum, tagged.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn stress_outer(x: u32) -> u32 {
    let a = black_box(stress_inner_a(x));
    stress_yield(x);
    let b = black_box(stress_inner_b(x));
    stress_account(VERSION, a, b);
    tagged(VERSION, a.wrapping_add(b))
}

/// A stress kthread: calls [`stress_outer`] until stopped.
unsafe extern "C" fn stress_thread(data: *mut c_void) -> i32 {
    let mut x = data as usize as u32;
    while !task::kthread_should_stop() {
        black_box(stress_outer(x));
        task::cond_resched();
        let idle = idle_ms.get();
        if idle > 0 {
            task::msleep(idle as u32);
        }
        x = x.wrapping_add(1);
    }
    0
}

/// Sleeps a second at a time until stopped, in a function no patch changes.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn stress_idle() {
    while !task::kthread_should_stop() {
        // SAFETY: no pointers.
        unsafe { sys::schedule_timeout_interruptible(task::msecs_to_jiffies(1000)) };
    }
}

/// A sleeping kthread.
unsafe extern "C" fn sleep_thread(_data: *mut c_void) -> i32 {
    stress_idle();
    0
}

/// One of the ping-pong pair: waits for its completion, completes the other's, counts the
/// hand-over. `data` is 0 for the one that starts.
unsafe extern "C" fn pingpong_thread(data: *mut c_void) -> i32 {
    let (mine, other) = if data.is_null() {
        (&PING, &PONG)
    } else {
        (&PONG, &PING)
    };
    if data.is_null() {
        task::complete(other);
    }
    while !task::kthread_should_stop() {
        task::wait_for_completion(mine);
        SWITCHES.fetch_add(1, Ordering::Relaxed);
        task::complete(other);
    }
    // Let the other one out of its wait too.
    task::complete(other);
    0
}

/// Shows a counter.
fn show(counter: &AtomicU32, buf: *mut u8) -> isize {
    // SAFETY: `buf` is the show's page.
    unsafe { sysfs_emit!(buf, "{}\n", counter.load(Ordering::Relaxed)) }
}

unsafe extern "C" fn calls_show(_k: *mut Kobject, _a: *mut KobjAttribute, buf: *mut u8) -> isize {
    show(&CALLS, buf)
}

unsafe extern "C" fn mismatches_show(
    _k: *mut Kobject,
    _a: *mut KobjAttribute,
    buf: *mut u8,
) -> isize {
    show(&MISMATCHES, buf)
}

unsafe extern "C" fn new_calls_show(
    _k: *mut Kobject,
    _a: *mut KobjAttribute,
    buf: *mut u8,
) -> isize {
    show(&NEW_CALLS, buf)
}

unsafe extern "C" fn switches_show(
    _k: *mut Kobject,
    _a: *mut KobjAttribute,
    buf: *mut u8,
) -> isize {
    show(&SWITCHES, buf)
}

static CALLS_ATTR: KobjAttribute = KobjAttribute::ro(c"calls", calls_show);
static MISMATCHES_ATTR: KobjAttribute = KobjAttribute::ro(c"mismatches", mismatches_show);
static NEW_CALLS_ATTR: KobjAttribute = KobjAttribute::ro(c"new_calls", new_calls_show);
static SWITCHES_ATTR: KobjAttribute = KobjAttribute::ro(c"switches", switches_show);

/// Starts a kthread named `<prefix><i>`; false when it could not be created.
fn start(threadfn: task::ThreadFn, data: usize, prefix: &str, i: usize) -> bool {
    // SAFETY: `data` is a number, never dereferenced.
    unsafe { TASKS.start(threadfn, data as *mut c_void, &KthreadName::new(prefix, i)) }.is_ok()
}

/// Stops every kthread started and removes the sysfs directory.
fn stop_all() {
    TASKS.stop_all();
    // SAFETY: the kobject init made (or NULL), put once.
    unsafe { kobject::kobject_put(KOBJ.swap(ptr::null_mut(), Ordering::Relaxed)) };
}

/// Makes `/sys/kernel/test_klp_stress` with its counters.
fn create_sysfs() -> i32 {
    // SAFETY: the kernel's kobject as parent.
    let kobj =
        unsafe { kobject::kobject_create_and_add(c"test_klp_stress", kobject::kernel_kobj()) };
    if kobj.is_null() {
        return -errno::ENOMEM;
    }
    KOBJ.store(kobj, Ordering::Relaxed);
    for attr in [
        &CALLS_ATTR,
        &NEW_CALLS_ATTR,
        &MISMATCHES_ATTR,
        &SWITCHES_ATTR,
    ] {
        // SAFETY: the kobject just made; the attributes are statics.
        let ret = unsafe { kobject::sysfs_create_file(kobj, attr) };
        if ret != 0 {
            return ret;
        }
    }
    0
}

/// Starts the kthreads and the sysfs counters.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    let n = nr_tasks.get();
    let sleeping = nr_sleeping.get();
    if n < 0 || n as usize > MAX_TASKS || sleeping < 0 || sleeping > n {
        pr_err!("test_klp_stress: nr_tasks must be 0 to 1000, nr_sleeping 0 to nr_tasks");
        return -errno::EINVAL;
    }
    let ret = create_sysfs();
    if ret != 0 {
        stop_all();
        return ret;
    }
    let busy = (n - sleeping) as usize;
    for i in 0..n as usize {
        let ok = if i < busy {
            start(stress_thread, i, "klp_stress/", i)
        } else {
            start(sleep_thread, i, "klp_sleep/", i)
        };
        if !ok {
            stop_all();
            return -errno::ENOMEM;
        }
    }
    if pingpong.get()
        && !(start(pingpong_thread, 0, "klp_ping/", 0)
            && start(pingpong_thread, 1, "klp_pong/", 1))
    {
        stop_all();
        return -errno::ENOMEM;
    }
    pr_info!("test_klp_stress: tasks started");
    0
}

/// Stops the kthreads (`kthread_stop` waits for each to return).
#[unsafe(no_mangle)]
pub extern "C" fn cleanup_module() {
    stop_all();
}
