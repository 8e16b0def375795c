# The 2016 API: klp_register_patch() registers, enabling is a separate step; patches can be
# enabled in another order than they were registered.
insmod test_klp_split_api
cat /sys/kernel/livepatch/test_klp_split_api/enabled
cat /proc/version
insmod test_klp_livepatch
cat /sys/kernel/livepatch/test_klp_split_api/stack_order
cat /sys/kernel/livepatch/test_klp_livepatch/stack_order
dmesg -C
echo 1 > /sys/kernel/livepatch/test_klp_split_api/enabled
cat /proc/version
cat /sys/kernel/livepatch/test_klp_split_api/stack_order
cat /sys/kernel/livepatch/test_klp_livepatch/stack_order
rmmod test_klp_split_api
echo 0 > /sys/kernel/livepatch/test_klp_split_api/enabled
cat /proc/version
rmmod test_klp_split_api
ls /sys/kernel/livepatch
dmesg
