//! test_klp_lockup_patch: a live patch whose replacement of `cmdline_proc_show` spins forever;
//! reading /proc/cmdline locks up until the patch is disabled.
#![no_std]

use core::ffi::c_void;

use klp_guest::{KlpFunc, KlpObject, KlpPatch, SeqFile, klp_enable_patch};

/// The broken replacement for `cmdline_proc_show`: it waits for something that never comes.
unsafe extern "C" fn lockup_cmdline_proc_show(_m: *mut SeqFile, _v: *mut c_void) -> i32 {
    loop {
        core::hint::spin_loop();
    }
}

static FUNCS: [KlpFunc; 2] = [
    KlpFunc::new(c"cmdline_proc_show", lockup_cmdline_proc_show as *const ()),
    KlpFunc::END,
];
static OBJS: [KlpObject; 2] = [KlpObject::vmlinux(&FUNCS), KlpObject::END];
static PATCH: KlpPatch = KlpPatch::new(&OBJS);

/// Enables the patch.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    klp_enable_patch(&PATCH)
}

/// Nothing to undo: the livepatch core disables and frees the patch.
#[unsafe(no_mangle)]
pub extern "C" fn cleanup_module() {}

klp_guest::module_info!(livepatch, "Y");
