# samples/livepatch/livepatch-sample.c: patch, unpatch, remove, with the full log. As in today's
# kernel, a patch klp_enable_patch() enabled is freed once disabled: its sysfs directory goes,
# and it is enabled again by loading its module again.
dmesg -C
cat /proc/cmdline
insmod livepatch-sample
cat /proc/cmdline
lsmod
cat /proc/modules
ls -l /sys/kernel/livepatch
ls -l /sys/kernel/livepatch/livepatch_sample
ls -l /sys/kernel/livepatch/livepatch_sample/vmlinux
cat /sys/kernel/livepatch/livepatch_sample/enabled
cat /sys/kernel/livepatch/livepatch_sample/transition
cat /sys/kernel/livepatch/livepatch_sample/replace
cat /sys/kernel/livepatch/livepatch_sample/stack_order
cat /sys/kernel/livepatch/livepatch_sample/vmlinux/patched
rmmod livepatch_sample
echo 0 > /sys/kernel/livepatch/livepatch_sample/enabled
cat /proc/cmdline
ls /sys/kernel/livepatch
cat /sys/kernel/livepatch/livepatch_sample/vmlinux/patched
echo 1 > /sys/kernel/livepatch/livepatch_sample/enabled
rmmod livepatch_sample
insmod livepatch-sample
cat /proc/cmdline
echo 0 > /sys/kernel/livepatch/livepatch_sample/enabled
rmmod livepatch_sample
ls /sys/kernel/livepatch
lsmod
cat /proc/cmdline
dmesg
