//! Panics and taint: `panic()`, a Rust panic logged as a kernel BUG that ends in a trap (the
//! host reports it as an oops); `/proc/sys/kernel/tainted`.

use core::fmt::{self, Write};
use core::panic::{Location, PanicInfo};

use klp_abi::CtlTable;

use crate::printk::LineBuf;
use crate::proc::sysctl::{proc_dointvec, register_sysctl};
use crate::sync::Global;
use crate::uaccess::kernel_bytes;

notrace!(panic);

/// Taint bit: a `WARN()` has fired (`W`).
pub const TAINT_WARN: u32 = 9;
/// Taint bit: a livepatch module has been loaded (`K`).
pub const TAINT_LIVEPATCH: u32 = 15;

/// `taint_flags`: the letter of each taint bit this kernel sets, as `print_tainted` shows them.
const TAINT_LETTERS: [(u32, char); 2] = [(TAINT_WARN, 'W'), (TAINT_LIVEPATCH, 'K')];

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

/// `print_tainted()`: `Not tainted`, or `Tainted: G` and one column per taint bit up to the
/// highest this kernel sets (its letter, or a space), as Linux prints them.
fn print_tainted(mask: i32) -> LineBuf<32> {
    let mut out = LineBuf::new();
    if mask == 0 {
        let _ = out.write_str("Not tainted");
        return out;
    }
    let _ = out.write_str("Tainted: G");
    for bit in 1..=TAINT_LIVEPATCH {
        let letter = TAINT_LETTERS.iter().find(|&&(b, _)| b == bit);
        let _ = out.write_char(match letter {
            Some(&(b, c)) if mask & (1 << b) != 0 => c,
            _ => ' ',
        });
    }
    out
}

/// `__warn()`, what `WARN(1, fmt, ...)` prints: the cut line, the message, where it fired
/// (this kernel's own file and line, as its `BUG()` reports), the task, and the end marker;
/// taints the kernel `W`. The kernel cannot walk its own stack, so no call trace (the host
/// prints one only for an oops). The caller goes on, as after Linux's `WARN`.
#[track_caller]
pub fn warn(function: &str, args: fmt::Arguments<'_>) {
    let at = Location::caller();
    pr_warn!("------------[ cut here ]------------");
    printk!(crate::printk::LOGLEVEL_WARNING, "{args}");
    add_taint(TAINT_WARN);
    let (pid, comm) = crate::sched::task::task_for_report();
    // SAFETY: a short read.
    let tainted = print_tainted(unsafe { *TAINTED.get() });
    pr_warn!(
        "WARNING: CPU: 0 PID: {pid} at {}:{} {function}",
        at.file(),
        at.line()
    );
    pr_warn!(
        "CPU: 0 UID: 0 PID: {pid} Comm: {} {} {} #1",
        comm.escape_ascii(),
        tainted.as_bytes().escape_ascii(),
        crate::utsname::UTS_RELEASE
    );
    pr_warn!("---[ end trace 0000000000000000 ]---");
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
