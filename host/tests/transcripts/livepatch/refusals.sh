# Every refusal leaves the kernel as it was: no module, no sysfs entry.
dmesg -C
insmod test_klp_bad_symbol
insmod test_klp_bad_import
insmod test_klp_notrace
insmod test_klp_bad_signature
insmod test_klp_init_fail
insmod /tmp/nope.wasm
echo garbage > /tmp/garbage.wasm
insmod /tmp/garbage.wasm
insmod livepatch-sample
insmod livepatch-sample
rmmod livepatch_sample
lsmod
ls /sys/kernel/livepatch
dmesg
