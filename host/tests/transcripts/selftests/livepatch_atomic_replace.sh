# tools/testing/selftests/livepatch/test-livepatch.sh, "atomic replace livepatch": three
# patches (test_klp_livepatch, test_klp_syscall, test_klp_callbacks_demo), then test_klp_atomic_replace replace=1: once its transition completes the three are
# disabled and freed (only its directory is left, none of the replaced patches' unpatch
# callbacks runs), their modules can be removed, and its own change stays until it is disabled.
dmesg -C
insmod test_klp_livepatch
dmesg -c
grep 'live patched' /proc/cmdline > /dev/kmsg
grep 'live patched' /proc/meminfo > /dev/kmsg
insmod test_klp_syscall
dmesg -c
insmod test_klp_callbacks_demo
dmesg -c
ls /sys/kernel/livepatch
ls /sys/kernel/livepatch | wc -l
insmod test_klp_atomic_replace replace=1
dmesg -c
grep 'live patched' /proc/cmdline > /dev/kmsg
grep 'live patched' /proc/meminfo > /dev/kmsg
ls /sys/kernel/livepatch
rmmod test_klp_callbacks_demo
rmmod test_klp_syscall
rmmod test_klp_livepatch
dmesg -c
grep 'live patched' /proc/cmdline > /dev/kmsg
grep 'live patched' /proc/meminfo > /dev/kmsg
echo 0 > /sys/kernel/livepatch/test_klp_atomic_replace/enabled
dmesg -c
rmmod test_klp_atomic_replace
dmesg -c
grep 'live patched' /proc/cmdline > /dev/kmsg
grep 'live patched' /proc/meminfo > /dev/kmsg
