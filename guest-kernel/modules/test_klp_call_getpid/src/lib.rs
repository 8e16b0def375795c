//! test_klp_call_getpid: `nr_tasks` kthreads calling the getpid syscall in a loop, their pids
//! in `/sys/kernel/test_klp_call_getpid/pids`: the tasks Linux's test-syscall.sh starts as
//! `test_klp-call_getpid` processes, for test_klp_syscall to see transition to the patch.
#![no_std]

use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use klp_guest::kobject::{self, KobjAttribute, Kobject};
use klp_guest::task::{self, TaskStruct};
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

/// The tasks started, the first `NTASKS` of them.
static TASKS: [AtomicPtr<TaskStruct>; MAX_TASKS] =
    [const { AtomicPtr::new(ptr::null_mut()) }; MAX_TASKS];
static NTASKS: AtomicUsize = AtomicUsize::new(0);
/// `/sys/kernel/test_klp_call_getpid`.
static KOBJ: AtomicPtr<Kobject> = AtomicPtr::new(ptr::null_mut());

/// The tasks started so far.
fn tasks() -> impl Iterator<Item = *mut TaskStruct> {
    TASKS[..NTASKS.load(Ordering::Relaxed)]
        .iter()
        .map(|t| t.load(Ordering::Relaxed))
}

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
    for (i, task) in tasks().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        // SAFETY: a task we started and have not stopped; `buf` is the show's page.
        len += unsafe { sysfs_emit_at!(buf, len as usize, "{sep}{}", (*task).pid) };
    }
    // SAFETY: as above.
    len + unsafe { sysfs_emit_at!(buf, len as usize, "\n") }
}

/// `__ATTR_RO(pids)`.
static PIDS_ATTR: KobjAttribute = KobjAttribute::ro(c"pids", pids_show);

/// `test_klp_call_getpid/<i>`, NUL-terminated, in `out`.
fn task_name(i: usize, out: &mut [u8; 32]) {
    const PREFIX: &[u8] = b"test_klp_call_getpid/";
    out[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 10];
    let mut n = i;
    let mut count = 0;
    loop {
        digits[count] = b'0' + (n % 10) as u8;
        count += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for (k, d) in digits[..count].iter().rev().enumerate() {
        out[PREFIX.len() + k] = *d;
    }
    out[PREFIX.len() + count] = 0;
}

/// Stops every task started and removes the sysfs directory.
fn stop_all() {
    for k in tasks() {
        // SAFETY: a task we started, stopped once.
        unsafe { task::kthread_stop(k) };
    }
    NTASKS.store(0, Ordering::Relaxed);
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
    for (i, slot) in TASKS.iter().enumerate().take(n as usize) {
        let mut name = [0u8; 32];
        task_name(i, &mut name);
        // SAFETY: a thread function of the right type; the name is NUL-terminated.
        let k =
            unsafe { task::sys::kthread_run(call_getpid, ptr::null_mut(), name.as_ptr().cast()) };
        if k.is_null() {
            stop_all();
            return -errno::ENOMEM;
        }
        slot.store(k, Ordering::Relaxed);
        NTASKS.store(i + 1, Ordering::Relaxed);
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
