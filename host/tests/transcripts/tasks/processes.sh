# Tasks: the idle task, init, kthreadd and the kworker at boot; every command is a process of
# its own (a new pid each time), kernel threads come and go with their module.
ps
cat /proc/0/comm
cat /proc/3/comm
cat /proc/3/stat
cat /proc/3/patch_state
ls /proc/3
cat /proc/3/stack
insmod test_klp_call_getpid nr_tasks=2
cat /sys/kernel/test_klp_call_getpid/pids
ps
sleep 1
rmmod test_klp_call_getpid
ps
cat /proc/uptime
