# tools/testing/selftests/livepatch/test-callbacks.sh, "busy target module":
# test_klp_callbacks_busy's work item sleeps in busymod_work_func, which the patch replaces: the transition
# stalls (transition reads 1). test_klp_callbacks_mod loads meanwhile: its pre-patch callback runs, no post-patch
# one while the patch is in transition; as it unloads, no pre-unpatch callback, but its
# post-unpatch one. Writing 0 reverses the transition; the unpatching completes with the
# post-unpatch callbacks of the objects whose pre-patch ran (load_lp_nowait is insmod: it
# returns once the transition started).
dmesg -C
insmod test_klp_callbacks_busy block_transition=Y
dmesg -c
insmod test_klp_callbacks_demo
dmesg -c
cat /sys/kernel/livepatch/test_klp_callbacks_demo/transition
insmod test_klp_callbacks_mod
dmesg -c
rmmod test_klp_callbacks_mod
dmesg -c
echo 0 > /sys/kernel/livepatch/test_klp_callbacks_demo/enabled
sleep 1
dmesg -c
rmmod test_klp_callbacks_demo
dmesg -c
rmmod test_klp_callbacks_busy
dmesg -c
