# tools/testing/selftests/livepatch/test-sysfs.sh, "sysfs test replace disabled": 0 for
# replace=0.
dmesg -C
insmod test_klp_atomic_replace replace=0
dmesg -c
ls -l /sys/kernel/livepatch/test_klp_atomic_replace/replace
cat /sys/kernel/livepatch/test_klp_atomic_replace/replace
echo 0 > /sys/kernel/livepatch/test_klp_atomic_replace/enabled
dmesg -c
rmmod test_klp_atomic_replace
dmesg -c
