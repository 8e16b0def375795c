# tools/testing/selftests/livepatch/test-state.sh, "taking over system state modification": the
# cumulative test_klp_state2 finds test_klp_state's state with klp_get_prev_state, keeps its memory and takes the
# loglevel change over; test_klp_state, replaced and freed, goes without restoring anything; test_klp_state2 restores
# the loglevel when it is disabled.
dmesg -C
cat /proc/sys/kernel/printk
insmod test_klp_state
dmesg -c
insmod test_klp_state2
dmesg -c
cat /proc/sys/kernel/printk
rmmod test_klp_state
dmesg -c
echo 0 > /sys/kernel/livepatch/test_klp_state2/enabled
dmesg -c
cat /proc/sys/kernel/printk
rmmod test_klp_state2
dmesg -c
