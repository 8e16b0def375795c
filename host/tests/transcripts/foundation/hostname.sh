# The hostname is a sysctl; short names behave.
uname -n
echo klp-box > /proc/sys/kernel/hostname
uname -n
cat /proc/sys/kernel/hostname
uname -a
