# Signals do not end an uninterruptible sleep, as in Linux (klp_send_signals wakes a kthread only
# from TASK_INTERRUPTIBLE): the kworker sleeps in msleep() inside busymod_work_func, so the
# transition is still blocked after it was signaled at 15 s and again at 30 s; Linux logs
# `signaling remaining tasks` only the first time (klp_signals_cnt == SIGNALS_TIMEOUT). Once the
# work leaves the function, the next try completes the transition.
insmod test_klp_callbacks_busy block_transition=Y
insmod test_klp_callbacks_demo
sleep 31
cat /sys/kernel/livepatch/test_klp_callbacks_demo/transition
cat /proc/3/patch_state
cat /proc/3/stack
echo 0 > /sys/module/test_klp_callbacks_busy/parameters/block_transition
sleep 1
cat /sys/kernel/livepatch/test_klp_callbacks_demo/transition
echo 0 > /sys/kernel/livepatch/test_klp_callbacks_demo/enabled
rmmod test_klp_callbacks_demo
rmmod test_klp_callbacks_busy
dmesg
