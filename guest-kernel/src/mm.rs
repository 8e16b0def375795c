//! kmalloc/kfree: a first-fit allocator with coalescing above `__heap_base`, its free list checked.

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32;

use crate::preempt::preempt_disable;
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

/// The line `kernel BUG at mm/slub.c:<line>!` names when the free list is found corrupt.
///
/// This kernel's allocator is not SLUB; the number is fixed so that reports and the
/// documentation (docs/livepatch.md §8) can name it.
const SLUB_BUG_LINE: u32 = 449;

/// The heap: an address-ordered list of free blocks between the heap's start and the end of
/// memory. The heap is tiled by blocks: each starts with its size, so the blocks can be
/// walked from [`heap_start`] to the end of memory (memory grown by anyone else, such as a
/// module's own `memory.grow`, is a gap where such a walk stops).
///
/// `free_head` is the only pointer kept outside the blocks; it, and every `next` pointer
/// followed, is checked before use ([`Heap::check`]), and a bad one is a `kernel BUG`.
struct Heap {
    free_head: usize,
    /// Bytes in free blocks, for /proc/meminfo.
    free_bytes: usize,
    limit: usize,
}

static HEAP: Global<Heap> = Global::new(Heap {
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

/// The first block's address: `__heap_base`, aligned.
fn heap_start() -> usize {
    ((&raw const __heap_base) as usize).next_multiple_of(ALIGN)
}

fn read_u32(addr: usize) -> u32 {
    // SAFETY: heap addresses are inside linear memory and 4-aligned.
    unsafe { (addr as *const u32).read() }
}

fn write_u32(addr: usize, value: u32) {
    // SAFETY: as above.
    unsafe { (addr as *mut u32).write(value) }
}

/// Whether `size` can be the size of a block at `addr`: at least `MIN_BLOCK`, aligned, and
/// inside memory.
fn block_fits(addr: usize, size: usize) -> bool {
    size >= MIN_BLOCK && size.is_multiple_of(ALIGN) && addr + size <= memory_bytes()
}

impl Heap {
    /// Puts all of memory above the heap's start on the free list (once, at boot).
    fn init(&mut self) {
        let (start, end) = (heap_start(), memory_bytes());
        if self.free_head == 0 && end >= start + MIN_BLOCK {
            self.release(start, end - start);
        }
    }

    /// Checks the free block `cur` reached from a block ending at `floor` (or from the list
    /// head): aligned, not below `floor` (the list is address-ordered, which also rules out
    /// cycles), a sane size inside memory, and a next pointer that is 0 or could be the next
    /// block. Returns its size and next pointer; anything else is a `kernel BUG`.
    ///
    /// Since each block's next pointer is checked here, a bad `cur` can only be the head.
    fn check(&mut self, floor: usize, cur: usize) -> (usize, usize) {
        if !cur.is_multiple_of(ALIGN) || cur < floor || cur + MIN_BLOCK > memory_bytes() {
            let head = (&raw const self.free_head) as usize;
            self.bug("pointer", cur, head);
        }
        let size = read_u32(cur) as usize;
        if !block_fits(cur, size) {
            self.bug("block size", size, cur);
        }
        let next = read_u32(cur + 4) as usize;
        if next != 0
            && (!next.is_multiple_of(ALIGN)
                || next <= cur + size
                || next + MIN_BLOCK > memory_bytes())
        {
            self.bug("pointer", next, cur + 4);
        }
        (size, next)
    }

    /// The free list is corrupt at `at`: `what` (a pointer, a block size) is `bad`.
    /// Rebuilds the list from the block headers, quarantining whatever cannot be walked, and
    /// reports a `kernel BUG` as Linux's `BUG()` does: the allocating or freeing task dies (an
    /// oops), the kernel and its allocator go on.
    #[cold]
    fn bug(&mut self, what: &str, bad: usize, at: usize) -> ! {
        let (free, quarantined) = self.rebuild();
        pr_err!(
            "kmalloc: free list corrupt at {at:#010x}: {what} {bad:#010x}; rebuilt from the \
             block headers: {free} bytes free, {quarantined} bytes quarantined"
        );
        pr_warn!("------------[ cut here ]------------");
        pr_crit!("kernel BUG at mm/slub.c:{SLUB_BUG_LINE}!");
        wasm32::unreachable()
    }

    /// Walks the blocks from the heap's start and links every block not marked in use into
    /// a new free list, merging neighbours; stops at the first header that is not a block.
    /// Returns the free bytes and the bytes past that point, which are left unused.
    fn rebuild(&mut self) -> (usize, usize) {
        let end = memory_bytes();
        let (mut at, mut tail, mut free) = (heap_start(), 0, 0);
        self.free_head = 0;
        while at + MIN_BLOCK <= end {
            let size = read_u32(at) as usize;
            if !block_fits(at, size) {
                break;
            }
            if read_u32(at + 4) != MAGIC {
                free += size;
                if tail != 0 && tail + read_u32(tail) as usize == at {
                    write_u32(tail, read_u32(tail) + size as u32);
                } else {
                    write_u32(at + 4, 0);
                    if tail == 0 {
                        self.free_head = at;
                    } else {
                        write_u32(tail + 4, at as u32);
                    }
                    tail = at;
                }
            }
            at += size;
        }
        self.free_bytes = free;
        (free, end.saturating_sub(at))
    }

    /// Puts the block `[addr, addr + size)` on the free list, merging it with its neighbours.
    fn release(&mut self, addr: usize, size: usize) {
        let (mut prev, mut prev_size, mut next) = (0, 0, self.free_head);
        let mut floor = heap_start();
        while next != 0 && next < addr {
            let (size, after) = self.check(floor, next);
            (prev, prev_size, floor, next) = (next, size, next + size, after);
        }
        if next != 0 {
            self.check(floor, next);
        }
        if floor > addr {
            // The block overlaps a free one: the list or the block's header is corrupt.
            self.bug("freed block overlapping it", addr, prev);
        }
        if next != 0 && addr + size > next {
            self.bug("freed block overlapping it", addr, next);
        }
        self.free_bytes += size;
        let (mut addr, mut size) = (addr, size);
        if next != 0 && addr + size == next {
            size += read_u32(next) as usize;
            next = read_u32(next + 4) as usize;
        }
        if prev != 0 && prev + prev_size == addr {
            size += prev_size;
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
        if align > ALIGN || size > u32::MAX as usize / 2 {
            return core::ptr::null_mut();
        }
        let need = (size + HDR).next_multiple_of(ALIGN).max(MIN_BLOCK);
        loop {
            let (mut prev, mut cur, mut floor) = (0, self.free_head, heap_start());
            while cur != 0 {
                let (block, next) = self.check(floor, cur);
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
                (prev, cur, floor) = (cur, next, cur + block);
            }
            if !self.grow(need) {
                return core::ptr::null_mut();
            }
        }
    }

    fn free(&mut self, ptr: *mut u8) {
        let addr = (ptr as usize).wrapping_sub(HDR);
        if ptr.is_null()
            || addr < heap_start()
            || !addr.is_multiple_of(ALIGN)
            || addr + MIN_BLOCK > memory_bytes()
        {
            pr_err!("kfree: invalid pointer {:#010x}", ptr as usize);
            return;
        }
        let size = read_u32(addr) as usize;
        if read_u32(addr + 4) != MAGIC || !block_fits(addr, size) {
            pr_err!("kfree: double free or corruption at {:#010x}", ptr as usize);
            return;
        }
        // Not in use any more, so that a rebuild of the list counts it as free.
        write_u32(addr + 4, 0);
        self.release(addr, size);
    }
}

/// Puts the memory above the kernel's data on the heap; called first at boot.
pub fn init() {
    // SAFETY: a short exclusive access.
    unsafe { HEAP.get() }.init();
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
    let free_bytes = heap.free_bytes;
    let mem = memory_bytes();
    let data_start = (&raw const __global_base) as usize;
    let data_end = (&raw const __data_end) as usize;
    MemStats {
        total: heap.limit,
        free: heap.limit - mem + free_bytes,
        slab: (mem - heap_start()).saturating_sub(free_bytes),
        kernel_data: data_end - data_start,
        kernel_stack: (&raw const __stack_high) as usize - (&raw const __stack_low) as usize,
    }
}

/// Allocates `size` zeroed bytes, 8-aligned; returns 0 when memory is exhausted.
///
/// A request of 0 bytes still returns a unique pointer that [`kfree`] accepts.
#[unsafe(no_mangle)]
pub extern "C" fn kmalloc(size: usize, _flags: u32) -> *mut u8 {
    let _preempt = preempt_disable();
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
        let _preempt = preempt_disable();
        // SAFETY: the allocator makes no outside calls.
        unsafe { HEAP.get() }.free(ptr);
    }
}

/// Rust's `alloc` (Vec, Box) on top of kmalloc.
struct KmallocAllocator;

// SAFETY: blocks are disjoint, aligned to `ALIGN`, and larger alignments are refused.
unsafe impl GlobalAlloc for KmallocAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _preempt = preempt_disable();
        // SAFETY: the allocator makes no outside calls.
        unsafe { HEAP.get() }.alloc(layout.size(), layout.align())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        let _preempt = preempt_disable();
        // SAFETY: as above.
        unsafe { HEAP.get() }.free(ptr);
    }
}

#[global_allocator]
static ALLOCATOR: KmallocAllocator = KmallocAllocator;
