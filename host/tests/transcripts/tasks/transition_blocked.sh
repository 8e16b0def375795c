# Linux's per-task consistency model: the kworker sleeps inside busymod_work_func, the function
# the patch replaces, so it cannot switch; every other task switches at once. `transition`
# reads 1, /proc/<pid>/patch_state and /proc/<pid>/stack show who is behind and where. Once the
# work leaves the function the next try (every second) switches it and the transition ends.
insmod test_klp_callbacks_busy block_transition=Y
insmod test_klp_callbacks_demo
cat /sys/kernel/livepatch/test_klp_callbacks_demo/transition
cat /proc/3/patch_state
cat /proc/3/stack
cat /proc/1/patch_state
cat /proc/0/patch_state
sleep 3
cat /sys/kernel/livepatch/test_klp_callbacks_demo/transition
echo 0 > /sys/module/test_klp_callbacks_busy/parameters/block_transition
sleep 1
cat /sys/kernel/livepatch/test_klp_callbacks_demo/transition
cat /proc/3/patch_state
echo 0 > /sys/kernel/livepatch/test_klp_callbacks_demo/enabled
cat /sys/kernel/livepatch/test_klp_callbacks_demo/transition
rmmod test_klp_callbacks_demo
rmmod test_klp_callbacks_busy
dmesg
