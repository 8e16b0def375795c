//! test_klp_callbacks_demo2: pre/post (un)patch callbacks on vmlinux, without functions;
//! `replace=1` makes it an atomic replace, as Linux's selftest patch of that name.
#![no_std]

use klp_guest::livepatch::callback_info;
use klp_guest::{KlpCallbacks, KlpFunc, KlpObject, KlpPatch, klp_enable_patch, module_param};

module_param!(replace: i32 = 0, 0o644);

/// Executed on object patching (ie, patch enablement).
unsafe extern "C" fn pre_patch_callback(obj: *mut KlpObject) -> i32 {
    // SAFETY: the kernel passes the object being patched.
    unsafe { callback_info("test_klp_callbacks_demo2", "pre_patch_callback", obj) };
    0
}

/// Executed once the patching transition completed.
unsafe extern "C" fn post_patch_callback(obj: *mut KlpObject) {
    // SAFETY: the kernel passes the patched object.
    unsafe { callback_info("test_klp_callbacks_demo2", "post_patch_callback", obj) };
}

/// Executed on object unpatching (ie, patch disablement), before the transition.
unsafe extern "C" fn pre_unpatch_callback(obj: *mut KlpObject) {
    // SAFETY: the kernel passes the object being unpatched.
    unsafe { callback_info("test_klp_callbacks_demo2", "pre_unpatch_callback", obj) };
}

/// Executed once the unpatching transition completed.
unsafe extern "C" fn post_unpatch_callback(obj: *mut KlpObject) {
    // SAFETY: the kernel passes the unpatched object.
    unsafe { callback_info("test_klp_callbacks_demo2", "post_unpatch_callback", obj) };
}

static YES_FUNCS: [KlpFunc; 1] = [KlpFunc::END];
static OBJS: [KlpObject; 2] = [
    KlpObject::vmlinux(&YES_FUNCS).with_callbacks(KlpCallbacks {
        pre_patch: Some(pre_patch_callback),
        post_patch: Some(post_patch_callback),
        pre_unpatch: Some(pre_unpatch_callback),
        post_unpatch: Some(post_unpatch_callback),
    }),
    KlpObject::END,
];
/// `replace` is set in init from the parameter, as Linux's does "for demo purposes".
static mut PATCH: KlpPatch = KlpPatch::new(&OBJS);

/// Copies the `replace` parameter into the patch and enables it.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    // SAFETY: init runs once, before the patch is handed to the kernel; afterwards the
    // patch is only read.
    unsafe { PATCH.replace = u32::from(replace.get() != 0) };
    let patch = &raw const PATCH;
    // SAFETY: from here on the patch is only read.
    klp_enable_patch(unsafe { &*patch })
}

/// Nothing to undo: the livepatch core disables and frees the patch.
#[unsafe(no_mangle)]
pub extern "C" fn cleanup_module() {}

klp_guest::module_info!(livepatch, "Y");
