# The RAM filesystem: create, append, truncate, list, remove.
echo hi > /tmp/x
cat /tmp/x
echo there >> /tmp/x
cat /tmp/x
echo -n replaced > /tmp/x
cat /tmp/x
echo
mkdir /tmp/dir
mkdir -p /tmp/a/b/c
echo nested > /tmp/a/b/c/file
ls /tmp
ls -l /tmp/a/b/c
cat /tmp/a/b/c/file
rm /tmp/x
cat /tmp/x
rmdir /tmp/a
rm -r /tmp/a
ls /tmp
mkdir /tmp/dir
rm /tmp/dir
rmdir /tmp/dir
rmdir /tmp/dir
ls /
