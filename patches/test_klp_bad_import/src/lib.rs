//! test_klp_bad_import: its new function calls `no_such_function`, which the kernel does
//! not export; the loader refuses the module (`Unknown symbol in module`).
#![no_std]

use core::ffi::c_void;

use klp_guest::{KlpFunc, KlpObject, KlpPatch, SeqFile, klp_enable_patch};

unsafe extern "C" {
    /// Not a kernel symbol.
    fn no_such_function(m: *mut SeqFile) -> i32;
}

/// A replacement for `cmdline_proc_show` that relies on the missing function.
unsafe extern "C" fn livepatch_cmdline_proc_show(m: *mut SeqFile, _v: *mut c_void) -> i32 {
    // SAFETY: never runs: the module cannot be loaded.
    unsafe { no_such_function(m) }
}

static FUNCS: [KlpFunc; 2] = [
    KlpFunc::new(
        c"cmdline_proc_show",
        livepatch_cmdline_proc_show as *const (),
    ),
    KlpFunc::END,
];
static OBJS: [KlpObject; 2] = [KlpObject::vmlinux(&FUNCS), KlpObject::END];
static PATCH: KlpPatch = KlpPatch::new(&OBJS);

/// Enables the patch (never reached).
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    klp_enable_patch(&PATCH)
}

klp_guest::module_info!(livepatch, "Y");
