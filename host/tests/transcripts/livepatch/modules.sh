# Kernel modules: init and exit run, /proc/modules and lsmod list them.
dmesg -C
insmod hello
lsmod
cat /proc/modules
dmesg -c
insmod hello
rmmod hello
rmmod hello
dmesg
lsmod
