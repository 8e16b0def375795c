# tools/testing/selftests/livepatch/test-state.sh, "system state modification": test_klp_state's
# callbacks keep console_loglevel in its klp_state, raise it to 15 (CONSOLE_LOGLEVEL_MOTORMOUTH,
# the first field of /proc/sys/kernel/printk) and restore it. Each step's messages are read and cleared
# with dmesg -c, as check_result compares them (modprobe is insmod here).
dmesg -C
cat /proc/sys/kernel/printk
insmod test_klp_state
dmesg -c
cat /proc/sys/kernel/printk
echo 0 > /sys/kernel/livepatch/test_klp_state/enabled
dmesg -c
cat /proc/sys/kernel/printk
rmmod test_klp_state
dmesg -c
