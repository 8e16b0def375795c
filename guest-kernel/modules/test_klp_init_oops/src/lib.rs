//! test_klp_init_oops: a kernel module whose init hits a BUG (a wasm trap) halfway through
//! loading; the loader must report the oops and leave nothing behind.
#![no_std]

use klp_guest::pr_info;

/// Logs, then traps like `BUG()`.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    pr_info!("test_klp_init_oops: about to BUG()");
    core::arch::wasm32::unreachable()
}

klp_guest::module_info!(description, "Traps in init");
