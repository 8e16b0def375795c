//! /proc/meminfo: memory numbers in Linux's `Label:   12345 kB` format.

use core::ffi::c_void;
use core::fmt::Write;

use crate::mm;
use crate::seq_file::SeqFile;
use crate::vfs;

/// One line: the label padded to 16 columns, the value in kB right-aligned in 8.
fn show_val_kb(m: &mut SeqFile, label: &str, bytes: usize) {
    let _ = writeln!(m, "{label:<16}{:>8} kB", bytes >> 10);
}

/// Shows the memory counters, as Linux's `meminfo_proc_show`.
#[inline(never)]
pub(super) unsafe extern "C" fn meminfo_proc_show(m: *mut SeqFile, _v: *mut c_void) -> i32 {
    // SAFETY: procfs passes the seq_file being filled.
    let m = unsafe { &mut *m };
    let stats = mm::stats();
    let cached = vfs::ramfs_pages_bytes();
    show_val_kb(m, "MemTotal:", stats.total);
    show_val_kb(m, "MemFree:", stats.free);
    show_val_kb(m, "MemAvailable:", stats.free);
    show_val_kb(m, "Buffers:", 0);
    show_val_kb(m, "Cached:", cached);
    show_val_kb(m, "Slab:", stats.slab.saturating_sub(cached));
    show_val_kb(m, "KernelStack:", stats.kernel_stack);
    show_val_kb(m, "KernelData:", stats.kernel_data);
    0
}
