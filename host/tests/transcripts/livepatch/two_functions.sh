# Two patches on different functions are independent.
insmod test_klp_livepatch
insmod test_klp_atomic_replace
cat /proc/cmdline
cat /proc/meminfo
echo 0 > /sys/kernel/livepatch/test_klp_livepatch/enabled
cat /proc/cmdline
cat /proc/meminfo
echo 0 > /sys/kernel/livepatch/test_klp_atomic_replace/enabled
cat /proc/meminfo
rmmod test_klp_livepatch test_klp_atomic_replace
lsmod
