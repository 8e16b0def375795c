//! The whole kernel: a syscall-heavy loop inside the guest (`bench_syscalls`: open, read to
//! the end and close `/proc/cmdline`, then a ramfs file) on the kernel as built (no hook), the
//! instrumented kernel, and the instrumented kernel with `livepatch-sample` enabled (which
//! replaces `cmdline_proc_show`, on the path of every round). One iteration is one round.

use criterion::{Criterion, criterion_group, criterion_main};
use klp_benches::{boot, call, guest_loop_chunked, insmod};
use klp_core::engine::Callee;
use klp_wasmtime::WasmtimeEngine;

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

fn kernel(c: &mut Criterion) {
    let mut g = c.benchmark_group("kernel");
    let setups: [(&str, bool, bool); 3] = [
        ("uninstrumented", false, false),
        ("instrumented", true, false),
        ("patched", true, true),
    ];
    for (name, hook, patch) in setups {
        let mut e = boot(hook);
        if patch {
            insmod(&mut e, "livepatch-sample", "livepatch-sample", &[]);
        }
        let per_round = round_bytes(&mut e);
        g.bench_function(name, |b| {
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
