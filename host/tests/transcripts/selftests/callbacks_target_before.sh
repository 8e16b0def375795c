# tools/testing/selftests/livepatch/test-callbacks.sh, "target module before livepatch":
# pre-patch callbacks run for the loaded objects (vmlinux and test_klp_callbacks_mod) before the transition
# starts, post-patch ones once it completes; the same for unpatching. Each step's messages are
# read and cleared with dmesg -c, as check_result compares them (modprobe is insmod here).
dmesg -C
insmod test_klp_callbacks_mod
dmesg -c
insmod test_klp_callbacks_demo
dmesg -c
echo 0 > /sys/kernel/livepatch/test_klp_callbacks_demo/enabled
dmesg -c
rmmod test_klp_callbacks_demo
dmesg -c
rmmod test_klp_callbacks_mod
dmesg -c
