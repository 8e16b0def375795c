# tools/testing/selftests/livepatch/test-livepatch.sh, "multiple livepatches": two patches of
# different functions are active together; removing the second leaves the first.
# grep's lines go to /dev/kmsg, as in the selftest.
dmesg -C
insmod test_klp_livepatch
dmesg -c
grep 'live patched' /proc/cmdline > /dev/kmsg
grep 'live patched' /proc/meminfo > /dev/kmsg
insmod test_klp_atomic_replace replace=0
dmesg -c
grep 'live patched' /proc/cmdline > /dev/kmsg
grep 'live patched' /proc/meminfo > /dev/kmsg
echo 0 > /sys/kernel/livepatch/test_klp_atomic_replace/enabled
dmesg -c
rmmod test_klp_atomic_replace
dmesg -c
grep 'live patched' /proc/cmdline > /dev/kmsg
grep 'live patched' /proc/meminfo > /dev/kmsg
echo 0 > /sys/kernel/livepatch/test_klp_livepatch/enabled
dmesg -c
rmmod test_klp_livepatch
dmesg -c
grep 'live patched' /proc/cmdline > /dev/kmsg
grep 'live patched' /proc/meminfo > /dev/kmsg
