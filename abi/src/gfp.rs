//! GFP flags (`include/linux/gfp_types.h`), Linux 6.12's bit values: what `kmalloc` and the
//! shadow-variable allocators take. This kernel's allocator never sleeps or reclaims, so it
//! accepts every combination; the values matter to modules that print them (`%pGg`).

/// `__GFP_DMA`.
pub const __GFP_DMA: u32 = 0x01;
/// `__GFP_HIGHMEM`.
pub const __GFP_HIGHMEM: u32 = 0x02;
/// `__GFP_DMA32`.
pub const __GFP_DMA32: u32 = 0x04;
/// `__GFP_HIGH`: the caller is high priority (may use reserves).
pub const __GFP_HIGH: u32 = 0x20;
/// `__GFP_IO`: may start physical I/O.
pub const __GFP_IO: u32 = 0x40;
/// `__GFP_FS`: may call into the filesystem layer.
pub const __GFP_FS: u32 = 0x80;
/// `__GFP_ZERO`: return zeroed memory (this kernel's kmalloc always does).
pub const __GFP_ZERO: u32 = 0x100;
/// `__GFP_DIRECT_RECLAIM`: may sleep to reclaim.
pub const __GFP_DIRECT_RECLAIM: u32 = 0x400;
/// `__GFP_KSWAPD_RECLAIM`: may wake kswapd.
pub const __GFP_KSWAPD_RECLAIM: u32 = 0x800;
/// `__GFP_NOWARN`: no allocation-failure report.
pub const __GFP_NOWARN: u32 = 0x2000;
/// `__GFP_RECLAIM`.
pub const __GFP_RECLAIM: u32 = __GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM;

/// `GFP_ATOMIC`: cannot sleep.
pub const GFP_ATOMIC: u32 = __GFP_HIGH | __GFP_KSWAPD_RECLAIM;
/// `GFP_KERNEL`: the usual flags of kernel code that may sleep.
pub const GFP_KERNEL: u32 = __GFP_RECLAIM | __GFP_IO | __GFP_FS;
/// `GFP_NOWAIT`: no direct reclaim, no failure report.
pub const GFP_NOWAIT: u32 = __GFP_KSWAPD_RECLAIM | __GFP_NOWARN;
/// `GFP_NOIO`.
pub const GFP_NOIO: u32 = __GFP_RECLAIM;
/// `GFP_NOFS`.
pub const GFP_NOFS: u32 = __GFP_RECLAIM | __GFP_IO;

/// `gfpflag_names` (`include/trace/events/mmflags.h`) for these flags, in Linux's order: the
/// composite names first, so `%pGg` prints `GFP_KERNEL` rather than its bits.
pub const GFP_NAMES: [(u32, &str); 16] = [
    (GFP_KERNEL, "GFP_KERNEL"),
    (GFP_NOFS, "GFP_NOFS"),
    (GFP_ATOMIC, "GFP_ATOMIC"),
    (GFP_NOIO, "GFP_NOIO"),
    (GFP_NOWAIT, "GFP_NOWAIT"),
    (__GFP_DMA, "GFP_DMA"),
    (__GFP_HIGHMEM, "__GFP_HIGHMEM"),
    (__GFP_DMA32, "GFP_DMA32"),
    (__GFP_HIGH, "__GFP_HIGH"),
    (__GFP_IO, "__GFP_IO"),
    (__GFP_FS, "__GFP_FS"),
    (__GFP_NOWARN, "__GFP_NOWARN"),
    (__GFP_ZERO, "__GFP_ZERO"),
    (__GFP_RECLAIM, "__GFP_RECLAIM"),
    (__GFP_DIRECT_RECLAIM, "__GFP_DIRECT_RECLAIM"),
    (__GFP_KSWAPD_RECLAIM, "__GFP_KSWAPD_RECLAIM"),
];
