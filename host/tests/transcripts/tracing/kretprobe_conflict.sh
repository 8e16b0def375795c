# A kretprobe and a live patch on one function: the first user wins, in both orders.
echo 'r:cmdret cmdline_proc_show ret=$retval' > /sys/kernel/tracing/kprobe_events
echo 1 > /sys/kernel/tracing/events/kprobes/cmdret/enable
dmesg -C
insmod livepatch-sample
dmesg
lsmod
cat /proc/cmdline
cat /sys/kernel/tracing/trace
echo 0 > /sys/kernel/tracing/events/kprobes/cmdret/enable
insmod livepatch-sample
cat /proc/cmdline
dmesg -C
echo 1 > /sys/kernel/tracing/events/kprobes/cmdret/enable
dmesg
cat /sys/kernel/tracing/enabled_functions
