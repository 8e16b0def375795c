//! /proc/version: the kernel banner, built from the running kernel's utsname.

use core::ffi::c_void;

use crate::init::{LINUX_COMPILE_BY, LINUX_COMPILER};
use crate::seq_file::SeqFile;
use crate::utsname::{Field, utsname_field};

/// Shows `<sysname> version <release> (<by>) (<compiler>) <version>`, as Linux's
/// `version_proc_show` with `linux_proc_banner`.
#[inline(never)]
pub(super) unsafe extern "C" fn version_proc_show(m: *mut SeqFile, _v: *mut c_void) -> i32 {
    // SAFETY: procfs passes the seq_file being filled.
    let m = unsafe { &mut *m };
    m.puts(&utsname_field(Field::Sysname));
    m.puts(b" version ");
    m.puts(&utsname_field(Field::Release));
    m.puts(b" (");
    m.puts(LINUX_COMPILE_BY.as_bytes());
    m.puts(b") (");
    m.puts(LINUX_COMPILER.as_bytes());
    m.puts(b") ");
    m.puts(&utsname_field(Field::Version));
    m.puts(b"\n");
    0
}
