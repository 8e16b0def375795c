# Forcing a blocked patching transition: every task still behind is switched as it is; the
# transition completes at the next try. As in Linux (klp_force_transition sets `forced` only for
# the patches being removed), forcing a patching transition does not pin the patch's module: once
# disabled, it can be removed. transition_force_unpatch.sh shows the case that pins it.
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
