//! klp_bench_target: 1000 small patchable functions `bench_fn_000` … `bench_fn_999` for the
//! benchmarks in `benches/`, and two loops the host calls through their slots.
//!
//! `bench_fn_N(x)` returns `x + N + 1`; the `test_klp_bench` patch replaces the first `funcs`
//! of them with functions returning `x + N + 1001`. Calls between a module's own functions go
//! through their slots (the loader's rule), so patching `bench_fn_000` redirects the loops.
#![no_std]

use klp_guest::pr_info;

/// One function per digit triple: `bench_fn_HTO(x) = x + HTO + 1`.
macro_rules! bench_fns {
    ($h:literal $t:literal: $($o:literal)*) => {
        $(
            const _: () = {
                #[unsafe(export_name = concat!("bench_fn_", $h, $t, $o))]
                #[inline(never)]
                extern "C" fn bench_fn(x: i32) -> i32 {
                    x.wrapping_add($h * 100 + $t * 10 + $o + 1)
                }
            };
        )*
    };
    ($h:literal: $($t:literal)*) => {
        $( bench_fns!($h $t: 0 1 2 3 4 5 6 7 8 9); )*
    };
    ($($h:literal)*) => {
        $( bench_fns!($h: 0 1 2 3 4 5 6 7 8 9); )*
    };
}

bench_fns!(0 1 2 3 4 5 6 7 8 9);

unsafe extern "C" {
    /// The first generated function (defined above, by its symbol name).
    #[link_name = "bench_fn_000"]
    safe fn bench_fn_000(x: i32) -> i32;
}

/// `n` dependent calls of `bench_fn_000` from `seed`; the last result.
#[unsafe(no_mangle)]
pub extern "C" fn klp_bench_chain(n: i32, seed: i32) -> i32 {
    let mut acc = seed;
    for _ in 0..n {
        acc = bench_fn_000(acc);
    }
    acc
}

/// Calls `bench_fn_000(i)` for `i` in `0..n` and counts the results other than `i + delta`.
#[unsafe(no_mangle)]
pub extern "C" fn klp_bench_check(n: i32, delta: i32) -> i32 {
    let mut bad = 0;
    for i in 0..n {
        if bench_fn_000(i) != i.wrapping_add(delta) {
            bad += 1;
        }
    }
    bad
}

/// Nothing to set up.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    pr_info!("klp_bench_target: init");
    0
}

/// Nothing to tear down.
#[unsafe(no_mangle)]
pub extern "C" fn cleanup_module() {}
