#! cmdline: console=hvc0 quiet root=/dev/ram0
# procfs files are seq_file show callbacks called through function pointers.
cat /proc/cmdline
cat /proc/version
uname -a
uname -s -r -m
ls /proc
ls -l /proc/sys/kernel
cat /proc/sys/kernel/osrelease
cat /proc/modules
cat /proc/nope
cat /proc
