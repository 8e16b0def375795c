# A write after free poisons kmalloc's free list (test_slub_freelist, as slub_kunit's
# test_next_pointer). The allocation that follows the pointer is a kernel BUG, an oops that
# kills insmod; the allocator rebuilds its list from the block headers and goes on.
insmod test_slub_freelist
dmesg | tail -17
insmod klp-fix-hostname
mkdir /tmp/after
ls /tmp
lsmod
