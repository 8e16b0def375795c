//! The host interface: the functions the kernel imports from module `klp`.

use klp_abi::HostOp;

#[link(wasm_import_module = "klp")]
unsafe extern "C" {
    #[link_name = "clock_ns"]
    fn klp_clock_ns() -> i64;
    #[link_name = "hostcall"]
    fn klp_hostcall(op: i32, a: i32, b: i32, c: i32) -> i32;
    #[link_name = "yield"]
    fn klp_yield();
}

/// Nanoseconds since boot, from the host's monotonic clock.
pub fn clock_ns() -> u64 {
    // SAFETY: a plain host import without memory arguments.
    unsafe { klp_clock_ns() as u64 }
}

/// Calls into the host core; returns a value >= 0 or -errno.
pub fn hostcall(op: HostOp, a: i32, b: i32, c: i32) -> i32 {
    // SAFETY: the host validates every argument it dereferences.
    unsafe { klp_hostcall(op as i32, a, b, c) }
}

/// Gives up the CPU: the running task is suspended here until the host resumes it (the
/// instrumentation pass turns this call into a `suspend`). Only `schedule()` calls it, and
/// only after the host's `Schedule` call said the task may sleep.
pub fn yield_cpu() {
    // SAFETY: a plain host import without arguments.
    unsafe { klp_yield() }
}
