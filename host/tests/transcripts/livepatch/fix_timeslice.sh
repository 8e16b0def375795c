# Bug (b): a zero timeslice is accepted and the next read of /proc/schedstat divides by it:
# an oops. The kernel survives; klp-fix-timeslice rejects the value.
echo 0 > /proc/sys/kernel/sched_rr_timeslice_ms
cat /proc/schedstat
cat /proc/cmdline
echo 100 > /proc/sys/kernel/sched_rr_timeslice_ms
insmod klp-fix-timeslice
echo 0 > /proc/sys/kernel/sched_rr_timeslice_ms
echo -5 > /proc/sys/kernel/sched_rr_timeslice_ms
echo 10 > /proc/sys/kernel/sched_rr_timeslice_ms
cat /proc/sys/kernel/sched_rr_timeslice_ms
cat /proc/schedstat > /tmp/schedstat
dmesg
