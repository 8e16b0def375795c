# A kprobe in a function that a live patch redirects is not hit, and the kernel says so,
# whichever comes first.
echo 'p:cmdprobe cmdline_proc_show' > /sys/kernel/tracing/kprobe_events
echo 1 > /sys/kernel/tracing/events/kprobes/cmdprobe/enable
cat /proc/cmdline
dmesg -C
insmod livepatch-sample
dmesg
echo > /sys/kernel/tracing/trace
cat /proc/cmdline
cat /sys/kernel/tracing/trace
echo 0 > /sys/kernel/livepatch/livepatch_sample/enabled
cat /proc/cmdline
cat /sys/kernel/tracing/trace
echo 0 > /sys/kernel/tracing/events/kprobes/cmdprobe/enable
# The disabled patch was freed: load it again.
rmmod livepatch_sample
insmod livepatch-sample
dmesg -C
echo 1 > /sys/kernel/tracing/events/kprobes/cmdprobe/enable
dmesg
