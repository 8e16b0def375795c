# tools/testing/selftests/livepatch/test-sysfs.sh, "sysfs test stack_order value": each patch's
# place in the list of patches, 1 for the oldest; when the middle one is disabled (freed) and
# removed, the last one becomes 2.
dmesg -C
insmod test_klp_atomic_replace
dmesg -c
cat /sys/kernel/livepatch/test_klp_atomic_replace/stack_order
insmod test_klp_callbacks_demo
dmesg -c
cat /sys/kernel/livepatch/test_klp_callbacks_demo/stack_order
insmod test_klp_syscall
dmesg -c
cat /sys/kernel/livepatch/test_klp_syscall/stack_order
echo 0 > /sys/kernel/livepatch/test_klp_callbacks_demo/enabled
dmesg -c
rmmod test_klp_callbacks_demo
dmesg -c
cat /sys/kernel/livepatch/test_klp_atomic_replace/stack_order
cat /sys/kernel/livepatch/test_klp_syscall/stack_order
echo 0 > /sys/kernel/livepatch/test_klp_syscall/enabled
dmesg -c
rmmod test_klp_syscall
dmesg -c
echo 0 > /sys/kernel/livepatch/test_klp_atomic_replace/enabled
dmesg -c
rmmod test_klp_atomic_replace
dmesg -c
