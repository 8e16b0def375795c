//! jiffies, `kernel/time/jiffies.c` and `time.c`: ticks of `HZ` per second since boot.

pub use klp_abi::task::HZ;

use crate::host;

/// `MAX_JIFFY_OFFSET`: the longest timeout in jiffies.
const MAX_JIFFY_OFFSET: i32 = (i32::MAX >> 1) - 1;

/// Ticks since boot, from the host's clock.
pub fn jiffies() -> u64 {
    host::clock_ns() / (1_000_000_000 / HZ)
}

/// `get_jiffies_64()`: ticks since boot.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn get_jiffies_64() -> u64 {
    jiffies()
}

/// Milliseconds to jiffies, rounding up; `MAX_JIFFY_OFFSET` for more than `i32::MAX`.
pub fn msecs_to_jiffies(m: u32) -> i32 {
    if m > i32::MAX as u32 {
        return MAX_JIFFY_OFFSET;
    }
    (u64::from(m) * HZ)
        .div_ceil(1000)
        .min(MAX_JIFFY_OFFSET as u64) as i32
}

/// `__msecs_to_jiffies()`: what the inline `msecs_to_jiffies` of modules calls.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn __msecs_to_jiffies(m: u32) -> i32 {
    msecs_to_jiffies(m)
}

/// `jiffies_to_msecs()`: jiffies (a negative count is 0) to milliseconds.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn jiffies_to_msecs(j: i32) -> u32 {
    (j.max(0) as u64 * (1000 / HZ)).min(u64::from(u32::MAX)) as u32
}
