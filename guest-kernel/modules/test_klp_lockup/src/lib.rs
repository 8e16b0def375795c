//! test_klp_lockup: a kernel module that spins forever in its init (`in_init=1`) or its exit
//! (`in_exit=1`); the watchdog must interrupt it and the kernel go on.
#![no_std]

use klp_guest::{module_param, pr_info};

module_param!(in_init: i32 = 0, 0o644);
module_param!(in_exit: i32 = 0, 0o644);

/// Spins without ever returning, like a driver waiting for hardware that never answers.
fn spin() -> ! {
    loop {
        core::hint::spin_loop();
    }
}

/// Logs, then spins if `in_init` says so.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    pr_info!("test_klp_lockup: loaded");
    if in_init.get() != 0 {
        spin();
    }
    0
}

/// Spins if `in_exit` says so, else logs.
#[unsafe(no_mangle)]
pub extern "C" fn cleanup_module() {
    if in_exit.get() != 0 {
        spin();
    }
    pr_info!("test_klp_lockup: unloaded");
}

klp_guest::module_info!(description, "Spins in init or exit");
