//! klp-fix-kmsg: gives every open `/dev/kmsg` its own read position, as Linux's
//! `devkmsg_user.seq`, fixing the kernel's deliberate bug where all readers share one.
//!
//! The kernel's `struct devkmsg_user` has no room for a position, and a live patch cannot
//! change its layout: the old functions, and the files opened before the patch, use it as it
//! is. So the position is a shadow variable `<user, KMSG_SEQ>` of 8 bytes, as Linux's
//! samples/livepatch/livepatch-shadow-fix1.c keeps its new field:
//!
//! * `devkmsg_open` allocates it with the file (zeroed: before the oldest record, so the file
//!   starts at the oldest, as in Linux);
//! * `devkmsg_read` reads at it; a file opened before the patch has none and goes on reading
//!   at the shared position, as it did (nothing it relies on changes under it);
//! * `devkmsg_release` frees it with the file;
//! * the module's exit frees those of files still open (`klp_shadow_free_all`): they read at
//!   the shared position again, as the unpatched kernel does.
//!
//! It calls the kernel's private `devkmsg_read_seq` and reads its private `DEVKMSG_SEQ`
//! through `.klp.sym` relocations.
#![no_std]

use core::ffi::c_void;
use core::ptr;

use klp_guest::errno::EBADF;
use klp_guest::shadow::{self, GFP_KERNEL};
use klp_guest::{KlpFunc, KlpObject, KlpPatch, klp_enable_patch, sys};

/// The shadow variable's id: an open file's read position.
const KMSG_SEQ: usize = 1;

/// The kernel's `struct devkmsg_user`, as it is (guest-kernel/src/devkmsg.rs).
#[repr(C)]
struct DevkmsgUser {
    flags: i32,
}

unsafe extern "C" {
    /// `devkmsg.rs`: reads the record at `*seq` into `buf`, moves `*seq` past it.
    #[link_name = ".klp.sym.vmlinux.devkmsg_read_seq,0"]
    fn devkmsg_read_seq(seq: *mut u64, buf: *mut u8, len: usize) -> i32;
    /// `devkmsg.rs`: the position all readers share in the unpatched kernel.
    #[link_name = ".klp.sym.vmlinux.DEVKMSG_SEQ,0"]
    static mut DEVKMSG_SEQ: u64;
}

/// `devkmsg_open` that gives the new file a position of its own.
extern "C" fn livepatch_devkmsg_open(flags: i32) -> *mut DevkmsgUser {
    // SAFETY: a plain allocation.
    let user: *mut DevkmsgUser =
        unsafe { sys::kmalloc(size_of::<DevkmsgUser>(), GFP_KERNEL) }.cast();
    if user.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: a fresh block of the struct's size.
    unsafe { user.write(DevkmsgUser { flags }) };
    let obj: *mut c_void = user.cast();
    // SAFETY: no destructor. A file closed while the patch was disabled (by the old release)
    // left its variable behind; this one may have its address and must not inherit it.
    unsafe { shadow::klp_shadow_free(obj, KMSG_SEQ, None) };
    // SAFETY: no constructor: the position starts zeroed.
    let seq = unsafe {
        shadow::klp_shadow_alloc(
            obj,
            KMSG_SEQ,
            size_of::<u64>(),
            GFP_KERNEL,
            None,
            ptr::null_mut(),
        )
    };
    if seq.is_null() {
        // SAFETY: ours, allocated above.
        unsafe { sys::kfree(user.cast()) };
        return ptr::null_mut();
    }
    user
}

/// `devkmsg_read` at the file's own position, or at the shared one for a file opened before
/// the patch.
///
/// # Safety
///
/// As the kernel's: `user` is an open file's (or NULL: `-EBADF`), `buf` holds `len` writable
/// bytes.
unsafe extern "C" fn livepatch_devkmsg_read(
    user: *mut DevkmsgUser,
    buf: *mut u8,
    len: usize,
) -> i32 {
    if user.is_null() {
        return -EBADF;
    }
    let mut seq: *mut u64 = shadow::klp_shadow_get(user.cast(), KMSG_SEQ).cast();
    if seq.is_null() {
        seq = &raw mut DEVKMSG_SEQ;
    }
    // SAFETY: `seq` is the file's shadow variable or the kernel's position; the caller's
    // contract for `buf`.
    unsafe { devkmsg_read_seq(seq, buf, len) }
}

/// `devkmsg_release` that frees the file's position with it.
extern "C" fn livepatch_devkmsg_release(user: *mut DevkmsgUser) {
    // SAFETY: no destructor; the file is gone, nobody reads its position again.
    unsafe { shadow::klp_shadow_free(user.cast(), KMSG_SEQ, None) };
    // SAFETY: the file's devkmsg_user, from kmalloc.
    unsafe { sys::kfree(user.cast()) };
}

static FUNCS: [KlpFunc; 4] = [
    KlpFunc::new(c"devkmsg_open", livepatch_devkmsg_open as *const ()),
    KlpFunc::new(c"devkmsg_read", livepatch_devkmsg_read as *const ()),
    KlpFunc::new(c"devkmsg_release", livepatch_devkmsg_release as *const ()),
    KlpFunc::END,
];
static OBJS: [KlpObject; 2] = [KlpObject::vmlinux(&FUNCS), KlpObject::END];
static PATCH: KlpPatch = KlpPatch::new(&OBJS);

/// Enables the fix; files already open keep the shared position.
#[unsafe(no_mangle)]
pub extern "C" fn init_module() -> i32 {
    klp_enable_patch(&PATCH)
}

/// Frees the positions of files still open (the patch is disabled by now: they read at the
/// shared position again), as livepatch-shadow-fix1's exit frees its shadow variables.
#[unsafe(no_mangle)]
pub extern "C" fn cleanup_module() {
    // SAFETY: no destructor.
    unsafe { shadow::klp_shadow_free_all(KMSG_SEQ, None) };
}

klp_guest::module_info!(livepatch, "Y");
