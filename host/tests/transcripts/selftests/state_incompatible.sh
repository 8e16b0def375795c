# tools/testing/selftests/livepatch/test-state.sh, "incompatible cumulative livepatches": test_klp_state
# brings version 1 of the state test_klp_state2 modified at version 2, so it is refused before anything
# changes (EINVAL), and test_klp_state2 goes on.
dmesg -C
insmod test_klp_state2
dmesg -c
insmod test_klp_state
dmesg -c
ls /sys/kernel/livepatch
cat /proc/sys/kernel/printk
echo 0 > /sys/kernel/livepatch/test_klp_state2/enabled
dmesg -c
cat /proc/sys/kernel/printk
rmmod test_klp_state2
dmesg -c
