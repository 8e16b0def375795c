//! test_klp_self_del: a live patch module that calls the kernel's `module_del` on itself before
//! `klp_enable_patch` (or after it and fails, `after_enable=1`); nothing may stay redirected into it.
#![no_std]

use core::ffi::c_void;

use klp_guest::{
    KlpFunc, KlpObject, KlpPatch, SeqFile, errno, klp_enable_patch, module_param, seq_puts,
};

module_param!(after_enable: i32 = 0, 0o644);

unsafe extern "C" {
    /// The kernel's removal of a module from the module list.
    fn module_del(name: *const u8, len: usize) -> i32;
}

/// The replacement for `cmdline_proc_show`.
unsafe extern "C" fn self_del_cmdline_proc_show(m: *mut SeqFile, _v: *mut c_void) -> i32 {
    // SAFETY: `m` is the seq_file being filled.
    unsafe { seq_puts(m, "patched by a module that removed itself\n") };
    0
}

static FUNCS: [KlpFunc; 2] = [
    KlpFunc::new(c"cmdline_proc_show", self_del_cmdline_proc_show as *const ()),
    KlpFunc::END,
];
static OBJS: [KlpObject; 2] = [KlpObject::vmlinux(&FUNCS), KlpObject::END];
static PATCH: KlpPatch = KlpPatch::new(&OBJS);

/// Removes this module from the module list.
fn del_self() {
    let name = b"test_klp_self_del";
    // SAFETY: a live byte string.
    unsafe { module_del(name.as_ptr(), name.len()) };
}

/// Removes this module from the module list, then enables the patch; with `after_enable`,
/// enables it, removes the module and fails.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    if after_enable.get() == 0 {
        del_self();
        return klp_enable_patch(&PATCH);
    }
    klp_enable_patch(&PATCH);
    del_self();
    -errno::EINVAL
}

/// Nothing to undo: the livepatch core disables and frees the patch.
#[unsafe(no_mangle)]
pub extern "C" fn cleanup_module() {}

klp_guest::module_info!(livepatch, "Y");
