# tools/testing/selftests/livepatch/test-callbacks.sh, "multiple livepatches":
# two livepatches: each one's callbacks run as its own transitions progress.
dmesg -C
insmod test_klp_callbacks_demo
dmesg -c
insmod test_klp_callbacks_demo2
dmesg -c
echo 0 > /sys/kernel/livepatch/test_klp_callbacks_demo2/enabled
dmesg -c
echo 0 > /sys/kernel/livepatch/test_klp_callbacks_demo/enabled
dmesg -c
rmmod test_klp_callbacks_demo2
dmesg -c
rmmod test_klp_callbacks_demo
dmesg -c
