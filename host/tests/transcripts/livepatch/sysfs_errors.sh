# sysfs rejects what Linux rejects.
insmod livepatch-sample
echo 1 > /sys/kernel/livepatch/livepatch_sample/enabled
echo garbage > /sys/kernel/livepatch/livepatch_sample/enabled
echo 2 > /sys/kernel/livepatch/livepatch_sample/enabled
echo 1 > /sys/kernel/livepatch/livepatch_sample/transition
echo 1 > /sys/kernel/livepatch/livepatch_sample/replace
echo 1 > /sys/kernel/livepatch/livepatch_sample/stack_order
echo 1 > /sys/kernel/livepatch/livepatch_sample/vmlinux/patched
cat /sys/kernel/livepatch/livepatch_sample/force
echo 1 > /sys/kernel/livepatch/livepatch_sample/force
echo 0 > /sys/kernel/livepatch/livepatch_sample/force
echo 1 > /sys/kernel/livepatch/nope/enabled
cat /sys/kernel/livepatch/livepatch_sample/nope
echo 1 > /sys/kernel/livepatch/livepatch_sample
mkdir /sys/kernel/livepatch/new
rm /sys/kernel/livepatch/livepatch_sample/enabled
cat /sys/kernel/livepatch/livepatch_sample/enabled
ls /sys/kernel
cat /proc/cmdline
