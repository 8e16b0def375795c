//! Types and constants shared by the guest kernel and its modules, like `include/linux`.
//!
//! Everything here is `#[repr(C)]` and laid out for wasm32 exactly as `docs/ABI.md` says:
//! the kernel reads these structures from module memory, the host core reads the livepatch
//! ones. The crate has no code of its own besides `const` constructors.
#![no_std]

use core::ffi::{CStr, c_void};

/// errno values, as in Linux's `include/uapi/asm-generic/errno-base.h` and `errno.h`.
pub mod errno {
    /// Operation not permitted.
    pub const EPERM: i32 = 1;
    /// No such file or directory.
    pub const ENOENT: i32 = 2;
    /// Input/output error.
    pub const EIO: i32 = 5;
    /// Bad file descriptor.
    pub const EBADF: i32 = 9;
    /// Out of memory.
    pub const ENOMEM: i32 = 12;
    /// Permission denied.
    pub const EACCES: i32 = 13;
    /// Bad address.
    pub const EFAULT: i32 = 14;
    /// Device or resource busy.
    pub const EBUSY: i32 = 16;
    /// File exists.
    pub const EEXIST: i32 = 17;
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
    /// File name too long.
    pub const ENAMETOOLONG: i32 = 36;
    /// Directory not empty.
    pub const ENOTEMPTY: i32 = 39;
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

/// One function to patch, `struct klp_func`: 12 bytes.
#[repr(C)]
pub struct KlpFunc {
    /// Name of the function to replace, NUL-terminated; NULL ends the array.
    pub old_name: *const u8,
    /// The replacement: a function pointer (table index) of the same type as the old function.
    pub new_func: *const (),
    /// Which of several local symbols of that name (kallsyms order, 1-based); 0 = unique.
    pub old_sympos: u32,
}

/// A patched object, `struct klp_object`: 8 bytes.
#[repr(C)]
pub struct KlpObject {
    /// Module name, NUL-terminated; NULL means vmlinux.
    pub name: *const u8,
    /// The functions, ended by [`KlpFunc::END`]; NULL ends the object array.
    pub funcs: *const KlpFunc,
}

/// A livepatch, `struct klp_patch`: 8 bytes. Its name is the name of the module that enables it.
#[repr(C)]
pub struct KlpPatch {
    /// The objects, ended by [`KlpObject::END`].
    pub objs: *const KlpObject,
    /// Atomic replace: 1 turns every function of older patches that this one does not touch back
    /// to the original.
    pub replace: u32,
}

// SAFETY: the guest is single-threaded and these descriptors are only read after init.
unsafe impl Sync for KlpFunc {}
// SAFETY: as above.
unsafe impl Sync for KlpObject {}
// SAFETY: as above.
unsafe impl Sync for KlpPatch {}

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
        }
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
        }
    }
}

const fn ends_with_null(funcs: &[KlpFunc]) -> bool {
    !funcs.is_empty() && funcs[funcs.len() - 1].old_name.is_null()
}
