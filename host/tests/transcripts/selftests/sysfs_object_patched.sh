# tools/testing/selftests/livepatch/test-sysfs.sh, "sysfs test object/patched": an object's
# patched file follows its module: 0 before test_klp_callbacks_mod loads, 1 while it is loaded
# (patched as it came), 0 after it went.
dmesg -C
insmod test_klp_callbacks_demo
dmesg -c
cat /sys/kernel/livepatch/test_klp_callbacks_demo/test_klp_callbacks_mod/patched
insmod test_klp_callbacks_mod
dmesg -c
cat /sys/kernel/livepatch/test_klp_callbacks_demo/test_klp_callbacks_mod/patched
rmmod test_klp_callbacks_mod
dmesg -c
cat /sys/kernel/livepatch/test_klp_callbacks_demo/test_klp_callbacks_mod/patched
echo 0 > /sys/kernel/livepatch/test_klp_callbacks_demo/enabled
dmesg -c
rmmod test_klp_callbacks_demo
dmesg -c
