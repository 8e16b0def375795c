# tools/testing/selftests/livepatch/test-callbacks.sh, "module_coming + pre-patch callback -ENODEV":
# pre_patch_ret written to -19 under /sys/module after the enable: the target's pre-patch
# callback fails as it loads, so the loader refuses it (ENODEV); vmlinux's unpatch callbacks
# still run at disable.
dmesg -C
insmod test_klp_callbacks_demo
dmesg -c
echo -19 > /sys/module/test_klp_callbacks_demo/parameters/pre_patch_ret
dmesg -c
insmod test_klp_callbacks_mod
dmesg -c
echo 0 > /sys/kernel/livepatch/test_klp_callbacks_demo/enabled
dmesg -c
rmmod test_klp_callbacks_demo
dmesg -c
