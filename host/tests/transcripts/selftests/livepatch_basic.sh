# tools/testing/selftests/livepatch/test-livepatch.sh, "basic function patching": the patch
# changes /proc/cmdline, and the change goes with it. Each step's messages are read and cleared
# with dmesg -c, as check_result compares them (modprobe/insmod of test_modules/X.ko is insmod X).
dmesg -C
insmod test_klp_livepatch
dmesg -c
cat /proc/cmdline
echo 0 > /sys/kernel/livepatch/test_klp_livepatch/enabled
dmesg -c
ls /sys/kernel/livepatch
rmmod test_klp_livepatch
dmesg -c
cat /proc/cmdline
