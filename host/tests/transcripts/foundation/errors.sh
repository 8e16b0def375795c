# Errors read like the real tools'.
cat /proc/nope
cat /tmp
echo x > /proc/cmdline
echo x > /proc/sys/kernel/osrelease
echo x > /proc/newfile
echo x > /nodir/file
mkdir /proc/x
rm /proc/cmdline
rm /nope
rm -f /nope
rmdir /proc
ls /nope
ls -l /tmp/nope /proc/cmdline
mkdir
cat
nosuchcommand
sleep soon
uname -x
dmesg -z
echo 'unterminated
echo a | cat &
insmod
insmod nope
rmmod
rmmod nope
echo still alive
