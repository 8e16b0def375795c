//! klp-fix-timeslice: fixes the missing validity check in the kernel's `sched_rr_handler`:
//! a timeslice of 0 or less is refused with `EINVAL` instead of making `/proc/schedstat`
//! divide by zero.
//!
//! The replacement needs the kernel's *local* symbols, reached through `.klp.sym`
//! relocations as in Linux's livepatch module format: the sysctl integer parser
//! `parse_int` (there are two local functions of that name; the sysctl one is the second
//! in kallsyms order, hence sympos 2) and the two `static` tunables.
#![no_std]

use klp_guest::errno::EINVAL;
use klp_guest::{CtlTable, KlpFunc, KlpObject, KlpPatch, klp_enable_patch, sys::proc_dointvec};

/// Timer ticks per second of this kernel.
const HZ: i32 = 250;
/// The default timeslice in milliseconds, `RR_TIMESLICE` in Linux.
const RR_TIMESLICE_MS: i32 = 100;

unsafe extern "C" {
    /// `proc/sysctl.rs`: parses one integer, returns the bytes used or -EINVAL.
    #[link_name = ".klp.sym.vmlinux.parse_int,2"]
    fn parse_int(buf: *const u8, len: usize, val: *mut i32) -> i32;
    /// `sched.rs`: the timeslice in milliseconds, as the sysctl shows it.
    #[link_name = ".klp.sym.vmlinux.SYSCTL_SCHED_RR_TIMESLICE,0"]
    static mut SYSCTL_SCHED_RR_TIMESLICE: i32;
    /// `sched.rs`: the timeslice in jiffies, what `/proc/schedstat` divides by.
    #[link_name = ".klp.sym.vmlinux.SCHED_RR_TIMESLICE,0"]
    static mut SCHED_RR_TIMESLICE: i32;
}

/// `sched_rr_handler` that refuses values `<= 0`.
unsafe extern "C" fn livepatch_sched_rr_handler(
    table: *const CtlTable,
    write: i32,
    buffer: *mut u8,
    lenp: *mut usize,
    ppos: *mut i64,
) -> i32 {
    if write == 0 {
        // SAFETY: the kernel's arguments, passed on.
        return unsafe { proc_dointvec(table, write, buffer, lenp, ppos) };
    }
    let mut ms = 0;
    // SAFETY: `buffer` holds `*lenp` bytes.
    let used = unsafe { parse_int(buffer, *lenp, &mut ms) };
    if used < 0 {
        return used;
    }
    if ms <= 0 {
        return -EINVAL;
    }
    // SAFETY: plain stores into the kernel's tunables; `ppos` and `lenp` are valid.
    unsafe {
        SYSCTL_SCHED_RR_TIMESLICE = ms;
        SCHED_RR_TIMESLICE = (ms.saturating_mul(HZ) / 1000).max(1);
        *ppos += *lenp as i64;
    }
    0
}

static FUNCS: [KlpFunc; 2] = [
    KlpFunc::new(c"sched_rr_handler", livepatch_sched_rr_handler as *const ()),
    KlpFunc::END,
];
static OBJS: [KlpObject; 2] = [KlpObject::vmlinux(&FUNCS), KlpObject::END];
static PATCH: KlpPatch = KlpPatch::new(&OBJS);

/// Enables the fix, then repairs a timeslice the bug already let through: a value of 0 or
/// less, or one whose conversion to jiffies wrapped to 0 or less (17179869 ms and more), is
/// reset to the default, as Linux's `sched_rr_handler` does for values `<= 0`.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    let ret = klp_enable_patch(&PATCH);
    // SAFETY: plain loads and stores of the kernel's tunables; the kernel is single-threaded.
    unsafe {
        if ret == 0 && (SYSCTL_SCHED_RR_TIMESLICE <= 0 || SCHED_RR_TIMESLICE <= 0) {
            SYSCTL_SCHED_RR_TIMESLICE = RR_TIMESLICE_MS;
            SCHED_RR_TIMESLICE = RR_TIMESLICE_MS * HZ / 1000;
        }
    }
    ret
}

/// Nothing to undo: the livepatch core disables and frees the patch.
#[unsafe(no_mangle)]
pub extern "C" fn cleanup_module() {}

klp_guest::module_info!(livepatch, "Y");
