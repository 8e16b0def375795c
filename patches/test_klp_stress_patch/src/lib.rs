//! test_klp_stress_patch: replaces `stress_outer`, `stress_inner_a` and `stress_inner_b` of the
//! module `test_klp_stress` with version 2 of each (same results, another version tag).
//!
//! It uses the 2016 API (register, then enable): the stress test enables and disables it
//! thousands of times through sysfs, which needs a disabled patch to stay registered (a patch
//! `klp_enable_patch()` registered alone is freed once disabled, as in today's kernel).
//!
//! `cross=Y` is a deliberately broken patch for the stress test's sanity check: the new
//! `stress_inner_b` returns the old version's tag, so every call of the new `stress_outer`
//! counts a mismatch, proving that the checker sees one.
#![no_std]

use core::hint::black_box;

use klp_guest::task::{self, sys};
use klp_guest::{
    KlpFunc, KlpObject, KlpPatch, klp_enable_patch, klp_register_patch, klp_unregister_patch,
    module_param,
};

module_param!(cross: bool = false, 0o444);

/// The version tag sits above this bit (test_klp_stress's `STRESS_VERSION_SHIFT`).
const SHIFT: u32 = 16;
/// The version of these functions.
const VERSION: u32 = 2;
/// The version of the module's own functions.
const OLD_VERSION: u32 = 1;

unsafe extern "C" {
    /// test_klp_stress's counter of calls and mismatches (exported, not patched).
    fn stress_account(version: u32, a: u32, b: u32) -> i32;
}

/// `x` tagged with `version`.
const fn tagged(version: u32, x: u32) -> u32 {
    (version << SHIFT) | (x & ((1 << SHIFT) - 1))
}

/// The new `stress_inner_a`: `3x`, version 2.
#[inline(never)]
extern "C" fn livepatch_stress_inner_a(x: u32) -> u32 {
    tagged(VERSION, x.wrapping_mul(3))
}

/// The new `stress_inner_b`: `x + 7`, version 2 (version 1 with `cross=Y`).
#[inline(never)]
extern "C" fn livepatch_stress_inner_b(x: u32) -> u32 {
    let version = if cross.get() { OLD_VERSION } else { VERSION };
    tagged(version, x.wrapping_add(7))
}

/// The new `stress_outer`: as the old one, checking for version 2. It calls the inner
/// functions by their original names, through their slots, as a patched C function calls the
/// functions it does not replace: the livepatch redirects them.
#[inline(never)]
extern "C" fn livepatch_stress_outer(x: u32) -> u32 {
    unsafe extern "C" {
        fn stress_inner_a(x: u32) -> u32;
        fn stress_inner_b(x: u32) -> u32;
    }
    // SAFETY: test_klp_stress's exported functions, no pointers.
    let a = black_box(unsafe { stress_inner_a(x) });
    match x % 3 {
        0 => {
            task::cond_resched();
        }
        1 => task::msleep(1),
        // SAFETY: no pointers.
        _ => unsafe {
            sys::schedule_timeout_interruptible(1);
        },
    }
    // SAFETY: as above.
    let b = black_box(unsafe { stress_inner_b(x) });
    // SAFETY: no pointers.
    unsafe { stress_account(VERSION, a, b) };
    tagged(VERSION, a.wrapping_add(b))
}

static FUNCS: [KlpFunc; 4] = [
    KlpFunc::new(c"stress_outer", livepatch_stress_outer as *const ()),
    KlpFunc::new(c"stress_inner_a", livepatch_stress_inner_a as *const ()),
    KlpFunc::new(c"stress_inner_b", livepatch_stress_inner_b as *const ()),
    KlpFunc::END,
];
static OBJS: [KlpObject; 2] = [
    KlpObject::module(c"test_klp_stress", &FUNCS),
    KlpObject::END,
];
static PATCH: KlpPatch = KlpPatch::new(&OBJS);

/// Registers the patch and enables it (the 2016 API's two steps).
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    match klp_register_patch(&PATCH) {
        0 => klp_enable_patch(&PATCH),
        err => err,
    }
}

/// Unregisters the (disabled) patch.
#[unsafe(no_mangle)]
pub extern "C" fn cleanup_module() {
    klp_unregister_patch(&PATCH);
}

klp_guest::module_info!(livepatch, "Y");
