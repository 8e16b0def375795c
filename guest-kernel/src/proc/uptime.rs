//! /proc/uptime: seconds since boot and seconds the CPU spent idle.

use core::ffi::c_void;
use core::fmt::Write;

use crate::host;
use crate::seq_file::SeqFile;

/// Shows `uptime idle` with two decimals. The one CPU idles whenever the host is not
/// calling into the kernel, which is nearly always, so idle time is the uptime.
#[inline(never)]
pub(super) unsafe extern "C" fn uptime_proc_show(m: *mut SeqFile, _v: *mut c_void) -> i32 {
    // SAFETY: procfs passes the seq_file being filled.
    let m = unsafe { &mut *m };
    let centis = host::clock_ns() / 10_000_000;
    let (secs, frac) = (centis / 100, centis % 100);
    let _ = writeln!(m, "{secs}.{frac:02} {secs}.{frac:02}");
    0
}
