# Atomic replace: the new patch's functions win, every other patched function reverts,
# and the replaced patches end up disabled and removable.
insmod test_klp_atomic_replace replace=maybe
insmod hello nosuch=1
rmmod hello
dmesg -c
insmod test_klp_livepatch
insmod test_klp_atomic_replace replace=0
cat /proc/cmdline
cat /proc/meminfo
rmmod test_klp_atomic_replace
echo 0 > /sys/kernel/livepatch/test_klp_atomic_replace/enabled
rmmod test_klp_atomic_replace
dmesg -C
insmod test_klp_atomic_replace replace=1
cat /sys/kernel/livepatch/test_klp_atomic_replace/replace
cat /proc/cmdline
cat /proc/meminfo
cat /sys/kernel/livepatch/test_klp_livepatch/enabled
lsmod
rmmod test_klp_livepatch
ls /sys/kernel/livepatch
dmesg
