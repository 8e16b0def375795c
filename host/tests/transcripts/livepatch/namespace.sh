# One namespace: the modules live in /lib/modules/<release>, read-only; /tmp is the kernel's.
uname -r
ls /lib/modules
ls -l /lib/modules/6.12.0-klp | grep -c wasm
ls /lib/modules/6.12.0-klp | grep livepatch-sample
cat /proc/mounts
echo garbage > /tmp/g.wasm
insmod /tmp/g.wasm
insmod nope
insmod /nope.wasm
echo x > /lib/modules/6.12.0-klp/hello.wasm
mkdir /lib/modules/6.12.0-klp/d
rmdir /lib/modules/6.12.0-klp
insmod hello && lsmod | grep -c hello
rmmod hello
cat /proc/kallsyms | grep -c ' t cmdline_proc_show$'
insmod livepatch-sample && cat /proc/cmdline
dmesg | grep livepatch: | grep -c transition
lsmod | wc -l
