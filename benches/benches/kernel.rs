//! The whole kernel: a syscall-heavy loop inside the guest (`bench_syscalls`: open, read to
//! the end and close `/proc/cmdline`, then a ramfs file). One iteration is one round. Setups,
//! all with tasks and without Cranelift's inliner:
//!
//! * `uninstrumented`: the kernel as built (no instrumentation pass);
//! * `plain`: instrumented, dynamic ftrace (the default), no hook: the plain variant runs;
//! * `full`: instrumented, `--ftrace=always`: every call through its slot;
//! * `full-dynamic`: dynamic, no hook, the full variant swapped in by hand (as between a first
//!   hook and its selective variant): `full`'s code over state imported from the state
//!   module, as every dynamic variant has it (against `full`: what the split costs);
//! * `patched-dynamic`: dynamic, `livepatch-sample` enabled (it replaces `cmdline_proc_show`,
//!   on the path of every round), once the selective variant is compiled and swapped in;
//! * `patched-always`: the same patch on the `full` kernel.
//!
//! Then the same kernel without tasks and with the inliner (`no_tasks`, `inlining`: wasmtime
//! cannot inline with stack switching): `uninstrumented-inline`, `plain-inline`, `full-inline`.

use criterion::{Criterion, criterion_group, criterion_main};
use klp_benches::{always, boot_with, call, guest_loop_chunked, insmod, settle};
use klp_core::engine::{Callee, Engine};
use klp_core::ftrace::code::Mode;
use klp_core::ftrace::code::{boot_key, code_key};
use klp_passes::instrument::Variant;
use klp_wasmtime::{Options, WasmtimeEngine};

/// The ramfs file's contents (`RAMFS_DATA` in guest-kernel/src/bench.rs).
const RAMFS_LEN: i32 = 53;

/// Bytes one round reads: `/proc/cmdline` as this kernel shows it, and the ramfs file.
fn round_bytes(e: &mut WasmtimeEngine) -> i32 {
    let cmdline = klp_core::fs::read_file(e, "/proc/cmdline").expect("/proc/cmdline");
    cmdline.len() as i32 + RAMFS_LEN
}

fn rounds(e: &mut WasmtimeEngine, per_round: i32, iters: u64) -> std::time::Duration {
    // At most 2^20 rounds per call, so the byte count stays within an i32.
    guest_loop_chunked(
        iters,
        1 << 20,
        |n, _| call(e, Callee::Export("bench_syscalls"), &[n]),
        |n, _| n.wrapping_mul(per_round),
    )
}

/// One kernel of the group.
struct Setup {
    name: &'static str,
    /// Whether the instrumentation pass runs.
    hook: bool,
    options: Options,
    /// Whether `livepatch-sample` is loaded (and enabled) before measuring.
    patch: bool,
    /// Whether the full variant is swapped in by hand (dynamic mode, no hook).
    swap_full: bool,
    /// The code variant `dyn_ftrace_total_info` must name while measuring (instrumented only).
    variant: Option<&'static str>,
}

fn setups() -> Vec<Setup> {
    let inline = Options {
        no_tasks: true,
        inlining: true,
        ..Options::default()
    };
    let inline_always = Options {
        ftrace: Mode::Always,
        ..inline.clone()
    };
    let setup = |name, hook, options, patch, variant| Setup {
        name,
        hook,
        options,
        patch,
        swap_full: false,
        variant,
    };
    vec![
        setup("uninstrumented", false, Options::default(), false, None),
        setup("plain", true, Options::default(), false, Some("plain")),
        setup("full", true, always(), false, Some("full")),
        Setup {
            swap_full: true,
            ..setup(
                "full-dynamic",
                true,
                Options::default(),
                false,
                Some("plain"),
            )
        },
        setup(
            "patched-dynamic",
            true,
            Options::default(),
            true,
            Some("selective"),
        ),
        setup("patched-always", true, always(), true, Some("full")),
        setup("uninstrumented-inline", false, inline.clone(), false, None),
        setup("plain-inline", true, inline, false, Some("plain")),
        setup("full-inline", true, inline_always, false, Some("full")),
    ]
}

fn kernel(c: &mut Criterion) {
    let mut g = c.benchmark_group("kernel");
    for s in setups() {
        let mut e = boot_with(s.hook, s.options);
        if s.patch {
            insmod(&mut e, "livepatch-sample", "livepatch-sample", &[]);
        }
        // The background compile done and swapped in: the variant that runs from now on.
        let running = settle(&mut e);
        if let Some(want) = s.variant {
            assert_eq!(running, want, "{}: the code variant", s.name);
        }
        if s.swap_full {
            // The core still counts the plain variant as running (no hook wants another), so
            // re-applying the slots swaps nothing back.
            e.swap_code(code_key(&Variant::Full)).expect("swap to full");
            klp_core::ftrace::sync_all(&mut e).expect("slots written again");
            let current = e.with_state(|s| s.code.as_ref().map(|c| c.current_key()));
            assert_eq!(current, Some(boot_key(&Variant::Plain)));
        }
        let per_round = round_bytes(&mut e);
        g.bench_function(s.name, |b| {
            b.iter_custom(|iters| rounds(&mut e, per_round, iters));
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = klp_benches::criterion();
    targets = kernel
}
criterion_main!(benches);
