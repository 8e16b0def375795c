# Forcing an unpatching transition pins the patch's module, as in Linux (klp_force_transition
# sets `forced` only for the patches being removed, and a forced patch never puts its module):
# klp_sleeper/0 sleeps in the patch's own sleeper_func, so disabling waits for it; `force`
# switches it as it is (Linux's message says "patched state" whatever the direction) and the
# transition completes at the next try. The kthread may still run the patch's code, so the
# patch's module keeps its reference for ever and rmmod says it is in use; the target goes.
# (test_klp_sleeper_patch stays listed in /sys/kernel/livepatch: disabling does not free a
# patch here, docs/livepatch.md §9.)
insmod test_klp_sleeper
ps
insmod test_klp_sleeper_patch
sleep 16
cat /sys/kernel/livepatch/test_klp_sleeper_patch/transition
echo 0 > /sys/kernel/livepatch/test_klp_sleeper_patch/enabled
cat /sys/kernel/livepatch/test_klp_sleeper_patch/transition
cat /proc/5/patch_state
cat /proc/5/stack
cat /sys/module/test_klp_sleeper_patch/refcnt
echo 1 > /sys/kernel/livepatch/test_klp_sleeper_patch/force
cat /proc/5/patch_state
sleep 1
cat /sys/kernel/livepatch/test_klp_sleeper_patch/transition
cat /sys/kernel/livepatch/test_klp_sleeper_patch/enabled
cat /sys/module/test_klp_sleeper_patch/refcnt
rmmod test_klp_sleeper_patch
rmmod test_klp_sleeper
lsmod
dmesg
