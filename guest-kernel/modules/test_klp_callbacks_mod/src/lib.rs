//! test_klp_callbacks_mod: an idle target module of the callback selftests, as Linux's
//! `lib/livepatch/test_klp_callbacks_mod.c`: it only says when it comes and goes.
#![no_std]

use klp_guest::pr_info;

/// Says it is loading.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    pr_info!("test_klp_callbacks_mod: test_klp_callbacks_mod_init");
    0
}

/// Says it is going.
#[unsafe(no_mangle)]
pub extern "C" fn cleanup_module() {
    pr_info!("test_klp_callbacks_mod: test_klp_callbacks_mod_exit");
}
