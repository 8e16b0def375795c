//! test_klp_mod_target: a kernel module with `/proc/test_klp_mod_target`, the target of the
//! `test_klp_mod_patch` livepatch (a patch for an object that is a module, not vmlinux).
#![no_std]

use core::ffi::c_void;

use klp_guest::{SeqFile, pr_info, proc_create_single, remove_proc_entry, seq_puts};

/// Shows the module's original output; `test_klp_mod_patch` replaces it.
#[inline(never)]
unsafe extern "C" fn test_klp_mod_target_proc_show(m: *mut SeqFile, _v: *mut c_void) -> i32 {
    // SAFETY: `m` is the seq_file being filled.
    unsafe { seq_puts(m, "test_klp_mod_target: original output\n") };
    0
}

/// Creates `/proc/test_klp_mod_target`.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    pr_info!("test_klp_mod_target: init");
    proc_create_single("test_klp_mod_target", test_klp_mod_target_proc_show)
}

/// Removes `/proc/test_klp_mod_target`.
#[unsafe(no_mangle)]
pub extern "C" fn cleanup_module() {
    remove_proc_entry("test_klp_mod_target");
    pr_info!("test_klp_mod_target: exit");
}
