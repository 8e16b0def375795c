# tools/testing/selftests/livepatch/test-livepatch.sh, "multiple livepatches": two patches of
# different functions are active together; removing the second leaves the first. (The
# selftest writes grep's output to /dev/kmsg; here it is printed.)
dmesg -C
insmod test_klp_livepatch
dmesg -c
grep 'live patched' /proc/cmdline
grep 'live patched' /proc/meminfo
insmod test_klp_atomic_replace replace=0
dmesg -c
grep 'live patched' /proc/cmdline
grep 'live patched' /proc/meminfo
echo 0 > /sys/kernel/livepatch/test_klp_atomic_replace/enabled
dmesg -c
rmmod test_klp_atomic_replace
dmesg -c
grep 'live patched' /proc/cmdline
grep 'live patched' /proc/meminfo
echo 0 > /sys/kernel/livepatch/test_klp_livepatch/enabled
dmesg -c
rmmod test_klp_livepatch
dmesg -c
grep 'live patched' /proc/cmdline
grep 'live patched' /proc/meminfo
