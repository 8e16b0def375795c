//! test_klp_init_fail: a livepatch module whose init fails before enabling anything, so
//! insmod reports `No such device` and the kernel is left as it was.
#![no_std]

use klp_guest::errno::ENODEV;
use klp_guest::pr_err;

/// Fails.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    pr_err!("test_klp_init_fail: no device to patch, failing init");
    -ENODEV
}

klp_guest::module_info!(livepatch, "Y");
