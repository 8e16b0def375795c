//! hello: a kernel module that logs a line when it is loaded and when it is unloaded.
#![no_std]

use klp_guest::pr_info;

/// Logs the greeting.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    pr_info!("hello: module loaded");
    0
}

/// Logs the farewell.
#[unsafe(no_mangle)]
pub extern "C" fn cleanup_module() {
    pr_info!("hello: module unloaded");
}

klp_guest::module_info!(description, "Greets on load and unload");
