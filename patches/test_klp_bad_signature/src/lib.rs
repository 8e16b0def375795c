//! test_klp_bad_signature: replaces `cmdline_proc_show` (a show callback taking two
//! pointers) with a function taking none; the core refuses a new function whose type differs.
#![no_std]

use klp_guest::{KlpFunc, KlpObject, KlpPatch, klp_enable_patch};

/// A "replacement" of the wrong type, `() -> i32`.
extern "C" fn livepatch_cmdline_proc_show() -> i32 {
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

/// Tries to enable the patch.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    klp_enable_patch(&PATCH)
}

klp_guest::module_info!(livepatch, "Y");
