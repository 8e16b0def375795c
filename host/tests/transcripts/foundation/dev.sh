# devtmpfs at /dev: the memory devices of drivers/char/mem.c.
ls -l /dev
echo discarded > /dev/null
cat /dev/null | wc -c
grep -c dev /proc/mounts
# /dev/zero never ends: the shell holds whole files, so reading it stops at 64 MiB.
cat /dev/zero
# finit_module reads regular files only.
insmod /dev/zero
rm /dev/null
ls /dev
