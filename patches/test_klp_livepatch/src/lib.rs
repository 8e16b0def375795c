//! test_klp_livepatch: the selftest patch of `cmdline_proc_show`, as Linux's
//! `lib/livepatch/test_klp_livepatch.c`.
#![no_std]

use core::ffi::c_void;

use klp_guest::{KlpFunc, KlpObject, KlpPatch, SeqFile, klp_enable_patch, seq_puts};

/// The replacement for `cmdline_proc_show`.
unsafe extern "C" fn livepatch_cmdline_proc_show(m: *mut SeqFile, _v: *mut c_void) -> i32 {
    // SAFETY: `m` is the seq_file being filled.
    unsafe { seq_puts(m, "test_klp_livepatch: this has been live patched\n") };
    0
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

/// Enables the patch.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    klp_enable_patch(&PATCH)
}

/// Nothing to undo: the livepatch core disables and frees the patch.
#[unsafe(no_mangle)]
pub extern "C" fn cleanup_module() {}

klp_guest::module_info!(livepatch, "Y");
