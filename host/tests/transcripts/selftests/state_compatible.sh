# tools/testing/selftests/livepatch/test-state.sh, "compatible cumulative livepatches": test_klp_state3
# takes the change over from test_klp_state2, then test_klp_state2 (the same version) takes it back, and restores the
# loglevel when disabled.
dmesg -C
cat /proc/sys/kernel/printk
insmod test_klp_state2
dmesg -c
insmod test_klp_state3
dmesg -c
rmmod test_klp_state2
dmesg -c
insmod test_klp_state2
dmesg -c
cat /proc/sys/kernel/printk
echo 0 > /sys/kernel/livepatch/test_klp_state2/enabled
dmesg -c
cat /proc/sys/kernel/printk
rmmod test_klp_state2
dmesg -c
rmmod test_klp_state3
dmesg -c
