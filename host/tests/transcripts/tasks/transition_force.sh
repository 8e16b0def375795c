# Forcing a blocked transition: every task still behind is switched as it is; the transition
# completes at the next try; the patch's module can never be removed, even once disabled (its
# replacement may still be running), as in Linux.
insmod test_klp_callbacks_busy block_transition=Y
insmod test_klp_callbacks_demo
echo 0 > /sys/kernel/livepatch/test_klp_callbacks_demo/force
echo 1 > /sys/kernel/livepatch/test_klp_callbacks_demo/force
cat /proc/3/patch_state
sleep 1
cat /sys/kernel/livepatch/test_klp_callbacks_demo/transition
echo 1 > /sys/kernel/livepatch/test_klp_callbacks_demo/force
echo 0 > /sys/module/test_klp_callbacks_busy/parameters/block_transition
sleep 1
echo 0 > /sys/kernel/livepatch/test_klp_callbacks_demo/enabled
cat /sys/kernel/livepatch/test_klp_callbacks_demo/transition
rmmod test_klp_callbacks_demo
lsmod
dmesg
