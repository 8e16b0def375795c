# A patch for a module: applied when the module loads, reverted when it goes, in either order.
insmod test_klp_mod_target
cat /proc/test_klp_mod_target
insmod test_klp_mod_patch
cat /proc/test_klp_mod_target
cat /sys/kernel/livepatch/test_klp_mod_patch/test_klp_mod_target/patched
rmmod test_klp_mod_target
cat /sys/kernel/livepatch/test_klp_mod_patch/test_klp_mod_target/patched
cat /proc/test_klp_mod_target
insmod test_klp_mod_target
cat /proc/test_klp_mod_target
ls /sys/kernel/livepatch/test_klp_mod_patch/test_klp_mod_target
echo 0 > /sys/kernel/livepatch/test_klp_mod_patch/enabled
cat /proc/test_klp_mod_target
rmmod test_klp_mod_patch test_klp_mod_target
dmesg -C
# The patch first, the target after.
insmod test_klp_mod_patch
ls /sys/kernel/livepatch/test_klp_mod_patch
cat /sys/kernel/livepatch/test_klp_mod_patch/test_klp_mod_target/patched
insmod test_klp_mod_target
cat /proc/test_klp_mod_target
rmmod test_klp_mod_target
dmesg
