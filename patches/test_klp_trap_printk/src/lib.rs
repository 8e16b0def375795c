//! test_klp_trap_printk: a live patch whose replacement of `printk` traps, so enabling it oopses
//! (`show=1`: its replacement of `cmdline_proc_show` traps instead; `register_only=1`: init only
//! registers the patch, `echo 1 > .../enabled` enables it).
#![no_std]

use core::ffi::c_void;

use klp_guest::{
    KlpFunc, KlpObject, KlpPatch, SeqFile, klp_enable_patch, klp_register_patch,
    klp_unregister_patch, module_param,
};

module_param!(show: i32 = 0, 0o644);
module_param!(register_only: i32 = 0, 0o644);

/// The broken replacement for `printk`: every call is an oops.
unsafe extern "C" fn trap_printk(_msg: *const u8, _len: usize) -> i32 {
    core::arch::wasm32::unreachable()
}

/// The broken replacement for `cmdline_proc_show`: every read of /proc/cmdline is an oops.
unsafe extern "C" fn trap_cmdline_proc_show(_m: *mut SeqFile, _v: *mut c_void) -> i32 {
    core::arch::wasm32::unreachable()
}

static PRINTK_FUNCS: [KlpFunc; 2] = [
    KlpFunc::new(c"printk", trap_printk as *const ()),
    KlpFunc::END,
];
static PRINTK_OBJS: [KlpObject; 2] = [KlpObject::vmlinux(&PRINTK_FUNCS), KlpObject::END];
static PRINTK_PATCH: KlpPatch = KlpPatch::new(&PRINTK_OBJS);

static SHOW_FUNCS: [KlpFunc; 2] = [
    KlpFunc::new(c"cmdline_proc_show", trap_cmdline_proc_show as *const ()),
    KlpFunc::END,
];
static SHOW_OBJS: [KlpObject; 2] = [KlpObject::vmlinux(&SHOW_FUNCS), KlpObject::END];
static SHOW_PATCH: KlpPatch = KlpPatch::new(&SHOW_OBJS);

/// The patch `show` selects.
fn patch() -> &'static KlpPatch {
    if show.get() != 0 {
        &SHOW_PATCH
    } else {
        &PRINTK_PATCH
    }
}

/// Enables the patch, or only registers it under `register_only`.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    if register_only.get() != 0 {
        klp_register_patch(patch())
    } else {
        klp_enable_patch(patch())
    }
}

/// Unregisters a patch that init only registered; otherwise the livepatch core disables and
/// frees it.
#[unsafe(no_mangle)]
pub extern "C" fn cleanup_module() {
    if register_only.get() != 0 {
        klp_unregister_patch(patch());
    }
}

klp_guest::module_info!(livepatch, "Y");
