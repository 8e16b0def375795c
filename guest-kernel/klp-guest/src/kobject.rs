//! sysfs for modules: a kobject directory under `/sys/kernel` and its attribute files.
//!
//! As Linux's test_klp_syscall makes `/sys/kernel/test_klp_syscall/npids`:
//!
//! ```ignore
//! use klp_guest::kobject::{KobjAttribute, Kobject, kernel_kobj, kobject_create_and_add};
//!
//! unsafe extern "C" fn npids_show(_: *mut Kobject, _: *mut KobjAttribute, buf: *mut u8) -> isize {
//!     // SAFETY: `buf` is the page the kernel gave.
//!     unsafe { klp_guest::sysfs_emit!(buf, "{}\n", 0) }
//! }
//! static NPIDS: KobjAttribute = KobjAttribute::ro(c"npids", npids_show);
//!
//! // SAFETY: the kernel's kobject as parent; then a live kobject and a static attribute.
//! let kobj = unsafe { kobject_create_and_add(c"test_klp_syscall", kernel_kobj()) };
//! let ret = unsafe { klp_guest::kobject::sysfs_create_file(kobj, &NPIDS) };
//! ```

use core::ffi::CStr;
use core::fmt;

pub use klp_abi::{KobjAttribute, KobjShowFn, KobjStoreFn, Kobject, SYSFS_BUF_SIZE};

/// The kernel's sysfs functions and `kernel_kobj`, as the loader links them.
pub mod sys {
    use super::{KobjAttribute, Kobject};

    unsafe extern "C" {
        /// The kobject of `/sys/kernel`.
        pub static kernel_kobj: *mut Kobject;
        /// Creates the directory `name` (NUL-terminated) in `parent`'s; NULL on failure.
        pub fn kobject_create_and_add(name: *const u8, parent: *mut Kobject) -> *mut Kobject;
        /// Removes the kobject's directory and every file in it.
        pub fn kobject_put(kobj: *mut Kobject);
        /// Adds an attribute file to the kobject's directory; 0 or -errno.
        pub fn sysfs_create_file(kobj: *mut Kobject, attr: *const KobjAttribute) -> i32;
        /// Removes an attribute file.
        pub fn sysfs_remove_file(kobj: *mut Kobject, attr: *const KobjAttribute);
    }
}

/// `kernel_kobj`: the parent for `/sys/kernel/<name>`.
pub fn kernel_kobj() -> *mut Kobject {
    // SAFETY: a pointer-sized kernel variable that never changes.
    unsafe { sys::kernel_kobj }
}

/// Creates `/sys/kernel/<name>` (with `parent` = [`kernel_kobj`]) and returns its kobject, or
/// NULL when the name exists already or memory is short.
///
/// # Safety
///
/// `parent` must be NULL (`/sys`), [`kernel_kobj`] or a live kobject.
pub unsafe fn kobject_create_and_add(name: &CStr, parent: *mut Kobject) -> *mut Kobject {
    // SAFETY: a NUL-terminated name; `parent` is the caller's contract.
    unsafe { sys::kobject_create_and_add(name.as_ptr().cast(), parent) }
}

/// Drops a kobject: its directory and files go away. NULL is ignored.
///
/// # Safety
///
/// `kobj` must be NULL or a kobject from [`kobject_create_and_add`] not put yet.
pub unsafe fn kobject_put(kobj: *mut Kobject) {
    // SAFETY: the caller's contract.
    unsafe { sys::kobject_put(kobj) }
}

/// Adds the file `attr.name` to `kobj`'s directory; 0, `-EEXIST`, `-EINVAL` or `-ENOMEM`.
///
/// # Safety
///
/// `kobj` must be a live kobject.
pub unsafe fn sysfs_create_file(kobj: *mut Kobject, attr: &'static KobjAttribute) -> i32 {
    // SAFETY: the caller's contract; the attribute lives as long as the module.
    unsafe { sys::sysfs_create_file(kobj, attr) }
}

/// Removes the file `attr.name` from `kobj`'s directory.
///
/// # Safety
///
/// `kobj` must be a live kobject.
pub unsafe fn sysfs_remove_file(kobj: *mut Kobject, attr: &'static KobjAttribute) {
    // SAFETY: the caller's contract.
    unsafe { sys::sysfs_remove_file(kobj, attr) }
}

/// A writer into a show's page, dropping what does not fit.
struct Page {
    buf: *mut u8,
    len: usize,
}

impl fmt::Write for Page {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(SYSFS_BUF_SIZE - 1 - self.len);
        // SAFETY: `buf` holds SYSFS_BUF_SIZE bytes (the caller's contract) and
        // `len + n < SYSFS_BUF_SIZE`.
        unsafe { core::ptr::copy_nonoverlapping(s.as_ptr(), self.buf.add(self.len), n) };
        self.len += n;
        Ok(())
    }
}

/// `sysfs_emit`: formats into the page a show was given and returns the length to return from
/// it (at most `PAGE_SIZE - 1`). Use it through [`sysfs_emit!`](crate::sysfs_emit).
///
/// # Safety
///
/// `buf` must be the `buf` argument of a running show callback.
pub unsafe fn sysfs_emit(buf: *mut u8, args: fmt::Arguments<'_>) -> isize {
    // SAFETY: the caller's contract.
    unsafe { sysfs_emit_at(buf, 0, args) }
}

/// `sysfs_emit_at`: the same, appending at offset `at` of the page; returns the bytes added.
/// Use it through [`sysfs_emit_at!`](crate::sysfs_emit_at).
///
/// # Safety
///
/// `buf` must be the `buf` argument of a running show callback.
pub unsafe fn sysfs_emit_at(buf: *mut u8, at: usize, args: fmt::Arguments<'_>) -> isize {
    let at = at.min(SYSFS_BUF_SIZE - 1);
    let mut page = Page { buf, len: at };
    let _ = fmt::write(&mut page, args);
    (page.len - at) as isize
}

/// `sysfs_emit(buf, fmt, ...)` with Rust formatting: `sysfs_emit!(buf, "{}\n", n)`.
#[macro_export]
macro_rules! sysfs_emit {
    ($buf:expr, $($arg:tt)*) => {
        $crate::kobject::sysfs_emit($buf, format_args!($($arg)*))
    };
}

/// `sysfs_emit_at(buf, at, fmt, ...)` with Rust formatting.
#[macro_export]
macro_rules! sysfs_emit_at {
    ($buf:expr, $at:expr, $($arg:tt)*) => {
        $crate::kobject::sysfs_emit_at($buf, $at, format_args!($($arg)*))
    };
}
