# tools/testing/selftests/livepatch/test-callbacks.sh, "module_coming notifier":
# the livepatch first: only vmlinux's callbacks run at enable; test_klp_callbacks_mod's pre/post-patch callbacks
# run when it loads (klp_module_coming, state COMING); at disable both objects' unpatch ones.
dmesg -C
insmod test_klp_callbacks_demo
dmesg -c
insmod test_klp_callbacks_mod
dmesg -c
echo 0 > /sys/kernel/livepatch/test_klp_callbacks_demo/enabled
dmesg -c
rmmod test_klp_callbacks_demo
dmesg -c
rmmod test_klp_callbacks_mod
dmesg -c
