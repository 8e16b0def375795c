//! test_klp_call_getpid: `nr_tasks` kthreads calling the getpid syscall in a loop, their pids
//! in `/sys/kernel/test_klp_call_getpid/pids`: the tasks Linux's test-syscall.sh starts as
//! `test_klp-call_getpid` processes, for test_klp_syscall to see transition to the patch.
#![no_std]

use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

use klp_guest::kobject::{self, KobjAttribute, Kobject};
use klp_guest::kthreads::{KthreadName, Kthreads};
use klp_guest::task;
use klp_guest::{errno, module_param, pr_err, sysfs_emit_at};

module_param!(nr_tasks: i32 = 1, 0o444);

/// The most tasks it starts (the selftest's MAXPROC).
const MAX_TASKS: usize = 128;

/// The getpid syscall itself: imported by name, so each call goes through the kernel's function
/// (and whatever patch replaces it).
fn x64_sys_getpid() -> i32 {
    // SAFETY: no arguments.
    unsafe { task::sys::__x64_sys_getpid() }
}

/// The tasks started.
static TASKS: Kthreads<MAX_TASKS> = Kthreads::new();
/// `/sys/kernel/test_klp_call_getpid`.
static KOBJ: AtomicPtr<Kobject> = AtomicPtr::new(ptr::null_mut());

/// Each kthread: getpid, yield, until rmmod stops it.
unsafe extern "C" fn call_getpid(_data: *mut c_void) -> i32 {
    while !task::kthread_should_stop() {
        x64_sys_getpid();
        task::cond_resched();
    }
    0
}

/// Shows the pids, comma-separated, and a newline.
unsafe extern "C" fn pids_show(
    _kobj: *mut Kobject,
    _attr: *mut KobjAttribute,
    buf: *mut u8,
) -> isize {
    let mut len = 0;
    for (i, task) in TASKS.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        // SAFETY: a task we started and have not stopped; `buf` is the show's page.
        len += unsafe { sysfs_emit_at!(buf, len as usize, "{sep}{}", (*task).pid) };
    }
    // SAFETY: as above.
    len + unsafe { sysfs_emit_at!(buf, len as usize, "\n") }
}

/// `__ATTR_RO(pids)`.
static PIDS_ATTR: KobjAttribute = KobjAttribute::ro(c"pids", pids_show);

/// Stops every task started and removes the sysfs directory.
fn stop_all() {
    TASKS.stop_all();
    // SAFETY: the kobject init made (or NULL), put once.
    unsafe { kobject::kobject_put(KOBJ.swap(ptr::null_mut(), Ordering::Relaxed)) };
}

/// Starts `nr_tasks` kthreads and lists their pids in sysfs.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    let n = nr_tasks.get();
    if n < 1 || n as usize > MAX_TASKS {
        pr_err!("test_klp_call_getpid: nr_tasks must be 1 to 128");
        return -errno::EINVAL;
    }
    for i in 0..n as usize {
        let name = KthreadName::new("test_klp_call_getpid/", i);
        // SAFETY: `call_getpid` ignores its data.
        if let Err(err) = unsafe { TASKS.start(call_getpid, ptr::null_mut(), &name) } {
            stop_all();
            return err;
        }
    }
    // SAFETY: the kernel's kobject as parent.
    let kobj =
        unsafe { kobject::kobject_create_and_add(c"test_klp_call_getpid", kobject::kernel_kobj()) };
    if kobj.is_null() {
        stop_all();
        return -errno::ENOMEM;
    }
    KOBJ.store(kobj, Ordering::Relaxed);
    // SAFETY: the kobject just made; the attribute is a static.
    let ret = unsafe { kobject::sysfs_create_file(kobj, &PIDS_ATTR) };
    if ret != 0 {
        stop_all();
    }
    ret
}

/// Stops the tasks (`kthread_stop` waits for each to return).
#[unsafe(no_mangle)]
pub extern "C" fn cleanup_module() {
    stop_all();
}
