//! /proc/cmdline: the command line the kernel booted with.

use core::ffi::c_void;

use crate::init::saved_command_line;
use crate::seq_file::SeqFile;

/// Shows the saved command line, as Linux's `cmdline_proc_show`.
#[inline(never)]
pub(super) unsafe extern "C" fn cmdline_proc_show(m: *mut SeqFile, _v: *mut c_void) -> i32 {
    // SAFETY: procfs passes the seq_file being filled.
    let m = unsafe { &mut *m };
    m.puts(saved_command_line());
    m.puts(b"\n");
    0
}
