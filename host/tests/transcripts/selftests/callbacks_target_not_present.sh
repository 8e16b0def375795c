# tools/testing/selftests/livepatch/test-callbacks.sh, "target module not present":
# objects never loaded get no callbacks: only vmlinux's run.
dmesg -C
insmod test_klp_callbacks_demo
dmesg -c
echo 0 > /sys/kernel/livepatch/test_klp_callbacks_demo/enabled
dmesg -c
rmmod test_klp_callbacks_demo
dmesg -c
