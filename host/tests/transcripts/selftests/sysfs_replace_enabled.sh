# tools/testing/selftests/livepatch/test-sysfs.sh, "sysfs test replace enabled": replace is
# read-only and reads 1 for a patch loaded with replace=1.
dmesg -C
insmod test_klp_atomic_replace replace=1
dmesg -c
ls -l /sys/kernel/livepatch/test_klp_atomic_replace/replace
cat /sys/kernel/livepatch/test_klp_atomic_replace/replace
echo 0 > /sys/kernel/livepatch/test_klp_atomic_replace/enabled
dmesg -c
rmmod test_klp_atomic_replace
dmesg -c
