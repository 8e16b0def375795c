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
# Disabled patches are freed; loaded again in the other order, the other one is last.
ls /sys/kernel/livepatch
rmmod test_klp_livepatch livepatch_sample
dmesg -C
insmod livepatch-sample
insmod test_klp_livepatch
cat /proc/cmdline
echo 0 > /sys/kernel/livepatch/livepatch_sample/enabled
dmesg
