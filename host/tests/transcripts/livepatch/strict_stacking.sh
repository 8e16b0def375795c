#! cmdline: console=hvc0 klp.strict_stacking=1
# The 2016 rule, with klp.strict_stacking=1: patches are disabled in exactly the reverse order
# of enabling.
insmod test_klp_livepatch
insmod livepatch-sample
cat /proc/cmdline
echo 0 > /sys/kernel/livepatch/test_klp_livepatch/enabled
cat /proc/cmdline
echo 0 > /sys/kernel/livepatch/livepatch_sample/enabled
cat /proc/cmdline
echo 0 > /sys/kernel/livepatch/test_klp_livepatch/enabled
cat /proc/cmdline
dmesg -C
echo 1 > /sys/kernel/livepatch/livepatch_sample/enabled
echo 1 > /sys/kernel/livepatch/test_klp_livepatch/enabled
cat /proc/cmdline
echo 0 > /sys/kernel/livepatch/livepatch_sample/enabled
dmesg
