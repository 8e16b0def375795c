# A transition blocked by a kernel thread in an interruptible sleep ends when it is signaled, as
# in Linux (kernel/livepatch/transition.c: after 15 tries, klp_send_signals wakes a kthread
# sleeping in TASK_INTERRUPTIBLE; a user task would get a fake signal). klp_sleeper/0 sleeps an
# hour at a time in sleeper_func, the function the patch replaces, so the patching transition
# waits; 15 s after it started the kthread is woken, leaves sleeper_func, switches at
# cond_resched() and sleeps again in the new function, and the next try completes. Disabling
# then waits for the kthread sleeping in the NEW function, until it is signaled in turn.
insmod test_klp_sleeper
ps
cat /proc/5/stack
insmod test_klp_sleeper_patch
cat /sys/kernel/livepatch/test_klp_sleeper_patch/transition
cat /proc/5/patch_state
sleep 14
cat /sys/kernel/livepatch/test_klp_sleeper_patch/transition
cat /proc/5/patch_state
sleep 2
cat /sys/kernel/livepatch/test_klp_sleeper_patch/transition
cat /proc/5/stack
echo 0 > /sys/kernel/livepatch/test_klp_sleeper_patch/enabled
cat /sys/kernel/livepatch/test_klp_sleeper_patch/transition
cat /proc/5/patch_state
sleep 14
cat /sys/kernel/livepatch/test_klp_sleeper_patch/transition
sleep 2
cat /sys/kernel/livepatch/test_klp_sleeper_patch/transition
cat /proc/5/stack
rmmod test_klp_sleeper_patch
rmmod test_klp_sleeper
lsmod
dmesg
