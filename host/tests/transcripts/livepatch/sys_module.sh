# /sys/module: a loaded module's state, references, holders and parameters (kernel/params.c).
insmod test_klp_provider
insmod test_klp_provider_patch
insmod test_klp_lockup in_exit=0
ls /sys/module
ls /sys/module/test_klp_lockup
cat /sys/module/test_klp_lockup/initstate /sys/module/test_klp_lockup/refcnt
ls -l /sys/module/test_klp_lockup/parameters
cat /sys/module/test_klp_lockup/parameters/in_init
echo 0x10 > /sys/module/test_klp_lockup/parameters/in_init
cat /sys/module/test_klp_lockup/parameters/in_init
echo 2147483648 > /sys/module/test_klp_lockup/parameters/in_init
echo 1x > /sys/module/test_klp_lockup/parameters/in_init
cat /sys/module/test_klp_lockup/parameters/in_init
echo 0 > /sys/module/test_klp_lockup/parameters/in_init
# A patch module: the livepatch taint; its provider is held by it.
cat /sys/module/test_klp_provider_patch/taint
ls /sys/module/test_klp_provider/holders
cat /sys/module/test_klp_provider/refcnt
# test_klp_bench's parameters are read-only; hello has none.
insmod test_klp_bench funcs=3
ls -l /sys/module/test_klp_bench/parameters
echo 5 > /sys/module/test_klp_bench/parameters/funcs
insmod hello
ls /sys/module/hello/parameters
rmmod test_klp_lockup
ls /sys/module
cat /sys/module/test_klp_lockup/refcnt
