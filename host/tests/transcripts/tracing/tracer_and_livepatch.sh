# The tracer and a live patch on the same function: the trace shows the old function's hook
# and the new function; enabled_functions shows both users.
echo 'cmdline_proc_show livepatch_*' > /sys/kernel/tracing/set_ftrace_filter
insmod livepatch-sample
echo 'cmdline_proc_show livepatch_*' > /sys/kernel/tracing/set_ftrace_filter
cat /sys/kernel/tracing/set_ftrace_filter
echo function > /sys/kernel/tracing/current_tracer
cat /proc/cmdline
cat /sys/kernel/tracing/enabled_functions
cat /sys/kernel/tracing/trace
echo 0 > /sys/kernel/livepatch/livepatch_sample/enabled
echo > /sys/kernel/tracing/trace
cat /proc/cmdline
cat /sys/kernel/tracing/trace
echo nop > /sys/kernel/tracing/current_tracer
cat /sys/kernel/tracing/enabled_functions
rmmod livepatch_sample
