//! test_klp_bench: the benchmarks' livepatch. `insmod test_klp_bench funcs=N` replaces
//! `bench_fn_000` … `bench_fn_{N-1}` of the module `klp_bench_target` (0 ≤ N ≤ 1000);
//! `vmlinux=1` also replaces the kernel's `bench_target`. Loaded under several module names
//! it stacks several patches on the same functions (one func_stack entry each). It uses the 2016
//! API (register, then enable), so that the benchmarks can disable and enable it again through
//! sysfs (a patch `klp_enable_patch()` registered alone is freed once disabled).
#![no_std]

use core::ptr;

use klp_guest::errno::EINVAL;
use klp_guest::{KlpCallbacks, KlpFunc, KlpObject, KlpPatch, module_param};

module_param!(funcs: i32 = 1, 0o444);
module_param!(vmlinux: i32 = 0, 0o444);

/// The most functions one patch replaces.
const MAX_FUNCS: usize = 1000;

/// One replacement per digit triple: `bench_fn_HTO(x) = x + HTO + 1` becomes `x + HTO + 1001`.
macro_rules! func {
    ($h:literal $t:literal $o:literal) => {{
        #[unsafe(export_name = concat!("livepatch_bench_fn_", $h, $t, $o))]
        extern "C" fn livepatch_bench_fn(x: i32) -> i32 {
            x.wrapping_add($h * 100 + $t * 10 + $o + 1001)
        }
        KlpFunc {
            old_name: concat!("bench_fn_", $h, $t, $o, "\0").as_ptr(),
            new_func: livepatch_bench_fn as *const (),
            old_sympos: 0,
        }
    }};
}

macro_rules! funcs {
    ($h:literal $t:literal) => {
        [
            func!($h $t 0), func!($h $t 1), func!($h $t 2), func!($h $t 3), func!($h $t 4),
            func!($h $t 5), func!($h $t 6), func!($h $t 7), func!($h $t 8), func!($h $t 9),
        ]
    };
    ($h:literal) => {
        [
            funcs!($h 0), funcs!($h 1), funcs!($h 2), funcs!($h 3), funcs!($h 4),
            funcs!($h 5), funcs!($h 6), funcs!($h 7), funcs!($h 8), funcs!($h 9),
        ]
    };
}

/// The 1000 entries in index order, then room for the terminator.
#[repr(C)]
struct Funcs {
    funcs: [[[KlpFunc; 10]; 10]; 10],
    end: KlpFunc,
}

static mut FUNCS: Funcs = Funcs {
    funcs: [
        funcs!(0),
        funcs!(1),
        funcs!(2),
        funcs!(3),
        funcs!(4),
        funcs!(5),
        funcs!(6),
        funcs!(7),
        funcs!(8),
        funcs!(9),
    ],
    end: KlpFunc::END,
};

/// The replacement of the kernel's `bench_target(x) = x + 3`.
extern "C" fn livepatch_bench_target(x: i32) -> i32 {
    x.wrapping_add(5)
}

static KFUNCS: [KlpFunc; 2] = [
    KlpFunc::new(c"bench_target", livepatch_bench_target as *const ()),
    KlpFunc::END,
];

static mut OBJS: [KlpObject; 3] = [KlpObject::END, KlpObject::END, KlpObject::END];
static mut PATCH: KlpPatch = KlpPatch {
    objs: ptr::null(),
    replace: 0,
    states: ptr::null(),
};

/// Cuts the function list at `funcs`, builds the object list and enables the patch.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    let n = funcs.get();
    if !(0..=MAX_FUNCS as i32).contains(&n) {
        return -EINVAL;
    }
    // SAFETY: init runs once, before anything reads these statics; the guest is single-threaded.
    unsafe {
        let list = (&raw mut FUNCS).cast::<KlpFunc>();
        list.add(n as usize).write(KlpFunc::END);
        let objs = (&raw mut OBJS).cast::<KlpObject>();
        let mut i = 0;
        if vmlinux.get() != 0 {
            objs.add(i).write(KlpObject::vmlinux(&KFUNCS));
            i += 1;
        }
        if n > 0 {
            objs.add(i).write(KlpObject {
                name: c"klp_bench_target".as_ptr().cast(),
                funcs: list,
                callbacks: KlpCallbacks::NONE,
            });
            i += 1;
        }
        if i == 0 {
            return -EINVAL;
        }
        (&raw mut PATCH).write(KlpPatch {
            objs,
            replace: 0,
            states: ptr::null(),
        });
        match klp_guest::sys::klp_register_patch(&raw const PATCH) {
            0 => klp_guest::sys::klp_enable_patch(&raw const PATCH),
            err => err,
        }
    }
}

/// Unregisters the (disabled) patch.
#[unsafe(no_mangle)]
pub extern "C" fn cleanup_module() {
    // SAFETY: the patch init registered, only read from here on.
    unsafe { klp_guest::sys::klp_unregister_patch(&raw const PATCH) };
}

klp_guest::module_info!(livepatch, "Y");
