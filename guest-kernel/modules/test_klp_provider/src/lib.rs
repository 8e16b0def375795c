//! test_klp_provider: exports a `/proc/cmdline` show function that test_klp_provider_patch
//! installs as its replacement, so the patch's new code lives in this third module.
#![no_std]

use core::ffi::c_void;

use klp_guest::{SeqFile, seq_puts};

/// A show function with `cmdline_proc_show`'s signature.
///
/// # Safety
///
/// `m` must be the seq_file the kernel passed to the running show callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn test_klp_provider_show(m: *mut SeqFile, _v: *mut c_void) -> i32 {
    // SAFETY: the caller's contract.
    unsafe { seq_puts(m, "provided by test_klp_provider\n") };
    0
}

/// Nothing to set up.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    0
}

/// Nothing to tear down.
#[unsafe(no_mangle)]
pub extern "C" fn cleanup_module() {}

klp_guest::module_info!(description, "Exports a show function for a live patch");
