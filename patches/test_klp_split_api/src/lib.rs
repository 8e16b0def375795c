//! test_klp_split_api: the 2016 API. Init only registers the patch (`enabled` reads 0);
//! `echo 1 > /sys/kernel/livepatch/test_klp_split_api/enabled` enables it; after
//! `echo 0 > .../enabled`, rmmod unregisters it.
#![no_std]

use core::ffi::c_void;

use klp_guest::{
    KlpFunc, KlpObject, KlpPatch, SeqFile, klp_register_patch, klp_unregister_patch, seq_puts,
};

/// The replacement for `version_proc_show`.
unsafe extern "C" fn livepatch_version_proc_show(m: *mut SeqFile, _v: *mut c_void) -> i32 {
    // SAFETY: `m` is the seq_file being filled.
    unsafe { seq_puts(m, "test_klp_split_api: this has been live patched\n") };
    0
}

static FUNCS: [KlpFunc; 2] = [
    KlpFunc::new(
        c"version_proc_show",
        livepatch_version_proc_show as *const (),
    ),
    KlpFunc::END,
];
static OBJS: [KlpObject; 2] = [KlpObject::vmlinux(&FUNCS), KlpObject::END];
static PATCH: KlpPatch = KlpPatch::new(&OBJS);

/// Registers the patch without enabling it.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    klp_register_patch(&PATCH)
}

/// Unregisters the (disabled) patch.
#[unsafe(no_mangle)]
pub extern "C" fn cleanup_module() {
    klp_unregister_patch(&PATCH);
}

klp_guest::module_info!(livepatch, "Y");
