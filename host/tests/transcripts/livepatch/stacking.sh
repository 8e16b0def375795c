# Two patches on the same function: the func_stack's top wins; today's kernel disables in
# any order (and frees a disabled patch: it comes back by loading its module again).
insmod test_klp_livepatch
insmod livepatch-sample
cat /proc/cmdline
cat /sys/kernel/livepatch/test_klp_livepatch/stack_order
cat /sys/kernel/livepatch/livepatch_sample/stack_order
# Disable the bottom patch first: the top one stays in charge.
echo 0 > /sys/kernel/livepatch/test_klp_livepatch/enabled
cat /proc/cmdline
# It is freed: load it again, it goes on top of the stack.
ls /sys/kernel/livepatch
rmmod test_klp_livepatch
insmod test_klp_livepatch
cat /proc/cmdline
cat /sys/kernel/livepatch/test_klp_livepatch/stack_order
cat /sys/kernel/livepatch/livepatch_sample/stack_order
# Disable the top one: the one below shows through.
echo 0 > /sys/kernel/livepatch/test_klp_livepatch/enabled
cat /proc/cmdline
echo 0 > /sys/kernel/livepatch/livepatch_sample/enabled
cat /proc/cmdline
rmmod test_klp_livepatch livepatch_sample
# The other order of loading.
insmod livepatch-sample
insmod test_klp_livepatch
cat /proc/cmdline
echo 0 > /sys/kernel/livepatch/test_klp_livepatch/enabled
cat /proc/cmdline
echo 0 > /sys/kernel/livepatch/livepatch_sample/enabled
cat /proc/cmdline
