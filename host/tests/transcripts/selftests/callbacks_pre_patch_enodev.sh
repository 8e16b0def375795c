# tools/testing/selftests/livepatch/test-callbacks.sh, "pre-patch callback -ENODEV":
# vmlinux's pre-patch callback returns -19: the enable is canceled and insmod fails with
# ENODEV; no post-unpatch callback runs for the object whose pre-patch failed.
dmesg -C
insmod test_klp_callbacks_mod
dmesg -c
insmod test_klp_callbacks_demo pre_patch_ret=-19
dmesg -c
rmmod test_klp_callbacks_mod
dmesg -c
