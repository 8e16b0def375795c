//! kmalloc/kfree: a first-fit allocator with coalescing over linear memory above `__heap_base`.

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32;

use crate::sync::Global;

/// A WebAssembly page, the unit linear memory grows by.
const WASM_PAGE: usize = 65536;
/// Alignment of every block and payload.
const ALIGN: usize = 8;
/// Block header: `size: u32` (whole block), then `MAGIC` (in use) or the next free block.
const HDR: usize = 8;
/// Smallest block: a header and one 8-byte payload.
const MIN_BLOCK: usize = 16;
/// Marks a block in use, so kfree can reject pointers it never handed out.
const MAGIC: u32 = 0x6b6d_616c;
/// RAM size when the command line has no `mem=`.
const DEFAULT_MEM: usize = 128 << 20;

unsafe extern "C" {
    static __heap_base: u8;
    static __data_end: u8;
    static __global_base: u8;
    static __stack_low: u8;
    static __stack_high: u8;
}

/// The heap: an address-ordered list of free blocks between `start` and the end of memory.
struct Heap {
    start: usize,
    free_head: usize,
    free_bytes: usize,
    limit: usize,
}

static HEAP: Global<Heap> = Global::new(Heap {
    start: 0,
    free_head: 0,
    free_bytes: 0,
    limit: DEFAULT_MEM,
});

/// Numbers for `/proc/meminfo` and the boot log, in bytes.
pub struct MemStats {
    /// RAM size (`mem=`).
    pub total: usize,
    /// RAM not backing linear memory, plus free heap blocks.
    pub free: usize,
    /// Heap bytes in allocated blocks.
    pub slab: usize,
    /// Static kernel data (rodata, data, bss).
    pub kernel_data: usize,
    /// The kernel stack.
    pub kernel_stack: usize,
}

fn memory_bytes() -> usize {
    wasm32::memory_size(0) * WASM_PAGE
}

fn read_u32(addr: usize) -> u32 {
    // SAFETY: heap addresses are inside linear memory and 4-aligned.
    unsafe { (addr as *const u32).read() }
}

fn write_u32(addr: usize, value: u32) {
    // SAFETY: as above.
    unsafe { (addr as *mut u32).write(value) }
}

impl Heap {
    fn init_once(&mut self) {
        if self.start == 0 {
            let base = (&raw const __heap_base) as usize;
            self.start = base.next_multiple_of(ALIGN);
            self.limit = self.limit.max(memory_bytes());
            let end = memory_bytes();
            if end >= self.start + MIN_BLOCK {
                self.release(self.start, end - self.start);
            }
        }
    }

    /// Puts the block `[addr, addr + size)` on the free list, merging it with its neighbours.
    fn release(&mut self, addr: usize, size: usize) {
        self.free_bytes += size;
        let (mut prev, mut next) = (0, self.free_head);
        while next != 0 && next < addr {
            prev = next;
            next = read_u32(next + 4) as usize;
        }
        let (mut addr, mut size) = (addr, size);
        if next != 0 && addr + size == next {
            size += read_u32(next) as usize;
            next = read_u32(next + 4) as usize;
        }
        if prev != 0 && prev + read_u32(prev) as usize == addr {
            size += read_u32(prev) as usize;
            addr = prev;
        } else if prev != 0 {
            write_u32(prev + 4, addr as u32);
        } else {
            self.free_head = addr;
        }
        write_u32(addr, size as u32);
        write_u32(addr + 4, next as u32);
    }

    /// Grows linear memory by enough pages for a block of `need` bytes, within `mem=`.
    fn grow(&mut self, need: usize) -> bool {
        let pages = need.div_ceil(WASM_PAGE);
        let old_end = memory_bytes();
        if old_end + pages * WASM_PAGE > self.limit || wasm32::memory_grow(0, pages) == usize::MAX {
            return false;
        }
        self.release(old_end, pages * WASM_PAGE);
        true
    }

    fn alloc(&mut self, size: usize, align: usize) -> *mut u8 {
        self.init_once();
        if align > ALIGN || size > u32::MAX as usize / 2 {
            return core::ptr::null_mut();
        }
        let need = (size + HDR).next_multiple_of(ALIGN).max(MIN_BLOCK);
        loop {
            let (mut prev, mut cur) = (0, self.free_head);
            while cur != 0 {
                let block = read_u32(cur) as usize;
                let next = read_u32(cur + 4) as usize;
                if block >= need {
                    let (taken, rest) = if block - need >= MIN_BLOCK {
                        write_u32(cur + need, (block - need) as u32);
                        write_u32(cur + need + 4, next as u32);
                        (need, cur + need)
                    } else {
                        (block, next)
                    };
                    if prev == 0 {
                        self.free_head = rest;
                    } else {
                        write_u32(prev + 4, rest as u32);
                    }
                    self.free_bytes -= taken;
                    write_u32(cur, taken as u32);
                    write_u32(cur + 4, MAGIC);
                    return (cur + HDR) as *mut u8;
                }
                (prev, cur) = (cur, next);
            }
            if !self.grow(need) {
                return core::ptr::null_mut();
            }
        }
    }

    fn free(&mut self, ptr: *mut u8) {
        let addr = (ptr as usize).wrapping_sub(HDR);
        if ptr.is_null()
            || addr < self.start
            || !addr.is_multiple_of(ALIGN)
            || addr >= memory_bytes()
        {
            pr_err!("kfree: invalid pointer {:#010x}", ptr as usize);
            return;
        }
        if read_u32(addr + 4) != MAGIC {
            pr_err!("kfree: double free or corruption at {:#010x}", ptr as usize);
            return;
        }
        self.release(addr, read_u32(addr) as usize);
    }
}

/// Sets the RAM size from a `mem=` boot parameter (`memparse` syntax: `64M`, `1G`, `65536K`).
pub fn set_mem_limit(arg: &[u8]) {
    if let Some(bytes) = memparse(arg) {
        // SAFETY: a short exclusive access.
        let heap = unsafe { HEAP.get() };
        heap.limit = bytes.max(memory_bytes());
    }
}

/// Parses a size with an optional K, M or G suffix.
fn memparse(arg: &[u8]) -> Option<usize> {
    let digits = arg.iter().take_while(|b| b.is_ascii_digit()).count();
    let mut value: usize = 0;
    for &d in &arg[..digits] {
        value = value.checked_mul(10)?.checked_add(usize::from(d - b'0'))?;
    }
    let shift = match &arg[digits..] {
        [] => 0,
        [b'k' | b'K'] => 10,
        [b'm' | b'M'] => 20,
        [b'g' | b'G'] => 30,
        _ => return None,
    };
    (digits > 0).then_some(value)?.checked_mul(1 << shift)
}

/// Current memory numbers.
pub fn stats() -> MemStats {
    // SAFETY: a short exclusive access.
    let heap = unsafe { HEAP.get() };
    heap.init_once();
    let mem = memory_bytes();
    let data_start = (&raw const __global_base) as usize;
    let data_end = (&raw const __data_end) as usize;
    MemStats {
        total: heap.limit,
        free: heap.limit - mem + heap.free_bytes,
        slab: mem - heap.start - heap.free_bytes,
        kernel_data: data_end - data_start,
        kernel_stack: (&raw const __stack_high) as usize - (&raw const __stack_low) as usize,
    }
}

/// Allocates `size` zeroed bytes, 8-aligned; returns 0 when memory is exhausted.
///
/// A request of 0 bytes still returns a unique pointer that [`kfree`] accepts.
#[unsafe(no_mangle)]
pub extern "C" fn kmalloc(size: usize, _flags: u32) -> *mut u8 {
    // SAFETY: the allocator makes no outside calls.
    let ptr = unsafe { HEAP.get() }.alloc(size, ALIGN);
    if !ptr.is_null() {
        // SAFETY: the block has at least `size` bytes.
        unsafe { ptr.write_bytes(0, size) };
    }
    ptr
}

/// Frees a block from [`kmalloc`]; NULL is ignored, a pointer kmalloc never returned is
/// reported in the log and ignored.
#[unsafe(no_mangle)]
pub extern "C" fn kfree(ptr: *mut u8) {
    if !ptr.is_null() {
        // SAFETY: the allocator makes no outside calls.
        unsafe { HEAP.get() }.free(ptr);
    }
}

/// Rust's `alloc` (Vec, Box) on top of kmalloc.
struct KmallocAllocator;

// SAFETY: blocks are disjoint, aligned to `ALIGN`, and larger alignments are refused.
unsafe impl GlobalAlloc for KmallocAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the allocator makes no outside calls.
        unsafe { HEAP.get() }.alloc(layout.size(), layout.align())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: as above.
        unsafe { HEAP.get() }.free(ptr);
    }
}

#[global_allocator]
static ALLOCATOR: KmallocAllocator = KmallocAllocator;
