//! The guest/host ABI of klp-wasm in one place, shared by the guest kernel, its modules and the host.
//!
//! `docs/ABI.md` describes the contract; the numbers and layouts are defined here, once: the
//! host-call ops ([`HostOp`]), the livepatch structures (the `#[repr(C)]` [`KlpPatch`],
//! [`KlpObject`], [`KlpFunc`] the guest builds, and their wasm32 layouts [`klp_patch`],
//! [`klp_object`], [`klp_func`] the host reads them with), the syscalls' flags and record
//! layouts, errno values, the tasks' structures ([`TaskStruct`], wait queues, completions,
//! timers, work items: `tasks.rs`), and the kernel's own types shared with modules (like
//! `include/linux`). The `#[repr(C)]` types have pointer fields, so only a wasm32 build (the
//! guest's) has the layout the constants describe; it checks them at compile time.
//!
//! `no_std`, without dependencies and without code besides `const` constructors and
//! [`HostOp`]'s conversion.
#![no_std]

use core::ffi::{CStr, c_void};
use core::mem::offset_of;

/// The operations of the kernel's import `klp.hostcall(op, a, b, c) -> i32`, which returns a
/// value >= 0 or -errno. The kernel makes ops 1 to 4 and 7 to 12; host-generated trampolines
/// make 5 and 6.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostOp {
    /// `klp_enable_patch`: register and enable the `klp_patch` at `a`.
    EnablePatch = 1,
    /// `klp_register_patch`: register the `klp_patch` at `a` without enabling it (2016 API).
    RegisterPatch = 2,
    /// `klp_unregister_patch`: unregister the disabled `klp_patch` at `a`.
    UnregisterPatch = 3,
    /// `klp_disable_patch`: disable the enabled `klp_patch` at `a`.
    DisablePatch = 4,
    // 5 and 6 were the trampolines' entry and exit events: they write the ring buffer in
    // kernel memory now (docs/ABI.md, "The trace ring buffer").
    /// `schedule()`: `current` gives up the CPU; its `state` says whether it stays runnable.
    /// 0: the caller must now call `klp.yield()`; 1 (any other value): it cannot sleep here,
    /// the host has let time run to the next timer instead, and the caller re-checks.
    Schedule = 7,
    /// `try_to_wake_up`: the task at `a` was set `TASK_RUNNING`; the host queues it. 0.
    Wake = 8,
    /// A new task at `a` (its fields filled in): the host registers it and queues it if it
    /// is `TASK_RUNNING`. 0 or `-EAGAIN`.
    TaskNew = 9,
    /// The earliest pending timer expiry changed to the `u64` jiffies `a` (low) `b` (high);
    /// `u64::MAX` is no timer. The host calls `run_timers` once its clock reaches it. 0.
    TimerNext = 10,
    /// `klp_get_state`: the address of the `klp_state` with id `b` of the `klp_patch` at `a`,
    /// 0 when it has none.
    GetState = 11,
    /// `klp_get_prev_state`: the address of the `klp_state` with id `a` of the newest patch
    /// before the one in transition that has one, 0 when none does (or no transition runs).
    GetPrevState = 12,
}

impl HostOp {
    /// Every op, in number order.
    const ALL: [HostOp; 10] = [
        HostOp::EnablePatch,
        HostOp::RegisterPatch,
        HostOp::UnregisterPatch,
        HostOp::DisablePatch,
        HostOp::Schedule,
        HostOp::Wake,
        HostOp::TaskNew,
        HostOp::TimerNext,
        HostOp::GetState,
        HostOp::GetPrevState,
    ];
}

impl TryFrom<i32> for HostOp {
    /// The number, which names no op.
    type Error = i32;

    fn try_from(op: i32) -> Result<Self, i32> {
        HostOp::ALL
            .into_iter()
            .find(|&known| known as i32 == op)
            .ok_or(op)
    }
}

pub mod gfp;
mod tasks;
pub use tasks::{
    Completion, DelayedWork, ListHead, PtRegs, TaskStruct, TimerFn, TimerList, WaitQueueEntry,
    WaitQueueFunc, WaitQueueHead, WorkFunc, WorkStruct, pt_regs, task, task_struct,
};

/// Size of the kernel's user buffer (`klp_user_buffer`), the scratch area the host copies
/// syscall arguments into and reads results from.
pub const USER_BUFFER_SIZE: u32 = 64 << 10;

/// `sys_open` flags, as in Linux's `include/uapi/asm-generic/fcntl.h`.
pub mod fcntl {
    /// The access mode bits.
    pub const O_ACCMODE: i32 = 0o3;
    /// Open for reading only.
    pub const O_RDONLY: i32 = 0;
    /// Open for writing only.
    pub const O_WRONLY: i32 = 0o1;
    /// Open for reading and writing.
    pub const O_RDWR: i32 = 0o2;
    /// Create the file if it does not exist.
    pub const O_CREAT: i32 = 0o100;
    /// Truncate a regular file opened for writing.
    pub const O_TRUNC: i32 = 0o1000;
    /// Every write goes to the end of the file.
    pub const O_APPEND: i32 = 0o2000;
    /// Fail unless the path is a directory.
    pub const O_DIRECTORY: i32 = 0o200000;
}

/// `sys_stat`'s `statbuf` (little-endian `u32` fields, byte offsets) and the file type bits
/// of its mode.
pub mod stat {
    /// File type of a directory.
    pub const S_IFDIR: u32 = 0o040000;
    /// File type of a regular file.
    pub const S_IFREG: u32 = 0o100000;
    /// A character device.
    pub const S_IFCHR: u32 = 0o020000;
    /// The file type bits of a mode.
    pub const S_IFMT: u32 = 0o170000;
    /// Size of `statbuf` in bytes.
    pub const SIZE: usize = 16;
    /// `st_mode`: file type and permission bits.
    pub const ST_MODE: usize = 0;
    /// `st_size`: size in bytes.
    pub const ST_SIZE: usize = 4;
    /// `st_nlink`: link count.
    pub const ST_NLINK: usize = 8;
    /// `st_ino`: inode number.
    pub const ST_INO: usize = 12;
}

/// `sys_getdents` records: `ino: u32, reclen: u16, type: u8, name, NUL` (little-endian, byte
/// offsets), each padded to [`ALIGN`](dirent::ALIGN) bytes.
pub mod dirent {
    /// `d_ino`: inode number, `u32`.
    pub const D_INO: usize = 0;
    /// `d_reclen`: length of the whole record, `u16`.
    pub const D_RECLEN: usize = 4;
    /// `d_type`: [`DT_DIR`] or [`DT_REG`], `u8`.
    pub const D_TYPE: usize = 6;
    /// `d_name`: the name, NUL-terminated.
    pub const D_NAME: usize = 7;
    /// The shortest record: the header and the NUL of an empty name.
    pub const MIN_RECLEN: usize = D_NAME + 1;
    /// Records are padded to a multiple of this.
    pub const ALIGN: usize = 4;
    /// `d_type` of a directory.
    pub const DT_DIR: u8 = 4;
    /// `d_type` of a regular file.
    pub const DT_REG: u8 = 8;

    /// `d_reclen` of the record for a name of `name_len` bytes.
    pub const fn reclen(name_len: usize) -> usize {
        (D_NAME + name_len + 1).next_multiple_of(ALIGN)
    }
}

/// `sys_syslog` actions, as in Linux's `include/linux/syslog.h`.
pub mod syslog {
    /// Read the whole log, formatted as `dmesg` prints it.
    pub const SYSLOG_ACTION_READ_ALL: i32 = 3;
    /// Read the whole log, then clear it (`dmesg -c`).
    pub const SYSLOG_ACTION_READ_CLEAR: i32 = 4;
    /// Clear the log.
    pub const SYSLOG_ACTION_CLEAR: i32 = 5;
    /// The size of the log buffer.
    pub const SYSLOG_ACTION_SIZE_BUFFER: i32 = 10;
}

/// `module_add` flags and `module_set_state` states (Linux's `enum module_state` numbering).
pub mod module {
    /// `module_add` flag: a livepatch module (taint `K`, `(K)` in /proc/modules).
    pub const MODULE_FLAG_LIVEPATCH: u32 = 1;
    /// Fully loaded.
    pub const MODULE_STATE_LIVE: u32 = 0;
    /// Running its init.
    pub const MODULE_STATE_COMING: u32 = 1;
    /// Running its exit.
    pub const MODULE_STATE_GOING: u32 = 2;
}

/// errno values, as in Linux's `include/uapi/asm-generic/errno-base.h` and `errno.h`: the
/// kernel's syscalls and the host calls return them negated.
pub mod errno {
    /// Operation not permitted.
    pub const EPERM: i32 = 1;
    /// No such file or directory.
    pub const ENOENT: i32 = 2;
    /// No such process.
    pub const ESRCH: i32 = 3;
    /// Interrupted system call.
    pub const EINTR: i32 = 4;
    /// Input/output error.
    pub const EIO: i32 = 5;
    /// No such device or address.
    pub const ENXIO: i32 = 6;
    /// Argument list too long.
    pub const E2BIG: i32 = 7;
    /// Exec format error.
    pub const ENOEXEC: i32 = 8;
    /// Bad file descriptor.
    pub const EBADF: i32 = 9;
    /// Resource temporarily unavailable.
    pub const EAGAIN: i32 = 11;
    /// Cannot allocate memory.
    pub const ENOMEM: i32 = 12;
    /// Permission denied.
    pub const EACCES: i32 = 13;
    /// Bad address.
    pub const EFAULT: i32 = 14;
    /// Device or resource busy.
    pub const EBUSY: i32 = 16;
    /// File exists.
    pub const EEXIST: i32 = 17;
    /// Invalid cross-device link.
    pub const EXDEV: i32 = 18;
    /// No such device.
    pub const ENODEV: i32 = 19;
    /// Not a directory.
    pub const ENOTDIR: i32 = 20;
    /// Is a directory.
    pub const EISDIR: i32 = 21;
    /// Invalid argument.
    pub const EINVAL: i32 = 22;
    /// Too many open files.
    pub const EMFILE: i32 = 24;
    /// File too large.
    pub const EFBIG: i32 = 27;
    /// No space left on device.
    pub const ENOSPC: i32 = 28;
    /// Illegal seek.
    pub const ESPIPE: i32 = 29;
    /// Read-only file system.
    pub const EROFS: i32 = 30;
    /// Numerical result out of range.
    pub const ERANGE: i32 = 34;
    /// File name too long.
    pub const ENAMETOOLONG: i32 = 36;
    /// Function not implemented.
    pub const ENOSYS: i32 = 38;
    /// Interrupted by a signal; the syscall is restarted (kernel-internal, never seen by user
    /// space in Linux).
    pub const ERESTARTSYS: i32 = 512;
    /// Directory not empty.
    pub const ENOTEMPTY: i32 = 39;
    /// Too many levels of symbolic links.
    pub const ELOOP: i32 = 40;
    /// Operation not supported.
    pub const ENOTSUP: i32 = 95;
}

/// printk level prefixes (`KERN_*`): `"\x01"` followed by the level digit.
pub mod kern {
    /// System is unusable.
    pub const EMERG: &str = "\x010";
    /// Critical conditions.
    pub const CRIT: &str = "\x012";
    /// Error conditions.
    pub const ERR: &str = "\x013";
    /// Warning conditions.
    pub const WARNING: &str = "\x014";
    /// Normal but significant condition.
    pub const NOTICE: &str = "\x015";
    /// Informational.
    pub const INFO: &str = "\x016";
}

/// An open seq_file, opaque outside the kernel; show callbacks append to it with `seq_write`.
#[repr(C)]
pub struct SeqFile {
    _private: [u8; 0],
}

/// A procfs show callback, `int (*show)(struct seq_file *m, void *v)`.
pub type ShowFn = unsafe extern "C" fn(m: *mut SeqFile, v: *mut c_void) -> i32;

/// A sysctl handler, `proc_handler` in Linux: `write` is 0 for a read; `buffer` holds `*lenp`
/// bytes; `*ppos` is the file position. Returns 0 or -errno and updates `*lenp` and `*ppos`.
pub type ProcHandler = unsafe extern "C" fn(
    table: *const CtlTable,
    write: i32,
    buffer: *mut u8,
    lenp: *mut usize,
    ppos: *mut i64,
) -> i32;

/// One `/proc/sys` file, `struct ctl_table`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CtlTable {
    /// File name, NUL-terminated.
    pub procname: *const u8,
    /// The variable the handler reads and writes.
    pub data: *mut c_void,
    /// Size of `data` in bytes.
    pub maxlen: i32,
    /// Permission bits (0o644, 0o444).
    pub mode: u32,
    /// Called for every read and write.
    pub proc_handler: ProcHandler,
}

// SAFETY: the guest is single-threaded; tables are immutable after construction.
#[allow(unsafe_code)]
unsafe impl Sync for CtlTable {}

impl CtlTable {
    /// A table entry; `data` points at `maxlen` bytes the handler owns.
    pub const fn new(
        procname: &'static CStr,
        data: *mut c_void,
        maxlen: usize,
        mode: u32,
        proc_handler: ProcHandler,
    ) -> Self {
        CtlTable {
            procname: procname.as_ptr().cast(),
            data,
            maxlen: maxlen as i32,
            mode,
            proc_handler,
        }
    }
}

/// A sysfs directory, `struct kobject`, opaque outside the kernel: made by
/// `kobject_create_and_add`, its files added with `sysfs_create_file`, removed with all of them
/// by `kobject_put`. The kernel's `kernel_kobj` is `/sys/kernel`.
#[repr(C)]
pub struct Kobject {
    _private: [u8; 0],
}

/// Size of the buffer a sysfs `show` fills and the most a `store` is given, `PAGE_SIZE`.
pub const SYSFS_BUF_SIZE: usize = 4096;

/// A sysfs attribute's read op, `ssize_t (*show)(struct kobject *, struct kobj_attribute *,
/// char *buf)`: writes at most [`SYSFS_BUF_SIZE`] bytes into `buf` and returns how many, or
/// -errno.
pub type KobjShowFn =
    unsafe extern "C" fn(kobj: *mut Kobject, attr: *mut KobjAttribute, buf: *mut u8) -> isize;

/// A sysfs attribute's write op, `ssize_t (*store)(struct kobject *, struct kobj_attribute *,
/// const char *buf, size_t count)`: takes the `count` bytes written (NUL-terminated after them)
/// and returns how many it consumed, or -errno.
pub type KobjStoreFn = unsafe extern "C" fn(
    kobj: *mut Kobject,
    attr: *mut KobjAttribute,
    buf: *const u8,
    count: usize,
) -> isize;

/// One sysfs file of a kobject, `struct kobj_attribute` (its `struct attribute` inlined first,
/// so a pointer to it is also the `&attr.attr` that `sysfs_create_file` takes).
#[repr(C)]
pub struct KobjAttribute {
    /// File name, NUL-terminated.
    pub name: *const u8,
    /// Permission bits (0o444, 0o644).
    pub mode: u32,
    /// Called on read; `None` makes the file unreadable.
    pub show: Option<KobjShowFn>,
    /// Called on write; `None` makes the file unwritable.
    pub store: Option<KobjStoreFn>,
}

// SAFETY: the guest is single-threaded; attributes are immutable after construction.
#[allow(unsafe_code)]
unsafe impl Sync for KobjAttribute {}

impl KobjAttribute {
    /// An attribute with both ops, `__ATTR(name, mode, show, store)`.
    pub const fn new(
        name: &'static CStr,
        mode: u32,
        show: Option<KobjShowFn>,
        store: Option<KobjStoreFn>,
    ) -> Self {
        KobjAttribute {
            name: name.as_ptr().cast(),
            mode,
            show,
            store,
        }
    }

    /// A read-only attribute, `__ATTR_RO(name)`: mode 0444.
    pub const fn ro(name: &'static CStr, show: KobjShowFn) -> Self {
        Self::new(name, 0o444, Some(show), None)
    }

    /// A read-write attribute, `__ATTR_RW(name)`: mode 0644.
    pub const fn rw(name: &'static CStr, show: KobjShowFn, store: KobjStoreFn) -> Self {
        Self::new(name, 0o644, Some(show), Some(store))
    }
}

/// `__NEW_UTS_LEN`: the longest utsname field; each field has one more byte for the NUL.
pub const NEW_UTS_LEN: usize = 64;

/// `struct new_utsname`, as uname(2) copies it out: six fields of `NEW_UTS_LEN + 1` bytes.
#[repr(C)]
pub struct NewUtsname {
    /// `uname -s`.
    pub sysname: [u8; NEW_UTS_LEN + 1],
    /// `uname -n`, `/proc/sys/kernel/hostname`.
    pub nodename: [u8; NEW_UTS_LEN + 1],
    /// `uname -r`, `/proc/sys/kernel/osrelease`.
    pub release: [u8; NEW_UTS_LEN + 1],
    /// `uname -v`, `/proc/sys/kernel/version`.
    pub version: [u8; NEW_UTS_LEN + 1],
    /// `uname -m`.
    pub machine: [u8; NEW_UTS_LEN + 1],
    /// `/proc/sys/kernel/domainname`.
    pub domainname: [u8; NEW_UTS_LEN + 1],
}

/// Layout of [`NewUtsname`] as `sys_uname` copies it out (byte offsets).
pub mod new_utsname {
    /// Bytes per field, the NUL included.
    pub const FIELD_LEN: usize = super::NEW_UTS_LEN + 1;
    /// Number of fields: sysname, nodename, release, version, machine, domainname.
    pub const FIELDS: usize = 6;
    /// Size of the structure.
    pub const SIZE: usize = FIELDS * FIELD_LEN;
}

const _: () = {
    assert!(size_of::<NewUtsname>() == new_utsname::SIZE);
    assert!(
        offset_of!(NewUtsname, domainname) == (new_utsname::FIELDS - 1) * new_utsname::FIELD_LEN
    );
};

/// One function to patch, `struct klp_func` (layout: [`klp_func`]).
#[repr(C)]
pub struct KlpFunc {
    /// Name of the function to replace, NUL-terminated; NULL ends the array.
    pub old_name: *const u8,
    /// The replacement: a function pointer (table index) of the same type as the old function.
    pub new_func: *const (),
    /// Which of several local symbols of that name (kallsyms order, 1-based); 0 = unique.
    pub old_sympos: u32,
}

/// `pre_patch`: runs before the object is patched; nonzero (a `-errno`) refuses the patch, or
/// the loading module.
pub type PrePatchFn = unsafe extern "C" fn(obj: *mut KlpObject) -> i32;
/// `post_patch`, `pre_unpatch`, `post_unpatch`.
pub type PatchCallbackFn = unsafe extern "C" fn(obj: *mut KlpObject);

/// An object's callbacks, `struct klp_callbacks` (layout: [`klp_callbacks`]): function pointers
/// (table indices), `None` (0) for none. The host calls them with the object's address, when
/// Linux's kernel/livepatch calls them.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct KlpCallbacks {
    /// Before the object is patched (at enable, or when its module loads).
    pub pre_patch: Option<PrePatchFn>,
    /// After the patching transition completes (or at once when its module loads).
    pub post_patch: Option<PatchCallbackFn>,
    /// Before the unpatching transition starts (or when its module unloads).
    pub pre_unpatch: Option<PatchCallbackFn>,
    /// After the unpatching transition completes; only if `pre_patch` succeeded.
    pub post_unpatch: Option<PatchCallbackFn>,
}

impl KlpCallbacks {
    /// No callbacks.
    pub const NONE: KlpCallbacks = KlpCallbacks {
        pre_patch: None,
        post_patch: None,
        pre_unpatch: None,
        post_unpatch: None,
    };
}

/// A patched object, `struct klp_object` (layout: [`klp_object`]).
#[repr(C)]
pub struct KlpObject {
    /// Module name, NUL-terminated; NULL means vmlinux.
    pub name: *const u8,
    /// The functions, ended by [`KlpFunc::END`]; NULL ends the object array.
    pub funcs: *const KlpFunc,
    /// The callbacks.
    pub callbacks: KlpCallbacks,
}

/// A system state a patch modifies, `struct klp_state` (layout: [`klp_state`]): its id (an
/// `unsigned long` on wasm32), the version of the change, and the patch's own data about it.
#[repr(C)]
pub struct KlpState {
    /// The state's id; 0 ends the array.
    pub id: u32,
    /// The version of the modification; a replacing patch must bring at least this one.
    pub version: u32,
    /// Whatever the patch keeps about the state (its callbacks set it).
    pub data: *mut c_void,
}

impl KlpState {
    /// The terminator of a state array.
    pub const END: KlpState = KlpState {
        id: 0,
        version: 0,
        data: core::ptr::null_mut(),
    };

    /// State `id` at `version`, without data yet.
    pub const fn new(id: u32, version: u32) -> Self {
        KlpState {
            id,
            version,
            data: core::ptr::null_mut(),
        }
    }
}

/// A livepatch, `struct klp_patch` (layout: [`klp_patch`]). Its name is the name of the module
/// that enables it.
#[repr(C)]
pub struct KlpPatch {
    /// The objects, ended by [`KlpObject::END`].
    pub objs: *const KlpObject,
    /// Atomic replace: 1 turns every function of older patches that this one does not touch back
    /// to the original.
    pub replace: u32,
    /// The system states it modifies, ended by [`KlpState::END`]; NULL for none.
    pub states: *const KlpState,
}

/// Layout of `struct klp_patch` in guest memory (wasm32, byte offsets), as the host reads it.
pub mod klp_patch {
    /// Size in bytes.
    pub const SIZE: u32 = 12;
    /// `objs`: address of the `klp_object` array.
    pub const OBJS: u32 = 0;
    /// `replace`: a `u32`, nonzero for atomic replace.
    pub const REPLACE: u32 = 4;
    /// `states`: address of the `klp_state` array, 0 for none.
    pub const STATES: u32 = 8;
}

/// Layout of `struct klp_state` in guest memory (wasm32, byte offsets), as the host reads it.
pub mod klp_state {
    /// Size in bytes (the stride of the array).
    pub const SIZE: u32 = 12;
    /// `id`: a `u32`; 0 ends the array.
    pub const ID: u32 = 0;
    /// `version`: a `u32`.
    pub const VERSION: u32 = 4;
    /// `data`: the patch's pointer.
    pub const DATA: u32 = 8;
}

/// Layout of `struct klp_object` in guest memory (wasm32, byte offsets), as the host reads it.
pub mod klp_object {
    /// Size in bytes (the stride of the array).
    pub const SIZE: u32 = 24;
    /// `name`: address of the NUL-terminated module name; 0 means vmlinux.
    pub const NAME: u32 = 0;
    /// `funcs`: address of the `klp_func` array; 0 ends the object array.
    pub const FUNCS: u32 = 4;
    /// `callbacks`: a `klp_callbacks` (layout: [`super::klp_callbacks`]).
    pub const CALLBACKS: u32 = 8;
}

/// Layout of `struct klp_callbacks` in guest memory (wasm32, byte offsets from its start).
pub mod klp_callbacks {
    /// Size in bytes.
    pub const SIZE: u32 = 16;
    /// `pre_patch`: `fn(*mut klp_object) -> i32`, 0 for none.
    pub const PRE_PATCH: u32 = 0;
    /// `post_patch`: `fn(*mut klp_object)`, 0 for none.
    pub const POST_PATCH: u32 = 4;
    /// `pre_unpatch`: `fn(*mut klp_object)`, 0 for none.
    pub const PRE_UNPATCH: u32 = 8;
    /// `post_unpatch`: `fn(*mut klp_object)`, 0 for none.
    pub const POST_UNPATCH: u32 = 12;
}

/// Layout of `struct klp_func` in guest memory (wasm32, byte offsets), as the host reads it.
pub mod klp_func {
    /// Size in bytes (the stride of the array).
    pub const SIZE: u32 = 12;
    /// `old_name`: address of the NUL-terminated name; 0 ends the function array.
    pub const OLD_NAME: u32 = 0;
    /// `new_func`: the replacement's function pointer (table slot).
    pub const NEW_FUNC: u32 = 4;
    /// `old_sympos`: a `u32`, 0 for a unique name.
    pub const OLD_SYMPOS: u32 = 8;
}

// Only a wasm32 build has the pointer size the layouts above are for.
#[cfg(target_arch = "wasm32")]
const _: () = {
    assert!(size_of::<KlpPatch>() == klp_patch::SIZE as usize);
    assert!(offset_of!(KlpPatch, objs) == klp_patch::OBJS as usize);
    assert!(offset_of!(KlpPatch, replace) == klp_patch::REPLACE as usize);
    assert!(offset_of!(KlpPatch, states) == klp_patch::STATES as usize);
    assert!(size_of::<KlpState>() == klp_state::SIZE as usize);
    assert!(offset_of!(KlpState, id) == klp_state::ID as usize);
    assert!(offset_of!(KlpState, version) == klp_state::VERSION as usize);
    assert!(offset_of!(KlpState, data) == klp_state::DATA as usize);
    assert!(size_of::<KlpObject>() == klp_object::SIZE as usize);
    assert!(offset_of!(KlpObject, name) == klp_object::NAME as usize);
    assert!(offset_of!(KlpObject, funcs) == klp_object::FUNCS as usize);
    assert!(offset_of!(KlpObject, callbacks) == klp_object::CALLBACKS as usize);
    assert!(size_of::<KlpCallbacks>() == klp_callbacks::SIZE as usize);
    assert!(offset_of!(KlpCallbacks, pre_patch) == klp_callbacks::PRE_PATCH as usize);
    assert!(offset_of!(KlpCallbacks, post_patch) == klp_callbacks::POST_PATCH as usize);
    assert!(offset_of!(KlpCallbacks, pre_unpatch) == klp_callbacks::PRE_UNPATCH as usize);
    assert!(offset_of!(KlpCallbacks, post_unpatch) == klp_callbacks::POST_UNPATCH as usize);
    assert!(size_of::<KlpFunc>() == klp_func::SIZE as usize);
    assert!(offset_of!(KlpFunc, old_name) == klp_func::OLD_NAME as usize);
    assert!(offset_of!(KlpFunc, new_func) == klp_func::NEW_FUNC as usize);
    assert!(offset_of!(KlpFunc, old_sympos) == klp_func::OLD_SYMPOS as usize);
};

// SAFETY: the guest is single-threaded and these descriptors are only read after init.
#[allow(unsafe_code)]
unsafe impl Sync for KlpFunc {}
// SAFETY: as above.
#[allow(unsafe_code)]
unsafe impl Sync for KlpObject {}
// SAFETY: as above.
#[allow(unsafe_code)]
unsafe impl Sync for KlpPatch {}
// SAFETY: as above; a patch writes its states' data only from its callbacks.
#[allow(unsafe_code)]
unsafe impl Sync for KlpState {}

impl KlpFunc {
    /// The terminator of a function array.
    pub const END: KlpFunc = KlpFunc {
        old_name: core::ptr::null(),
        new_func: core::ptr::null(),
        old_sympos: 0,
    };

    /// Replace the unique function `old_name` with `new_func` (cast with `as *const ()`).
    pub const fn new(old_name: &'static CStr, new_func: *const ()) -> Self {
        KlpFunc {
            old_name: old_name.as_ptr().cast(),
            new_func,
            old_sympos: 0,
        }
    }

    /// The same, for the `sympos`-th local symbol named `old_name` (1-based, kallsyms order).
    pub const fn with_sympos(self, sympos: u32) -> Self {
        KlpFunc {
            old_sympos: sympos,
            ..self
        }
    }
}

impl KlpObject {
    /// The terminator of an object array.
    pub const END: KlpObject = KlpObject {
        name: core::ptr::null(),
        funcs: core::ptr::null(),
        callbacks: KlpCallbacks::NONE,
    };

    /// Functions of vmlinux; `funcs` must end with [`KlpFunc::END`].
    pub const fn vmlinux(funcs: &'static [KlpFunc]) -> Self {
        assert!(
            ends_with_null(funcs),
            "klp_func array must end with KlpFunc::END"
        );
        KlpObject {
            name: core::ptr::null(),
            funcs: funcs.as_ptr(),
            callbacks: KlpCallbacks::NONE,
        }
    }

    /// Functions of the module `name`; `funcs` must end with [`KlpFunc::END`].
    pub const fn module(name: &'static CStr, funcs: &'static [KlpFunc]) -> Self {
        assert!(
            ends_with_null(funcs),
            "klp_func array must end with KlpFunc::END"
        );
        KlpObject {
            name: name.as_ptr().cast(),
            funcs: funcs.as_ptr(),
            callbacks: KlpCallbacks::NONE,
        }
    }

    /// The same object with `callbacks`.
    pub const fn with_callbacks(self, callbacks: KlpCallbacks) -> Self {
        KlpObject { callbacks, ..self }
    }
}

impl KlpPatch {
    /// A patch of `objs` (ended by [`KlpObject::END`]), without atomic replace.
    pub const fn new(objs: &'static [KlpObject]) -> Self {
        assert!(
            !objs.is_empty() && objs[objs.len() - 1].funcs.is_null(),
            "klp_object array must end with KlpObject::END"
        );
        KlpPatch {
            objs: objs.as_ptr(),
            replace: 0,
            states: core::ptr::null(),
        }
    }

    /// The same patch, atomic replace or not.
    pub const fn with_replace(self, replace: bool) -> Self {
        KlpPatch {
            replace: replace as u32,
            ..self
        }
    }

    /// The same patch, modifying `states` (an array ended by [`KlpState::END`]; the patch's
    /// callbacks write their `data`, so it is usually a `static mut`, given as `&raw const`).
    pub const fn with_states(self, states: *const KlpState) -> Self {
        KlpPatch { states, ..self }
    }
}

const fn ends_with_null(funcs: &[KlpFunc]) -> bool {
    !funcs.is_empty() && funcs[funcs.len() - 1].old_name.is_null()
}

#[cfg(test)]
mod tests {
    use super::HostOp;

    #[test]
    fn host_ops_convert_from_their_numbers_only() {
        // 5 and 6 (the trampolines' old trace events) name nothing now.
        let numbers = (1..5).chain(7..);
        for (n, op) in numbers.zip(HostOp::ALL) {
            assert_eq!(op as i32, n);
            assert_eq!(HostOp::try_from(n), Ok(op));
        }
        for n in [0, 5, 6] {
            assert_eq!(HostOp::try_from(n), Err(n));
        }
        assert_eq!(HostOp::try_from(13), Err(13));
    }
}
