//! Panics and taint: `panic()`, a Rust panic logged as a kernel BUG that ends in a trap (the
//! host reports it as an oops); `/proc/sys/kernel/tainted`.

use core::fmt::Write;
use core::panic::PanicInfo;

use klp_abi::CtlTable;

use crate::printk::LineBuf;
use crate::proc::sysctl::{proc_dointvec, register_sysctl};
use crate::sync::Global;
use crate::uaccess::kernel_bytes;

notrace!(panic);

/// Taint bit: a livepatch module has been loaded (`K`).
pub const TAINT_LIVEPATCH: u32 = 15;

/// `tainted_mask`.
static TAINTED: Global<i32> = Global::new(0);

/// Sets a taint bit; returns whether it was newly set.
pub fn add_taint(flag: u32) -> bool {
    // SAFETY: a short access.
    let mask = unsafe { TAINTED.get() };
    let new = *mask & (1 << flag) == 0;
    *mask |= 1 << flag;
    new
}

/// `/proc/sys/kernel/tainted`: reads the mask; a write can only add bits, as `proc_taint`.
///
/// # Safety
///
/// As [`proc_dointvec`].
unsafe extern "C" fn proc_taint(
    table: *const CtlTable,
    write: i32,
    buffer: *mut u8,
    lenp: *mut usize,
    ppos: *mut i64,
) -> i32 {
    if write == 0 {
        // SAFETY: the caller's contract.
        return unsafe { proc_dointvec(table, write, buffer, lenp, ppos) };
    }
    let mut value = 0i32;
    let tmp = CtlTable::new(
        c"tainted",
        (&raw mut value).cast(),
        size_of::<i32>(),
        0o644,
        proc_dointvec,
    );
    // SAFETY: `tmp` describes `value`; the rest is the caller's contract.
    let ret = unsafe { proc_dointvec(&tmp, write, buffer, lenp, ppos) };
    if ret == 0 {
        // SAFETY: a short access.
        unsafe { *TAINTED.get() |= value };
    }
    ret
}

static TAINT_TABLE: [CtlTable; 1] = [CtlTable::new(
    c"tainted",
    TAINTED.as_ptr().cast(),
    size_of::<i32>(),
    0o644,
    proc_taint,
)];

/// Registers `/proc/sys/kernel/tainted`.
pub fn init() {
    register_sysctl(b"kernel", &TAINT_TABLE);
}

/// Logs `Kernel panic - not syncing: <msg>` at KERN_EMERG and stops the kernel with a trap;
/// the host reports the trap as an oops with a call trace.
///
/// # Safety
///
/// `msg` must point at `len` readable bytes.
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe extern "C" fn panic(msg: *const u8, len: usize) -> ! {
    // SAFETY: the caller's contract.
    let msg = unsafe { kernel_bytes(msg, len) }.escape_ascii();
    pr_emerg!("Kernel panic - not syncing: {msg}");
    // SAFETY: a short read.
    let tainted = unsafe { *TAINTED.get() };
    let (pid, comm) = crate::sched::task::task_for_report();
    let comm = comm.escape_ascii();
    if tainted & (1 << TAINT_LIVEPATCH) != 0 {
        pr_emerg!(
            "CPU: 0 UID: 0 PID: {pid} Comm: {comm} Tainted: G K {} #1",
            crate::utsname::UTS_RELEASE
        );
    } else {
        pr_emerg!(
            "CPU: 0 UID: 0 PID: {pid} Comm: {comm} Not tainted {} #1",
            crate::utsname::UTS_RELEASE
        );
    }
    pr_emerg!("---[ end Kernel panic - not syncing: {msg} ]---");
    core::arch::wasm32::unreachable()
}

/// Rust panics (a failed bounds check, a division by zero) are kernel BUGs, as in
/// Rust-for-Linux (`pr_emerg!("{info}")`, then `BUG()`): the panic is logged, then Linux's
/// `BUG()` lines, then a trap the host reports as an `invalid opcode` oops. The task dies; the
/// kernel goes on.
#[panic_handler]
fn on_panic(info: &PanicInfo<'_>) -> ! {
    let mut msg = LineBuf::<256>::new();
    let _ = write!(msg, "{}", info.message());
    match info.location() {
        Some(at) => {
            pr_emerg!(
                "rust_kernel: panicked at {}:{}:{}:",
                at.file(),
                at.line(),
                at.column()
            );
            pr_emerg!("{}", msg.as_bytes().escape_ascii());
            pr_warn!("------------[ cut here ]------------");
            pr_crit!("kernel BUG at {}:{}!", at.file(), at.line());
        }
        None => {
            pr_emerg!("rust_kernel: panicked: {}", msg.as_bytes().escape_ascii());
            pr_warn!("------------[ cut here ]------------");
        }
    }
    core::arch::wasm32::unreachable()
}
