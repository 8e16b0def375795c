//! Growth limits: the store's resource limiter, tied to the kernel's `mem=`.

use klp_core::state::KernelState;
use wasmtime::ResourceLimiter;

/// The most entries the function table may grow to: the kernel's slots plus room for many
/// modules (each takes a range of twice its functions, and trampolines).
pub const TABLE_MAX: usize = 1 << 20;

/// RAM size when the command line has no valid `mem=`, as in the kernel.
const DEFAULT_MEM: usize = 128 << 20;

/// The store's resource limiter: the maximum sizes memories and tables may grow to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) memory_bytes: usize,
    pub(crate) table_elements: usize,
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.memory_bytes)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.table_elements)
    }
}

/// The RAM size `mem=` asks for, parsed as the kernel's 32-bit `memparse` does (an optional K,
/// M or G suffix; anything else, or an overflow, leaves the default).
pub(crate) fn mem_param(state: &KernelState) -> usize {
    let parse = |arg: &str| -> Option<u32> {
        let digits = arg.bytes().take_while(u8::is_ascii_digit).count();
        let value: u32 = arg[..digits].parse().ok()?;
        let shift = match &arg[digits..] {
            "" => 0,
            "k" | "K" => 10,
            "m" | "M" => 20,
            "g" | "G" => 30,
            _ => return None,
        };
        value.checked_mul(1 << shift)
    };
    state
        .cmdline_param("mem")
        .and_then(parse)
        .map_or(DEFAULT_MEM, |bytes| bytes as usize)
}
