# tools/testing/selftests/livepatch/test-callbacks.sh, "multiple target modules":
# test_klp_callbacks_busy's work item runs and exits at once (block_transition=N): the transition completes
# quickly, and test_klp_callbacks_mod's callbacks run as it comes and goes.
dmesg -C
insmod test_klp_callbacks_busy block_transition=N
dmesg -c
insmod test_klp_callbacks_demo
dmesg -c
insmod test_klp_callbacks_mod
dmesg -c
rmmod test_klp_callbacks_mod
dmesg -c
echo 0 > /sys/kernel/livepatch/test_klp_callbacks_demo/enabled
dmesg -c
rmmod test_klp_callbacks_demo
dmesg -c
rmmod test_klp_callbacks_busy
dmesg -c
