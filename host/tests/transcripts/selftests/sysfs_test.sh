# tools/testing/selftests/livepatch/test-sysfs.sh, "sysfs test": the patch's directory and
# attributes with their modes (check_sysfs_rights reads them as ls -l shows them) and values.
dmesg -C
insmod test_klp_livepatch
dmesg -c
ls -l /sys/kernel/livepatch
ls -l /sys/kernel/livepatch/test_klp_livepatch
cat /sys/kernel/livepatch/test_klp_livepatch/enabled
cat /sys/kernel/livepatch/test_klp_livepatch/stack_order
cat /sys/kernel/livepatch/test_klp_livepatch/transition
ls -l /sys/kernel/livepatch/test_klp_livepatch/vmlinux
cat /sys/kernel/livepatch/test_klp_livepatch/vmlinux/patched
echo 0 > /sys/kernel/livepatch/test_klp_livepatch/enabled
dmesg -c
ls /sys/kernel/livepatch
rmmod test_klp_livepatch
dmesg -c
