# dmesg -x shows each line's level, as Linux logs livepatch's messages (pr_notice, pr_debug, pr_info).
dmesg -C
insmod livepatch-sample
dmesg -x
echo 0 > /sys/kernel/livepatch/livepatch_sample/enabled
dmesg -r | grep unpatching
dmesg -x | grep -c ':debug : '
dmesg -q
