//! Boot: `kernel_boot`, the saved command line, early parameters and subsystem init.

use klp_abi::errno::EBUSY;

use crate::printk::CONSOLE_PRINTK;
use crate::sync::Global;
use crate::uaccess::kernel_bytes;
use crate::utsname::{UTS_RELEASE, UTS_VERSION};
use crate::{fork, mm, panic, proc, sched, utsname, vfs, workqueue};

/// Who built the kernel, `LINUX_COMPILE_BY@LINUX_COMPILE_HOST`.
pub const LINUX_COMPILE_BY: &str = "klp@wasm";
/// The compiler and linker, `LINUX_COMPILER`.
pub const LINUX_COMPILER: &str = "rustc 1.95.0, rust-lld";
/// Longest command line kept, as x86's `COMMAND_LINE_SIZE`.
const COMMAND_LINE_SIZE: usize = 2048;
/// `console_loglevel` for `quiet`.
const CONSOLE_LOGLEVEL_QUIET: i32 = 4;
/// `console_loglevel` for `debug`.
const CONSOLE_LOGLEVEL_DEBUG: i32 = 10;

/// The command line the kernel booted with (`saved_command_line`), and its length.
static SAVED_COMMAND_LINE: Global<([u8; COMMAND_LINE_SIZE], usize)> =
    Global::new(([0; COMMAND_LINE_SIZE], 0));
static BOOTED: Global<bool> = Global::new(false);

/// The saved command line.
pub fn saved_command_line() -> &'static [u8] {
    // SAFETY: written once at boot, read-only afterwards.
    let (buf, len) = unsafe { &*SAVED_COMMAND_LINE.as_ptr() };
    &buf[..*len]
}

/// Parses a decimal boot parameter value such as `loglevel=7`.
#[inline(never)]
fn parse_int(value: &[u8]) -> Option<i32> {
    core::str::from_utf8(value).ok()?.parse().ok()
}

/// Applies the parameters the kernel itself understands; `klp.*` belongs to the host.
fn parse_early_params(cmdline: &[u8]) {
    for param in cmdline.split(|b| b.is_ascii_whitespace()) {
        let (key, value) = match param.iter().position(|&b| b == b'=') {
            Some(eq) => (&param[..eq], &param[eq + 1..]),
            None => (param, &b""[..]),
        };
        // SAFETY: short writes of the console levels.
        let console_loglevel = unsafe { &mut CONSOLE_PRINTK.get()[0] };
        match key {
            b"mem" => mm::set_mem_limit(value),
            b"hostname" => utsname::set_hostname(value),
            b"quiet" => *console_loglevel = CONSOLE_LOGLEVEL_QUIET,
            b"debug" => *console_loglevel = CONSOLE_LOGLEVEL_DEBUG,
            b"loglevel" => {
                if let Some(level) = parse_int(value) {
                    *console_loglevel = level;
                }
            }
            _ => {}
        }
    }
}

/// Boots the kernel with a command line: the banner, memory, the filesystems, procfs and
/// sysctl, the scheduler tunables, the first tasks and the workqueue's worker. Returns 0, or
/// `-EBUSY` if the kernel already runs.
///
/// # Safety
///
/// `cmdline` must point at `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kernel_boot(cmdline: *const u8, len: usize) -> i32 {
    // SAFETY: a short access.
    let booted = unsafe { BOOTED.get() };
    if *booted {
        return -EBUSY;
    }
    *booted = true;
    mm::init();
    // SAFETY: the caller's contract.
    let cmdline = unsafe { kernel_bytes(cmdline, len) };
    let len = cmdline.len().min(COMMAND_LINE_SIZE - 1);
    // SAFETY: nothing else reads the command line during boot.
    let saved = unsafe { SAVED_COMMAND_LINE.get() };
    saved.0[..len].copy_from_slice(&cmdline[..len]);
    saved.1 = len;
    let cmdline = saved_command_line().escape_ascii();

    pr_notice!("Linux version {UTS_RELEASE} ({LINUX_COMPILE_BY}) ({LINUX_COMPILER}) {UTS_VERSION}");
    pr_info!("Command line: {cmdline}");
    parse_early_params(saved_command_line());
    let mem = mm::stats();
    pr_info!(
        "Memory: {}K/{}K available ({}K kernel data, {}K kernel stack, {}K reserved)",
        mem.free >> 10,
        mem.total >> 10,
        mem.kernel_data >> 10,
        mem.kernel_stack >> 10,
        (mem.total - mem.free) >> 10
    );
    pr_notice!("Kernel command line: {cmdline}");
    pr_info!("clocksource: Switched to clocksource klp_clock");
    vfs::init();
    proc::init();
    utsname::init();
    sched::init();
    fork::rest_init();
    workqueue::workqueue_init();
    panic::init();
    pr_info!("livepatch: ready: patches are applied by the host's ftrace table");
    pr_info!("Run /bin/sh as init process");
    0
}
