# /proc/sys/kernel/ftrace_enabled, as tools/testing/selftests/livepatch/test-ftrace.sh checks
# it: a live patch cannot be enabled while it is 0, and it cannot be set to 0 under a patch.
cat /proc/sys/kernel/ftrace_enabled
ls /proc/sys/kernel
echo 0 > /proc/sys/kernel/ftrace_enabled
dmesg -C
insmod test_klp_livepatch
dmesg
lsmod
echo 1 > /proc/sys/kernel/ftrace_enabled
insmod test_klp_livepatch
cat /proc/cmdline
echo 0 > /proc/sys/kernel/ftrace_enabled
cat /proc/sys/kernel/ftrace_enabled
echo 0 > /sys/kernel/livepatch/test_klp_livepatch/enabled
rmmod test_klp_livepatch
# With the tracer on, ftrace_enabled=0 stops every hook and 1 brings them back.
echo cmdline_proc_show > /sys/kernel/tracing/set_ftrace_filter
echo function > /sys/kernel/tracing/current_tracer
cat /sys/kernel/tracing/enabled_functions
echo 0 > /proc/sys/kernel/ftrace_enabled
cat /sys/kernel/tracing/enabled_functions
cat /proc/cmdline
echo 1 > /proc/sys/kernel/ftrace_enabled
cat /sys/kernel/tracing/enabled_functions
echo garbage > /proc/sys/kernel/ftrace_enabled
