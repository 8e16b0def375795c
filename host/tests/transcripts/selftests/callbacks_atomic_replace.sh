# tools/testing/selftests/livepatch/test-callbacks.sh, "atomic replace":
# test_klp_callbacks_demo2 replace=1 replaces test_klp_callbacks_demo: none of test_klp_callbacks_demo's unpatch callbacks run; test_klp_callbacks_demo2's do when it is disabled.
dmesg -C
insmod test_klp_callbacks_demo
dmesg -c
insmod test_klp_callbacks_demo2 replace=1
dmesg -c
echo 0 > /sys/kernel/livepatch/test_klp_callbacks_demo2/enabled
dmesg -c
rmmod test_klp_callbacks_demo2
dmesg -c
rmmod test_klp_callbacks_demo
dmesg -c
