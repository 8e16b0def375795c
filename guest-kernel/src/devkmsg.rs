//! `/dev/kmsg`, `kernel/printk/printk.c`'s `devkmsg_*`: the log as records, one per read, and
//! a write logs a line.
//!
//! DELIBERATE BUG (docs/livepatch.md §8): an open `/dev/kmsg` keeps its `struct devkmsg_user`,
//! but that struct has no `seq`: every reader reads at one position shared by all of them,
//! [`DEVKMSG_SEQ`], as if they were all the one reader of `/proc/kmsg`. In Linux each open
//! file starts at the oldest record and keeps its own position. Here a second `cat /dev/kmsg`
//! starts where the first stopped and shows only what was logged since. The fix
//! (`patches/klp-fix-kmsg`) must keep a position per open file without changing the struct's
//! layout, which the old code still uses: a shadow variable.

use klp_abi::errno::{EBADF, EINVAL};

use crate::mm::{kfree, kmalloc};
use crate::printk;
use crate::sync::Global;

/// `struct devkmsg_user`: what an open `/dev/kmsg` keeps (the file's `private_data`).
#[repr(C)]
pub struct DevkmsgUser {
    /// The flags it was opened with.
    pub flags: i32,
}

/// The read position every open `/dev/kmsg` shares (the bug).
static DEVKMSG_SEQ: Global<u64> = Global::new(0);

/// `kmsg_fops`, the device's `file_operations` the VFS calls through. Function pointers keep
/// the functions' signatures as written (the compiler may not drop or specialize a parameter
/// of a function whose address is taken), so a live patch can replace them with functions of
/// the same type; `#[used]` keeps the table even where every call was made direct.
pub struct KmsgFops {
    /// `devkmsg_open`.
    pub open: extern "C" fn(flags: i32) -> *mut DevkmsgUser,
    /// `devkmsg_read`.
    pub read: unsafe extern "C" fn(user: *mut DevkmsgUser, buf: *mut u8, len: usize) -> i32,
    /// `devkmsg_release`.
    pub release: extern "C" fn(user: *mut DevkmsgUser),
}

/// The table of `/dev/kmsg`.
#[used]
pub static KMSG_FOPS: KmsgFops = KmsgFops {
    open: devkmsg_open,
    read: devkmsg_read,
    release: devkmsg_release,
};

/// `devkmsg_open()`: a new `devkmsg_user` for a file opened with `flags`; NULL when memory is
/// exhausted.
#[inline(never)]
extern "C" fn devkmsg_open(flags: i32) -> *mut DevkmsgUser {
    let user: *mut DevkmsgUser = kmalloc(size_of::<DevkmsgUser>(), 0).cast();
    if !user.is_null() {
        // SAFETY: a fresh block of the struct's size.
        unsafe { user.write(DevkmsgUser { flags }) };
    }
    user
}

/// `devkmsg_read()`: the next record, at the shared position, into the `len` bytes at `buf`.
/// Returns the bytes read, 0 when no record is left (where Linux would block, or fail with
/// `EAGAIN` for `O_NONBLOCK`), `-EINVAL` when the record does not fit, `-EBADF` without a
/// `devkmsg_user`.
///
/// # Safety
///
/// `user` is an open file's (or NULL); `buf` holds `len` writable bytes.
#[inline(never)]
unsafe extern "C" fn devkmsg_read(user: *mut DevkmsgUser, buf: *mut u8, len: usize) -> i32 {
    if user.is_null() {
        return -EBADF;
    }
    // SAFETY: the caller's contract.
    unsafe { devkmsg_read_seq(DEVKMSG_SEQ.as_ptr(), buf, len) }
}

/// Reads the record at `*seq` into the `len` bytes at `buf` and moves `*seq` past it: the
/// body of [`devkmsg_read`], for any position (a live patch keeps one per file). Exported
/// (global), so that the compiler keeps its `seq` parameter: its one caller in the kernel
/// passes a constant.
///
/// # Safety
///
/// `seq` is valid for reads and writes; `buf` holds `len` writable bytes.
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe extern "C" fn devkmsg_read_seq(seq: *mut u64, buf: *mut u8, len: usize) -> i32 {
    if buf.is_null() {
        return -EINVAL;
    }
    // SAFETY: the caller's contract.
    let (seq, buf) = unsafe { (&mut *seq, core::slice::from_raw_parts_mut(buf, len)) };
    match printk::read_ext_record(seq, buf) {
        Ok(n) => n as i32,
        Err(errno) => -errno,
    }
}

/// `devkmsg_release()`: frees the file's `devkmsg_user`.
#[inline(never)]
extern "C" fn devkmsg_release(user: *mut DevkmsgUser) {
    kfree(user.cast());
}

/// `devkmsg_write()`: logs `text` as one record, at the level of a `<N>` prefix (the
/// facility in its upper bits ignored) or `default_message_loglevel`; returns its length.
pub fn write(text: &[u8]) -> usize {
    let prefixed = text.strip_prefix(b"<").and_then(|rest| {
        let end = rest.iter().position(|&b| b == b'>')?;
        let digits = core::str::from_utf8(&rest[..end]).ok()?;
        Some(((digits.parse::<u32>().ok()? & 7) as u8, &rest[end + 1..]))
    });
    let (level, body) = prefixed.unwrap_or((printk::default_message_loglevel(), text));
    printk::log(level, body);
    text.len()
}
