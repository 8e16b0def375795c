//! test_klp_callbacks_demo: replaces `busymod_work_func` of the module
//! `test_klp_callbacks_busy`, as Linux's selftest patch of that name.
//!
//! Linux's version also has pre/post (un)patch callbacks on vmlinux, test_klp_callbacks_mod
//! and test_klp_callbacks_busy, whose `pre_patch` returns `pre_patch_ret`. Callbacks come in a
//! later issue: the parameter is kept so that the selftests' command lines load, and the
//! objects without functions (there only for their callbacks) are left out until then.
#![no_std]

use core::ffi::c_void;

use klp_guest::{KlpFunc, KlpObject, KlpPatch, klp_enable_patch, module_param, pr_info};

module_param!(pre_patch_ret: i32 = 0, 0o644);

/// The replacement for `busymod_work_func`: returns at once, whatever `block_transition` says.
unsafe extern "C" fn patched_work_func(_work: *mut c_void) {
    pr_info!("test_klp_callbacks_demo: patched_work_func");
}

static BUSYMOD_FUNCS: [KlpFunc; 2] = [
    KlpFunc::new(c"busymod_work_func", patched_work_func as *const ()),
    KlpFunc::END,
];
static OBJS: [KlpObject; 2] = [
    KlpObject::module(c"test_klp_callbacks_busy", &BUSYMOD_FUNCS),
    KlpObject::END,
];
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
