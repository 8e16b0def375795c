# Pipes, filters, $?, && and ||: every file they read is in the kernel's namespace.
dmesg | grep -c 'Linux version'
dmesg | head -n 1 | grep -c Linux
printf_is_not_here | cat
echo $?
echo "status was $?" '$? stays'
false || echo fallback
false && echo never
true && echo ran; echo $?
cat /nope || echo "cat failed with $?"
echo one two three | wc -w
echo a > /tmp/l; echo c >> /tmp/l; echo b >> /tmp/l; echo a >> /tmp/l
sort /tmp/l | uniq -c
sort -r < /tmp/l | head -n 2
tail -n 1 /tmp/l
grep -v a /tmp/l /nope
grep -i A < /tmp/l | wc -l
echo x | grep 'x\|y' && echo bre
echo 'a+' | grep 'a+$' && echo aa | grep -E 'a+$'
ls / | grep -E '^(lib|proc|sys|tmp)$'
cat < /nope
echo hidden | cat > /tmp/o; cat /tmp/o
dmesg |
echo 'a' | | cat
