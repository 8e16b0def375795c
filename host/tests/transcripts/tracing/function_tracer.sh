# The function tracer: a filter, the trace with callers, globs, appending, switching off,
# and the slots returning to direct calls when the tracer goes.
ls /sys/kernel/tracing
cat /sys/kernel/tracing/available_tracers
cat /sys/kernel/tracing/current_tracer
cat /sys/kernel/tracing/set_ftrace_filter
echo cmdline_proc_show > /sys/kernel/tracing/set_ftrace_filter
echo '*_proc_show' >> /sys/kernel/tracing/set_ftrace_filter
cat /sys/kernel/tracing/set_ftrace_filter
echo function > /sys/kernel/tracing/current_tracer
cat /proc/cmdline
cat /proc/version
cat /sys/kernel/tracing/trace
cat /sys/kernel/tracing/enabled_functions
echo 0 > /sys/kernel/tracing/tracing_on
cat /proc/cmdline
echo 1 > /sys/kernel/tracing/tracing_on
echo > /sys/kernel/tracing/trace
cat /sys/kernel/tracing/trace
echo '!version_proc_show' >> /sys/kernel/tracing/set_ftrace_filter
cat /sys/kernel/tracing/set_ftrace_filter
echo do_one_initcall > /sys/kernel/tracing/set_ftrace_filter
echo no_such_function > /sys/kernel/tracing/set_ftrace_filter
echo blah > /sys/kernel/tracing/current_tracer
echo nop > /sys/kernel/tracing/current_tracer
cat /sys/kernel/tracing/enabled_functions
cat /proc/cmdline
cat /sys/kernel/tracing/trace
