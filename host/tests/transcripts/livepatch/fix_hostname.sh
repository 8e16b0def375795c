# Bug (a): the hostname writer has no bounds check; klp-fix-hostname is Linux's proc_dostring.
echo aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaOVERFLOW > /proc/sys/kernel/hostname
uname -a
cat /proc/sys/kernel/osrelease
insmod klp-fix-hostname
uname -a
echo aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaOVERFLOW > /proc/sys/kernel/hostname
uname -a
cat /proc/sys/kernel/hostname
