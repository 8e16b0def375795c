//! test_klp_callbacks_demo: pre/post (un)patch callbacks on vmlinux, test_klp_callbacks_mod and
//! test_klp_callbacks_busy, whose `pre_patch` returns `pre_patch_ret`, and a replacement of
//! `busymod_work_func`, as Linux's selftest patch of that name.
#![no_std]

use core::ffi::c_void;

use klp_guest::livepatch::callback_info;
use klp_guest::{
    KlpCallbacks, KlpFunc, KlpObject, KlpPatch, klp_enable_patch, module_param, pr_info,
};

module_param!(pre_patch_ret: i32 = 0, 0o644);

/// Executed on object patching (ie, patch enablement): returns `pre_patch_ret`.
unsafe extern "C" fn pre_patch_callback(obj: *mut KlpObject) -> i32 {
    // SAFETY: the kernel passes the object being patched.
    unsafe { callback_info("test_klp_callbacks_demo", "pre_patch_callback", obj) };
    pre_patch_ret.get()
}

/// Executed once the patching transition completed.
unsafe extern "C" fn post_patch_callback(obj: *mut KlpObject) {
    // SAFETY: the kernel passes the patched object.
    unsafe { callback_info("test_klp_callbacks_demo", "post_patch_callback", obj) };
}

/// Executed on object unpatching (ie, patch disablement), before the transition.
unsafe extern "C" fn pre_unpatch_callback(obj: *mut KlpObject) {
    // SAFETY: the kernel passes the object being unpatched.
    unsafe { callback_info("test_klp_callbacks_demo", "pre_unpatch_callback", obj) };
}

/// Executed once the unpatching transition completed.
unsafe extern "C" fn post_unpatch_callback(obj: *mut KlpObject) {
    // SAFETY: the kernel passes the unpatched object.
    unsafe { callback_info("test_klp_callbacks_demo", "post_unpatch_callback", obj) };
}

/// The replacement for `busymod_work_func`: returns at once, whatever `block_transition` says.
unsafe extern "C" fn patched_work_func(_work: *mut c_void) {
    pr_info!("test_klp_callbacks_demo: patched_work_func");
}

const CALLBACKS: KlpCallbacks = KlpCallbacks {
    pre_patch: Some(pre_patch_callback),
    post_patch: Some(post_patch_callback),
    pre_unpatch: Some(pre_unpatch_callback),
    post_unpatch: Some(post_unpatch_callback),
};

/// No function: vmlinux and test_klp_callbacks_mod are there for their callbacks.
static YES_FUNCS: [KlpFunc; 1] = [KlpFunc::END];
static BUSYMOD_FUNCS: [KlpFunc; 2] = [
    KlpFunc::new(c"busymod_work_func", patched_work_func as *const ()),
    KlpFunc::END,
];
static OBJS: [KlpObject; 4] = [
    KlpObject::vmlinux(&YES_FUNCS).with_callbacks(CALLBACKS),
    KlpObject::module(c"test_klp_callbacks_mod", &YES_FUNCS).with_callbacks(CALLBACKS),
    KlpObject::module(c"test_klp_callbacks_busy", &BUSYMOD_FUNCS).with_callbacks(CALLBACKS),
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
