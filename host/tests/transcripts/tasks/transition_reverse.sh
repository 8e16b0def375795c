# tools/testing/selftests/livepatch/test-callbacks.sh, "busy target module" (the whole case
# is selftests/callbacks_busy_target.sh): a transition blocked by the busy kworker is reversed
# by writing 0 to `enabled`; the kworker never switched, so the unpatching transition completes
# at the next try, and both modules can go.
insmod test_klp_callbacks_busy block_transition=Y
insmod test_klp_callbacks_demo
cat /sys/kernel/livepatch/test_klp_callbacks_demo/transition
echo 0 > /sys/kernel/livepatch/test_klp_callbacks_demo/enabled
cat /sys/kernel/livepatch/test_klp_callbacks_demo/enabled
sleep 1
cat /sys/kernel/livepatch/test_klp_callbacks_demo/transition
rmmod test_klp_callbacks_demo
rmmod test_klp_callbacks_busy
dmesg
