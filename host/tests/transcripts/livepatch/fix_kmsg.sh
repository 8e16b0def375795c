# Bug (c): every open /dev/kmsg reads at one position shared by all readers (the kernel's
# struct devkmsg_user has no seq), so a reader starts where the last one stopped and misses
# what was logged before. In Linux each open file starts at the oldest record.
echo hello from the shell > /dev/kmsg
cat /dev/kmsg | grep -c "hello from the shell"
cat /dev/kmsg | grep -c "hello from the shell"
echo a second line > /dev/kmsg
cat /dev/kmsg | grep -c "a second line"
# klp-fix-kmsg keeps a position per open file, without changing the struct: a shadow variable
# <devkmsg_user, 1> allocated at open, read and moved at each read, freed at close.
insmod klp-fix-kmsg
cat /dev/kmsg | grep -c "hello from the shell"
cat /dev/kmsg | grep -c "hello from the shell"
cat /dev/kmsg | grep -c "a second line"
cat /dev/kmsg | grep -c ";livepatch: 'klp_fix_kmsg': patching complete"
# Disabled and removed (its exit frees every shadow variable left), the shared position is
# back: it is where the last reader of the unpatched kernel left it.
echo 0 > /sys/kernel/livepatch/klp_fix_kmsg/enabled
rmmod klp_fix_kmsg
cat /dev/kmsg | grep -c "hello from the shell"
cat /dev/kmsg | grep -c "hello from the shell"
dmesg | grep klp_fix_kmsg | tail -4
