#! cmdline: console=hvc0 loglevel=7
# The kernel log, as dmesg prints it; -c reads and clears, -C clears.
dmesg
dmesg -C
dmesg
echo hello > /tmp/greeting
dmesg -c
lsmod
sleep 0
help
