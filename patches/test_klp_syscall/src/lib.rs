//! test_klp_syscall: replaces the getpid syscall (`__x64_sys_getpid`) and counts down the tasks
//! of `klp_pids` that called the patched version, in `/sys/kernel/test_klp_syscall/npids`, as
//! Linux's selftest patch of that name.
#![no_std]

use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use klp_guest::kobject::{self, KobjAttribute, Kobject};
use klp_guest::task;
use klp_guest::{KlpFunc, KlpObject, KlpPatch, errno, klp_enable_patch, module_param_array};

/// `NR_CPUS`: room for one pid per task test_klp_call_getpid starts (at most 128, the
/// selftest's MAXPROC).
const NR_CPUS: usize = 128;

// The pids to see patched; the count (`npids_pending`, Linux's `nump`) goes down as each
// calls the patched getpid.
module_param_array!(klp_pids: [i32; NR_CPUS], 0);

/// How many pids were given, saved before any is counted down.
static NPIDS: AtomicUsize = AtomicUsize::new(0);
/// `/sys/kernel/test_klp_syscall`.
static KLP_KOBJ: AtomicPtr<Kobject> = AtomicPtr::new(core::ptr::null_mut());

/// `current->pid`.
fn current_pid() -> i32 {
    // SAFETY: `current` is always a live task (init_task outside any task).
    unsafe { (*task::current()).pid }
}

/// Shows `npids_pending` and a newline.
unsafe extern "C" fn npids_show(
    _kobj: *mut Kobject,
    _attr: *mut KobjAttribute,
    buf: *mut u8,
) -> isize {
    // SAFETY: `buf` is the page the kernel gave this show.
    unsafe { klp_guest::sysfs_emit!(buf, "{}\n", klp_pids.len()) }
}

/// `__ATTR_RO(npids)`.
static KLP_ATTR: KobjAttribute = KobjAttribute::ro(c"npids", npids_show);

/// The replacement for `__x64_sys_getpid`: the first call of each pid in `klp_pids` clears it
/// and counts it. Linux takes `kpid_mutex` here; the guest's tasks switch only when they sleep
/// or yield, which nothing in this function does.
unsafe extern "C" fn lp_sys_getpid() -> i32 {
    let pid = current_pid();
    let pending = klp_pids.len();
    if pending > 0 {
        let npids = NPIDS.load(Ordering::Relaxed);
        if let Some(i) = (0..npids).find(|&i| klp_pids.get(i) == Some(pid)) {
            klp_pids.set(i, 0);
            klp_pids.set_len(pending - 1);
        }
    }
    pid
}

static VMLINUX_FUNCS: [KlpFunc; 2] = [
    KlpFunc::new(c"__x64_sys_getpid", lp_sys_getpid as *const ()),
    KlpFunc::END,
];
static OBJS: [KlpObject; 2] = [KlpObject::vmlinux(&VMLINUX_FUNCS), KlpObject::END];
static PATCH: KlpPatch = KlpPatch::new(&OBJS);

/// Creates `/sys/kernel/test_klp_syscall/npids`, saves the pid count and enables the patch.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    // SAFETY: the kernel's kobject as parent.
    let kobj =
        unsafe { kobject::kobject_create_and_add(c"test_klp_syscall", kobject::kernel_kobj()) };
    if kobj.is_null() {
        return -errno::ENOMEM;
    }
    // SAFETY: the kobject just made; the attribute is a static.
    let ret = unsafe { kobject::sysfs_create_file(kobj, &KLP_ATTR) };
    if ret != 0 {
        // SAFETY: put once, here.
        unsafe { kobject::kobject_put(kobj) };
        return ret;
    }
    KLP_KOBJ.store(kobj, Ordering::Relaxed);
    // Save the number of pids to see patched before any is counted down.
    NPIDS.store(klp_pids.len(), Ordering::Relaxed);
    let ret = klp_enable_patch(&PATCH);
    if ret != 0 {
        // Linux leaves the kobject behind here; its show would outlive the module.
        cleanup_module();
    }
    ret
}

/// Removes `/sys/kernel/test_klp_syscall`; the livepatch core disables and frees the patch.
#[unsafe(no_mangle)]
pub extern "C" fn cleanup_module() {
    // SAFETY: the kobject init made, put once.
    unsafe { kobject::kobject_put(KLP_KOBJ.swap(core::ptr::null_mut(), Ordering::Relaxed)) };
}

klp_guest::module_info!(livepatch, "Y");
