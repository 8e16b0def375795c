//! test_klp_notrace: targets `do_one_initcall`, which the kernel marks notrace (it is in
//! the `klp.notrace` section); only traceable functions can be patched, so enabling fails.
#![no_std]

use klp_guest::{KlpFunc, KlpObject, KlpPatch, klp_enable_patch};

/// A replacement for `do_one_initcall` with its type.
extern "C" fn livepatch_do_one_initcall(_init: usize) -> i32 {
    0
}

static FUNCS: [KlpFunc; 2] = [
    KlpFunc::new(c"do_one_initcall", livepatch_do_one_initcall as *const ()),
    KlpFunc::END,
];
static OBJS: [KlpObject; 2] = [KlpObject::vmlinux(&FUNCS), KlpObject::END];
static PATCH: KlpPatch = KlpPatch::new(&OBJS);

/// Tries to enable the patch.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    klp_enable_patch(&PATCH)
}

klp_guest::module_info!(livepatch, "Y");
