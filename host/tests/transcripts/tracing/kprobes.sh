# kprobes and kretprobes on function entry, defined in kprobe_events.
echo 'p:myprobe cmdline_proc_show $arg1' > /sys/kernel/tracing/kprobe_events
echo 'r:myretprobe sys_read ret=$retval' >> /sys/kernel/tracing/kprobe_events
echo 'p version_proc_show' >> /sys/kernel/tracing/kprobe_events
cat /sys/kernel/tracing/kprobe_events
ls /sys/kernel/tracing/events/kprobes
ls /sys/kernel/tracing/events/kprobes/myprobe
cat /sys/kernel/tracing/events/kprobes/myprobe/enable
echo 1 > /sys/kernel/tracing/events/kprobes/myprobe/enable
echo 1 > /sys/kernel/tracing/events/kprobes/myretprobe/enable
cat /proc/cmdline
cat /sys/kernel/tracing/trace
cat /sys/kernel/tracing/enabled_functions
echo > /sys/kernel/tracing/kprobe_events
echo '-:myprobe' >> /sys/kernel/tracing/kprobe_events
echo 0 > /sys/kernel/tracing/events/kprobes/myprobe/enable
echo '-:myprobe' >> /sys/kernel/tracing/kprobe_events
cat /sys/kernel/tracing/kprobe_events
echo 'p:bad no_such_function' >> /sys/kernel/tracing/kprobe_events
echo 'p:glue do_one_initcall' >> /sys/kernel/tracing/kprobe_events
echo 'p:myretprobe cmdline_proc_show' >> /sys/kernel/tracing/kprobe_events
echo 'p:x cmdline_proc_show $retval' >> /sys/kernel/tracing/kprobe_events
echo 'q:x cmdline_proc_show' >> /sys/kernel/tracing/kprobe_events
echo 1 > /sys/kernel/tracing/events/kprobes/nope/enable
echo 0 > /sys/kernel/tracing/events/kprobes/myretprobe/enable
echo > /sys/kernel/tracing/kprobe_events
cat /sys/kernel/tracing/kprobe_events
cat /sys/kernel/tracing/enabled_functions
