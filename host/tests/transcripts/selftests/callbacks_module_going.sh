# tools/testing/selftests/livepatch/test-callbacks.sh, "module_going notifier":
# the target unloads while patched: only its pre/post-unpatch callbacks run then
# (klp_module_going, state GOING); at disable only vmlinux's.
dmesg -C
insmod test_klp_callbacks_mod
dmesg -c
insmod test_klp_callbacks_demo
dmesg -c
rmmod test_klp_callbacks_mod
dmesg -c
echo 0 > /sys/kernel/livepatch/test_klp_callbacks_demo/enabled
dmesg -c
rmmod test_klp_callbacks_demo
dmesg -c
