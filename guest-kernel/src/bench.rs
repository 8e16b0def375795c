//! bench: loops the host's benchmarks (`benches/`) run inside the kernel, so that the time of
//! one host call is spread over many guest calls.
//!
//! `bench_target` is an ordinary traceable function: after instrumentation every call to it
//! goes through its ftrace slot, and the `test_klp_bench` patch (`vmlinux=1`) redirects it.
//! `bench_target_notrace` is the same function marked notrace, so calls to it stay direct
//! `call`s: the baseline. `bench_stub` is a hand-made entry stub (a notrace trampoline called
//! directly that calls the target through its slot), the design the hook does not use.

use crate::sync::Global;
use crate::syscalls::{sys_close, sys_open, sys_read, sys_write};

/// What `bench_target` adds; the `test_klp_bench` replacement adds [`PATCHED_DELTA`].
pub const DELTA: i32 = 3;
/// What the replacement in `test_klp_bench` adds instead (documented for the host).
#[allow(dead_code)]
pub const PATCHED_DELTA: i32 = 5;

/// The small function every dispatch kind calls: traceable, so its calls use the slot.
#[inline(never)]
pub extern "C" fn bench_target(x: i32) -> i32 {
    x.wrapping_add(DELTA)
}

/// The same function, notrace: calls to it stay direct.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn bench_target_notrace(x: i32) -> i32 {
    x.wrapping_add(DELTA)
}

/// An entry stub: called directly, it calls the target through the target's slot.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn bench_stub(x: i32) -> i32 {
    bench_target(x)
}

notrace!(bench_target_notrace, bench_stub);

/// Runs `n` dependent calls starting from `seed` and returns the last result: `kind` 0 calls
/// `bench_target_notrace` (direct), 1 `bench_target` (through its slot), 2 `bench_stub`.
/// The host checks the result: `seed + n * delta` with the delta of what the slot holds.
#[unsafe(no_mangle)]
pub extern "C" fn bench_dispatch(kind: i32, n: i32, seed: i32) -> i32 {
    let mut acc = seed;
    match kind {
        0 => {
            for _ in 0..n {
                acc = bench_target_notrace(acc);
            }
        }
        1 => {
            for _ in 0..n {
                acc = bench_target(acc);
            }
        }
        2 => {
            for _ in 0..n {
                acc = bench_stub(acc);
            }
        }
        _ => return i32::MIN,
    }
    acc
}

/// The ramfs file the syscall loop reads (created on the first call).
const RAMFS_FILE: &[u8] = b"/tmp/klp_bench";
/// Its contents.
const RAMFS_DATA: &[u8] = b"klp-wasm benchmark file: open, read, close in a loop\n";

/// Read buffer of the syscall loop.
static BUF: Global<[u8; 4096]> = Global::new([0; 4096]);

/// Opens, reads to the end and closes `path`; the bytes read, or -errno.
fn slurp(path: &[u8]) -> i32 {
    let fd = sys_open(path.as_ptr(), path.len(), 0);
    if fd < 0 {
        return fd;
    }
    let buf = BUF.as_ptr().cast::<u8>();
    let mut total = 0;
    loop {
        let n = sys_read(fd, buf, 4096);
        if n < 0 {
            sys_close(fd);
            return n;
        }
        if n == 0 {
            break;
        }
        total += n;
    }
    sys_close(fd);
    total
}

/// A syscall-heavy workload: `n` rounds of open/read/close of `/proc/cmdline` and of a ramfs
/// file. Returns the bytes read in all (the host checks it), or -errno.
#[unsafe(no_mangle)]
pub extern "C" fn bench_syscalls(n: i32) -> i32 {
    let fd = sys_open(RAMFS_FILE.as_ptr(), RAMFS_FILE.len(), 0o1101);
    if fd < 0 {
        return fd;
    }
    let written = sys_write(fd, RAMFS_DATA.as_ptr(), RAMFS_DATA.len());
    sys_close(fd);
    if written < 0 {
        return written;
    }
    let mut total: i32 = 0;
    for _ in 0..n {
        for path in [&b"/proc/cmdline"[..], RAMFS_FILE] {
            let got = slurp(path);
            if got < 0 {
                return got;
            }
            total = total.wrapping_add(got);
        }
    }
    total
}
