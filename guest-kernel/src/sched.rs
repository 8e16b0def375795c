//! The scheduler: its tunables and statistics (`sched_rr_timeslice_ms`, `/proc/schedstat`)
//! here, tasks, `schedule` and sleeping in the submodules.

pub mod core;
pub mod task;
pub mod timeout;

use ::core::ffi::c_void;
use ::core::fmt::Write;

use klp_abi::CtlTable;

use crate::host;
use crate::jiffies::{HZ, jiffies};
use crate::proc::proc_create;
use crate::proc::sysctl::{proc_dointvec, register_sysctl};
use crate::seq_file::SeqFile;
use crate::sync::Global;

/// Default SCHED_RR timeslice in milliseconds.
const RR_TIMESLICE_MS: i32 = 100;

/// `sysctl_sched_rr_timeslice`: the timeslice in milliseconds, as the sysctl shows it.
static SYSCTL_SCHED_RR_TIMESLICE: Global<i32> = Global::new(RR_TIMESLICE_MS);
/// `sched_rr_timeslice`: the same in jiffies, what the scheduler uses. A plain `static mut`
/// (only ever copied, never borrowed), and `#[used]` so that the optimizer keeps it one
/// symbol of this name, which a livepatch can reach.
#[used]
static mut SCHED_RR_TIMESLICE: i32 = msecs_to_jiffies(RR_TIMESLICE_MS);

/// Milliseconds to jiffies, rounding up.
const fn msecs_to_jiffies(ms: i32) -> i32 {
    (ms.wrapping_mul(HZ as i32) + 999) / 1000
}

/// The `sched_rr_timeslice_ms` handler.
///
/// **Deliberate bug (missing validity check):** Linux resets the timeslice to its default
/// when a value `<= 0` is written; this handler takes any integer and converts it in 32-bit
/// arithmetic that wraps, so after `echo 0` (or 17179869, docs/livepatch.md §8) into it the
/// timeslice is 0 jiffies and the next `cat /proc/schedstat` divides by zero: a kernel panic.
/// Fixed by `klp-fix-timeslice`, which refuses values `<= 0` and repairs the timeslice.
///
/// # Safety
///
/// As [`proc_dointvec`].
#[inline(never)]
unsafe extern "C" fn sched_rr_handler(
    table: *const CtlTable,
    write: i32,
    buffer: *mut u8,
    lenp: *mut usize,
    ppos: *mut i64,
) -> i32 {
    // SAFETY: the caller's contract.
    let ret = unsafe { proc_dointvec(table, write, buffer, lenp, ppos) };
    if ret == 0 && write != 0 {
        // SAFETY: short accesses of the two tunables.
        unsafe { SCHED_RR_TIMESLICE = msecs_to_jiffies(*SYSCTL_SCHED_RR_TIMESLICE.get()) };
    }
    ret
}

/// `/proc/sys/kernel/sched_rr_timeslice_ms`.
static SCHED_RT_SYSCTLS: [CtlTable; 1] = [CtlTable::new(
    c"sched_rr_timeslice_ms",
    SYSCTL_SCHED_RR_TIMESLICE.as_ptr().cast(),
    size_of::<i32>(),
    0o644,
    sched_rr_handler,
)];

/// Shows `/proc/schedstat` (version 15): the timestamp in jiffies and the one CPU's line,
/// whose last field counts the round-robin timeslices elapsed since boot.
#[inline(never)]
unsafe extern "C" fn show_schedstat(m: *mut SeqFile, _v: *mut c_void) -> i32 {
    // SAFETY: procfs passes the seq_file being filled.
    let m = unsafe { &mut *m };
    let now = jiffies();
    // SAFETY: a short read.
    let timeslice = i64::from(unsafe { SCHED_RR_TIMESLICE });
    let timeslices = now as i64 / timeslice;
    let _ = writeln!(m, "version 15\ntimestamp {now}");
    let _ = writeln!(m, "cpu0 0 0 0 0 0 0 {} 0 {timeslices}", host::clock_ns());
    0
}

/// Puts `init_task` into the task table, registers the scheduler's sysctl and
/// `/proc/schedstat`.
pub fn init() {
    task::sched_init();
    register_sysctl(b"kernel", &SCHED_RT_SYSCTLS);
    // /proc is empty of this name at boot.
    let _ = proc_create(b"schedstat", show_schedstat);
    // SAFETY: a short read.
    let ms = unsafe { *SYSCTL_SCHED_RR_TIMESLICE.get() };
    pr_info!("sched: RR timeslice {ms} ms, HZ={HZ}");
}
