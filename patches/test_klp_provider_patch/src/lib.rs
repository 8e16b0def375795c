//! test_klp_provider_patch: a live patch whose replacement of `cmdline_proc_show` is a function
//! of another module, test_klp_provider; while the patch is enabled that module is in use.
#![no_std]

use core::ffi::c_void;

use klp_guest::{KlpFunc, KlpObject, KlpPatch, SeqFile, klp_enable_patch};

unsafe extern "C" {
    /// test_klp_provider's show function.
    fn test_klp_provider_show(m: *mut SeqFile, v: *mut c_void) -> i32;
}

static FUNCS: [KlpFunc; 2] = [
    KlpFunc::new(c"cmdline_proc_show", test_klp_provider_show as *const ()),
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
