# While a transition is in progress: enabling another patch and disabling another patch are
# EBUSY, writing the value `enabled` already has is EINVAL, and the patch's module is in use.
insmod livepatch-sample
insmod test_klp_callbacks_busy block_transition=Y
insmod test_klp_callbacks_demo
cat /sys/kernel/livepatch/test_klp_callbacks_demo/transition
insmod test_klp_livepatch
echo 0 > /sys/kernel/livepatch/livepatch_sample/enabled
echo 1 > /sys/kernel/livepatch/test_klp_callbacks_demo/enabled
rmmod test_klp_callbacks_demo
cat /sys/kernel/livepatch/livepatch_sample/enabled
cat /sys/module/test_klp_callbacks_demo/refcnt
echo 0 > /sys/module/test_klp_callbacks_busy/parameters/block_transition
sleep 1
cat /sys/kernel/livepatch/test_klp_callbacks_demo/transition
echo 0 > /sys/kernel/livepatch/livepatch_sample/enabled
cat /sys/kernel/livepatch/livepatch_sample/enabled
