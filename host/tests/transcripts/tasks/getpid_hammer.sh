# tools/testing/selftests/livepatch/test-syscall.sh, with kernel threads standing in for its
# user-space getpid loops: test_klp_call_getpid starts 8 tasks calling the getpid syscall, and
# test_klp_syscall patches getpid and counts down npids as each listed task first runs the new
# one. The transition completes while the tasks keep calling; npids reaches 0. The tasks are
# runnable, preempted between calls: they switch at syscall exit, so the transition takes a
# moment each way (the selftest waits with loop_until; here a second of `sleep`).
insmod test_klp_call_getpid nr_tasks=8
cat /sys/kernel/test_klp_call_getpid/pids
insmod test_klp_syscall klp_pids=5,6,7,8,9,10,11,12
cat /sys/kernel/livepatch/test_klp_syscall/transition
sleep 1
cat /sys/kernel/test_klp_syscall/npids
cat /sys/kernel/livepatch/test_klp_syscall/transition
echo 0 > /sys/kernel/livepatch/test_klp_syscall/enabled
sleep 1
ls /sys/kernel/livepatch
rmmod test_klp_syscall
rmmod test_klp_call_getpid
ps
dmesg | grep -v ' T\] [A-Z]'
