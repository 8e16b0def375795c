//! test_slub_freelist: a write after free poisons kmalloc's free list, as Linux's slub_kunit
//! `test_next_pointer` does; the allocator must find it (`kernel BUG at mm/slub.c`) and go on.
#![no_std]

use klp_guest::pr_info;
use klp_guest::sys::{kfree, kmalloc};

/// `POISON_FREE` bytes, what Linux writes over freed objects.
const POISON_FREE: u32 = 0x6b6b_6b6b;

/// Frees a block, overwrites the free list pointer in its header, allocates again: the
/// allocation follows the poisoned pointer and BUGs, so init never returns.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    // SAFETY: kmalloc returns NULL or a block of at least 64 bytes.
    let block = unsafe { kmalloc(64, 0) };
    if block.is_null() {
        return -klp_guest::errno::ENOMEM;
    }
    // SAFETY: the block came from kmalloc; the write after free is the point of this module:
    // the word before the payload is the free block's next pointer.
    unsafe {
        kfree(block);
        block.cast::<u32>().sub(1).write_volatile(POISON_FREE);
    }
    pr_info!("test_slub_freelist: free list poisoned, allocating again");
    // SAFETY: as above.
    let again = unsafe { kmalloc(64, 0) };
    // SAFETY: `again` is NULL or from kmalloc.
    unsafe { kfree(again) };
    0
}

klp_guest::module_info!(description, "Poisons the kmalloc free list");
