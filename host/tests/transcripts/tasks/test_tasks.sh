# The kernel's task API, checked from a module's init running in insmod's task (test_tasks):
# msleep and its timer, completions, wait_event with and without a timeout, a work item run by
# the kworker, delayed work flushed, run by its timer and cancelled, a kthread that sleeps and
# kthread_stop waiting for it. It prints one line when every check passed.
insmod test_tasks
dmesg | grep test_tasks
rmmod test_tasks
