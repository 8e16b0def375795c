//! The module side of the guest ABI: kernel functions, livepatch structures and helpers.
//!
//! Kernel modules and livepatch modules are `#![no_std]` cdylibs that depend on this crate.
//! Calls to the kernel become imports that the host's loader resolves against the kernel's
//! exported symbols; the crate also provides the module's panic handler.
//!
//! A livepatch module, like Linux's `samples/livepatch/livepatch-sample.c`:
//!
//! ```ignore
//! #![no_std]
//! use core::ffi::c_void;
//! use klp_guest::{KlpFunc, KlpObject, KlpPatch, SeqFile, klp_enable_patch, seq_puts};
//!
//! unsafe extern "C" fn livepatch_cmdline_proc_show(m: *mut SeqFile, _v: *mut c_void) -> i32 {
//!     // SAFETY: `m` is the seq_file being filled.
//!     unsafe { seq_puts(m, "this has been live patched\n") };
//!     0
//! }
//!
//! static FUNCS: [KlpFunc; 2] =
//!     [KlpFunc::new(c"cmdline_proc_show", livepatch_cmdline_proc_show as *const ()), KlpFunc::END];
//! static OBJS: [KlpObject; 2] = [KlpObject::vmlinux(&FUNCS), KlpObject::END];
//! static PATCH: KlpPatch = KlpPatch::new(&OBJS);
//!
//! #[unsafe(no_mangle)]
//! pub extern "C" fn init_module() -> i32 {
//!     klp_enable_patch(&PATCH)
//! }
//!
//! klp_guest::module_info!(livepatch, "Y");
//! ```
#![no_std]

use core::cell::UnsafeCell;
use core::panic::PanicInfo;

pub mod kobject;
pub mod kthreads;
pub mod printk;
pub mod shadow;
pub mod livepatch;

pub use klp_abi::{
    CtlTable, KlpCallbacks, KlpFunc, KlpObject, KlpPatch, KlpState, NewUtsname, PatchCallbackFn,
    PrePatchFn, ProcHandler, SeqFile, ShowFn, errno,
};
pub use kobject::{
    KobjAttribute, Kobject, kernel_kobj, kobject_create_and_add, kobject_put, sysfs_create_file,
    sysfs_remove_file,
};

pub mod task;

/// The kernel's exported functions, as the loader links them.
pub mod sys {
    use super::{CtlTable, KlpPatch, KlpState, SeqFile, ShowFn};
    pub use crate::task::sys::*;

    unsafe extern "C" {
        /// Logs `len` bytes; an optional `"\x01" + digit` prefix is the level.
        pub fn printk(msg: *const u8, len: usize) -> i32;
        /// Appends `len` bytes to the seq_file a show callback fills.
        pub fn seq_write(m: *mut SeqFile, buf: *const u8, len: usize) -> i32;
        /// Creates `/proc/<name>` whose reads call `show`; 0 or -errno.
        pub fn proc_create_single(name: *const u8, len: usize, show: ShowFn) -> i32;
        /// Removes `/proc/<name>`.
        pub fn remove_proc_entry(name: *const u8, len: usize);
        /// The string sysctl handler.
        pub fn proc_dostring(
            table: *const CtlTable,
            write: i32,
            buffer: *mut u8,
            lenp: *mut usize,
            ppos: *mut i64,
        ) -> i32;
        /// The integer-vector sysctl handler.
        pub fn proc_dointvec(
            table: *const CtlTable,
            write: i32,
            buffer: *mut u8,
            lenp: *mut usize,
            ppos: *mut i64,
        ) -> i32;
        /// Registers and enables a patch.
        pub fn klp_enable_patch(patch: *const KlpPatch) -> i32;
        /// Registers a patch without enabling it (2016 API).
        pub fn klp_register_patch(patch: *const KlpPatch) -> i32;
        /// Unregisters a disabled patch (2016 API).
        pub fn klp_unregister_patch(patch: *const KlpPatch) -> i32;
        /// Disables an enabled patch (2016 API).
        pub fn klp_disable_patch(patch: *const KlpPatch) -> i32;
        /// Logs `Kernel panic - not syncing: <msg>` and stops the kernel.
        pub fn panic(msg: *const u8, len: usize) -> !;
        /// Allocates `size` zeroed bytes, 8-aligned; NULL when memory is exhausted.
        pub fn kmalloc(size: usize, flags: u32) -> *mut u8;
        /// Frees a block from `kmalloc`.
        pub fn kfree(ptr: *mut u8);
        /// The state of the loaded module `name` (NUL-terminated), or `-ENOENT`.
        pub fn module_state(name: *const u8) -> i32;
        /// The state `id` that `patch` modifies, NULL when none.
        pub fn klp_get_state(patch: *const KlpPatch, id: u32) -> *mut KlpState;
        /// The state `id` of the patches installed before the one in transition, NULL when
        /// none.
        pub fn klp_get_prev_state(id: u32) -> *mut KlpState;
        /// `/proc/sys/kernel/printk`'s four levels; `console_loglevel` is the first.
        pub static mut console_printk: [i32; 4];
    }
}

/// Logs a message; it may start with a `KERN_*` prefix (see [`pr_info!`]).
pub fn printk(msg: &str) {
    // SAFETY: a live string.
    unsafe { sys::printk(msg.as_ptr(), msg.len()) };
}

/// Appends a string to the seq_file `m`.
///
/// # Safety
///
/// `m` must be the seq_file the kernel passed to the running show callback.
pub unsafe fn seq_puts(m: *mut SeqFile, s: &str) {
    // SAFETY: the caller's contract; `s` is a live string.
    unsafe { sys::seq_write(m, s.as_ptr(), s.len()) };
}

/// Creates `/proc/<name>` whose reads call `show`; returns 0 or -errno.
pub fn proc_create_single(name: &str, show: ShowFn) -> i32 {
    // SAFETY: a live string; `show` has the callback type.
    unsafe { sys::proc_create_single(name.as_ptr(), name.len(), show) }
}

/// Removes `/proc/<name>`.
pub fn remove_proc_entry(name: &str) {
    // SAFETY: a live string.
    unsafe { sys::remove_proc_entry(name.as_ptr(), name.len()) }
}

/// Registers and enables `patch` (today's API); the patch is named after this module.
pub fn klp_enable_patch(patch: &'static KlpPatch) -> i32 {
    // SAFETY: a patch description that lives as long as the module.
    unsafe { sys::klp_enable_patch(patch) }
}

/// Registers `patch` without enabling it (2016 API); enable it through sysfs.
pub fn klp_register_patch(patch: &'static KlpPatch) -> i32 {
    // SAFETY: as above.
    unsafe { sys::klp_register_patch(patch) }
}

/// Unregisters a disabled `patch` (2016 API).
pub fn klp_unregister_patch(patch: &'static KlpPatch) -> i32 {
    // SAFETY: as above.
    unsafe { sys::klp_unregister_patch(patch) }
}

/// An `int` module parameter, set by `insmod MODULE name=value` before `init_module` runs.
/// Declare it with [`module_param!`].
#[repr(transparent)]
pub struct ModuleParam(UnsafeCell<i32>);

// SAFETY: the guest is single-threaded; the loader writes the value before init runs.
unsafe impl Sync for ModuleParam {}

impl ModuleParam {
    /// A parameter with its default value.
    pub const fn new(default: i32) -> Self {
        ModuleParam(UnsafeCell::new(default))
    }

    /// The current value (`READ_ONCE`: sysfs may change it between two reads).
    pub fn get(&self) -> i32 {
        // SAFETY: a plain read of a 4-byte cell nothing else borrows.
        unsafe { self.0.get().read_volatile() }
    }

    /// Sets the value (`WRITE_ONCE`).
    pub fn set(&self, value: i32) {
        // SAFETY: as above.
        unsafe { self.0.get().write_volatile(value) }
    }
}

/// A `bool` module parameter (`Y`/`N`, `y`/`n`, `1`/`0`; shown as `Y` or `N`): one byte, 0 or
/// 1, as Linux's `bool`. Declare it with [`module_param!`]`(name: bool = false, 0o644)`.
#[repr(transparent)]
pub struct ModuleParamBool(UnsafeCell<bool>);

// SAFETY: the guest is single-threaded; the host writes only 0 or 1.
unsafe impl Sync for ModuleParamBool {}

impl ModuleParamBool {
    /// A parameter with its default value.
    pub const fn new(default: bool) -> Self {
        ModuleParamBool(UnsafeCell::new(default))
    }

    /// The current value (`READ_ONCE`: a write to `/sys/module/.../parameters/` may change it
    /// while a loop polls it).
    pub fn get(&self) -> bool {
        // SAFETY: a read of a 1-byte cell nothing else borrows; the host stores 0 or 1 only.
        unsafe { self.0.get().read_volatile() }
    }

    /// Sets the value (`WRITE_ONCE`).
    pub fn set(&self, value: bool) {
        // SAFETY: as above.
        unsafe { self.0.get().write_volatile(value) }
    }
}

/// An `int` array module parameter, `module_param_array(name, int, &num, perm)`: the element
/// count (Linux's `*nump`, kept here in front of the elements) and room for `N` ints.
/// `insmod MODULE name=1,2,3` sets the first three elements and the count to 3. Declare it with
/// [`module_param_array!`].
#[repr(C)]
pub struct ModuleParamArray<const N: usize> {
    num: UnsafeCell<u32>,
    elems: UnsafeCell<[i32; N]>,
}

// SAFETY: the guest is single-threaded; the loader writes the values before init runs.
unsafe impl<const N: usize> Sync for ModuleParamArray<N> {}

impl<const N: usize> ModuleParamArray<N> {
    /// An empty array (count 0, every element 0).
    pub const fn new() -> Self {
        ModuleParamArray {
            num: UnsafeCell::new(0),
            elems: UnsafeCell::new([0; N]),
        }
    }

    /// The element count (`*nump`), never more than `N`.
    pub fn len(&self) -> usize {
        // SAFETY: a read of a 4-byte cell nothing else borrows.
        let num = unsafe { self.num.get().read_volatile() };
        (num as usize).min(N)
    }

    /// Whether no element was given.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sets the element count (Linux modules may use `*nump` as a counter of their own).
    pub fn set_len(&self, num: usize) {
        // SAFETY: as above.
        unsafe { self.num.get().write_volatile(num.min(N) as u32) }
    }

    /// Element `i` (any of the `N`, given or not); `None` beyond `N`.
    pub fn get(&self, i: usize) -> Option<i32> {
        // SAFETY: an in-bounds read of the element array nothing else borrows.
        (i < N).then(|| unsafe { self.elems.get().cast::<i32>().add(i).read_volatile() })
    }

    /// Sets element `i`; ignored beyond `N`.
    pub fn set(&self, i: usize, value: i32) {
        if i < N {
            // SAFETY: an in-bounds write, as above.
            unsafe { self.elems.get().cast::<i32>().add(i).write_volatile(value) }
        }
    }
}

impl<const N: usize> Default for ModuleParamArray<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Declares a module parameter, as Linux's `module_param(name, type, perm)`:
/// `module_param!(replace: i32 = 0, 0o644)` (an `int`) or
/// `module_param!(block_transition: bool = false, 0o644)` (a `bool`) defines the global data
/// symbol `__param_<name>` that the loader sets from `name=value`, and the `.modinfo` entries
/// `parmtype=<name>:int` (or `bool`) and `parmperm=<name>:0o644`. The permission is that of
/// `/sys/module/<module>/parameters/<name>`; 0 leaves the parameter out of sysfs.
#[macro_export]
macro_rules! module_param {
    ($name:ident : i32 = $default:expr, $perm:literal) => {
        #[allow(non_upper_case_globals)]
        #[unsafe(export_name = concat!("__param_", stringify!($name)))]
        pub static $name: $crate::ModuleParam = $crate::ModuleParam::new($default);
        $crate::__param_modinfo!($name, "int", $perm);
    };
    ($name:ident : bool = $default:expr, $perm:literal) => {
        #[allow(non_upper_case_globals)]
        #[unsafe(export_name = concat!("__param_", stringify!($name)))]
        pub static $name: $crate::ModuleParamBool = $crate::ModuleParamBool::new($default);
        $crate::__param_modinfo!($name, "bool", $perm);
    };
}

/// Declares an `int` array module parameter, as Linux's
/// `module_param_array(name, int, &num, perm)`: `module_param_array!(klp_pids: [i32; 64], 0)`
/// defines `__param_klp_pids` (the count, then 64 ints; see [`ModuleParamArray`]) that the
/// loader sets from `klp_pids=1,2,3`, and `.modinfo`'s `parmtype=klp_pids:array of int`.
/// Reading `/sys/module/<module>/parameters/<name>` shows `1,2,3`.
#[macro_export]
macro_rules! module_param_array {
    ($name:ident : [i32; $n:expr], $perm:literal) => {
        #[allow(non_upper_case_globals)]
        #[unsafe(export_name = concat!("__param_", stringify!($name)))]
        pub static $name: $crate::ModuleParamArray<{ $n }> = $crate::ModuleParamArray::new();
        $crate::__param_modinfo!($name, "array of int", $perm);
    };
}

/// The `.modinfo` entries of a parameter: `parmtype=<name>:<type>` and
/// `parmperm=<name>:<perm>` (used by [`module_param!`] and [`module_param_array!`]).
#[doc(hidden)]
#[macro_export]
macro_rules! __param_modinfo {
    ($name:ident, $ty:literal, $perm:literal) => {
        const _: () = {
            const INFO: &str = concat!(
                "parmtype=",
                stringify!($name),
                ":",
                $ty,
                "\0parmperm=",
                stringify!($name),
                ":",
                stringify!($perm),
                "\0"
            );
            #[unsafe(link_section = ".modinfo")]
            #[used]
            static MODINFO: [u8; INFO.len()] = $crate::bytes(INFO);
        };
    };
}

/// Adds `key=value` to the module's `.modinfo` custom section (NUL-terminated strings, as in
/// Linux); `module_info!(livepatch, "Y")` marks a livepatch module.
#[macro_export]
macro_rules! module_info {
    ($key:ident, $value:literal) => {
        const _: () = {
            const INFO: &str = concat!(stringify!($key), "=", $value, "\0");
            #[unsafe(link_section = ".modinfo")]
            #[used]
            static MODINFO: [u8; INFO.len()] = $crate::bytes(INFO);
        };
    };
}

/// `s` as a byte array of exactly its length (for section statics).
pub const fn bytes<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0; N];
    let mut i = 0;
    while i < N {
        out[i] = s.as_bytes()[i];
        i += 1;
    }
    out
}

/// Logs a string literal at KERN_INFO, or a `format_args!` format and its arguments.
#[macro_export]
macro_rules! pr_info {
    ($msg:literal) => {
        $crate::printk(concat!("\x016", $msg, "\n"))
    };
    ($fmt:literal, $($arg:tt)+) => {
        $crate::printk::printk_fmt(format_args!(concat!("\x016", $fmt, "\n"), $($arg)+))
    };
}

/// Logs a string literal at KERN_ERR, or a format and its arguments.
#[macro_export]
macro_rules! pr_err {
    ($msg:literal) => {
        $crate::printk(concat!("\x013", $msg, "\n"))
    };
    ($fmt:literal, $($arg:tt)+) => {
        $crate::printk::printk_fmt(format_args!(concat!("\x013", $fmt, "\n"), $($arg)+))
    };
}

/// A panic in module code is a kernel panic.
#[panic_handler]
fn on_panic(info: &PanicInfo<'_>) -> ! {
    let msg = info.message().as_str().unwrap_or("panic in module code");
    // SAFETY: a live string; the kernel's panic does not return.
    unsafe { sys::panic(msg.as_ptr(), msg.len()) }
}
