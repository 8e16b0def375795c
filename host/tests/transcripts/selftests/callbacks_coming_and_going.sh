# tools/testing/selftests/livepatch/test-callbacks.sh, "module_coming and module_going notifiers":
# the livepatch first, then the target comes and goes: its callbacks run as it does.
dmesg -C
insmod test_klp_callbacks_demo
dmesg -c
insmod test_klp_callbacks_mod
dmesg -c
rmmod test_klp_callbacks_mod
dmesg -c
echo 0 > /sys/kernel/livepatch/test_klp_callbacks_demo/enabled
dmesg -c
rmmod test_klp_callbacks_demo
dmesg -c
