//! The host interface: the two functions the kernel imports from module `klp`.

#[link(wasm_import_module = "klp")]
unsafe extern "C" {
    #[link_name = "clock_ns"]
    fn klp_clock_ns() -> i64;
    #[link_name = "hostcall"]
    fn klp_hostcall(op: i32, a: i32, b: i32, c: i32) -> i32;
}

/// Host call: register and enable a patch (`klp::abi::HostOp` on the host side).
pub const KLP_ENABLE_PATCH: i32 = 1;
/// Host call: register a patch without enabling it.
pub const KLP_REGISTER_PATCH: i32 = 2;
/// Host call: unregister a disabled patch.
pub const KLP_UNREGISTER_PATCH: i32 = 3;
/// Host call: disable an enabled patch.
pub const KLP_DISABLE_PATCH: i32 = 4;

/// Nanoseconds since boot, from the host's monotonic clock.
pub fn clock_ns() -> u64 {
    // SAFETY: a plain host import without memory arguments.
    unsafe { klp_clock_ns() as u64 }
}

/// Calls into the host core; returns a value >= 0 or -errno.
pub fn hostcall(op: i32, a: i32, b: i32, c: i32) -> i32 {
    // SAFETY: the host validates every argument it dereferences.
    unsafe { klp_hostcall(op, a, b, c) }
}
