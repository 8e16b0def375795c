//! test_klp_bad_symbol: a patch whose target does not exist; enabling fails with
//! `livepatch: symbol 'no_such_symbol' not found in symbol table`.
#![no_std]

use core::ffi::c_void;

use klp_guest::{KlpFunc, KlpObject, KlpPatch, SeqFile, klp_enable_patch, seq_puts};

/// The replacement for `no_such_symbol`.
unsafe extern "C" fn livepatch_no_such_symbol(m: *mut SeqFile, _v: *mut c_void) -> i32 {
    // SAFETY: `m` is the seq_file being filled.
    unsafe { seq_puts(m, "test_klp_bad_symbol: this must never be shown\n") };
    0
}

static FUNCS: [KlpFunc; 2] = [
    KlpFunc::new(c"no_such_symbol", livepatch_no_such_symbol as *const ()),
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
