//! test_klp_atomic_replace: patches `meminfo_proc_show`; with `replace=1` it atomically
//! replaces every earlier patch, as Linux's `lib/livepatch/test_klp_atomic_replace.c`.
#![no_std]

use core::ffi::c_void;

use klp_guest::{KlpFunc, KlpObject, KlpPatch, SeqFile, klp_enable_patch, module_param, seq_puts};

module_param!(replace: i32 = 0, 0o644);

/// The replacement for `meminfo_proc_show`.
unsafe extern "C" fn livepatch_meminfo_proc_show(m: *mut SeqFile, _v: *mut c_void) -> i32 {
    // SAFETY: `m` is the seq_file being filled.
    unsafe { seq_puts(m, "test_klp_atomic_replace: this has been live patched\n") };
    0
}

static FUNCS: [KlpFunc; 2] = [
    KlpFunc::new(
        c"meminfo_proc_show",
        livepatch_meminfo_proc_show as *const (),
    ),
    KlpFunc::END,
];
static OBJS: [KlpObject; 2] = [KlpObject::vmlinux(&FUNCS), KlpObject::END];
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
